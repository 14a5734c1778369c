// Several replicas on one PostgreSQL: two real gatehouse processes on one database of the
// test binary's throwaway cluster (tests/it/common/postgres.rs). One winner among racing
// registrations, one family among racing refreshes, revocation through one replica enforced
// by the other within `freshness_ms` (measured, 50 runs per kind), the listener cut, the
// schema checks of `serve` and `migrate`.
use crate::common;

use common::paths::PROFILE;
use common::smtp::{reset, sending_to, subjects, SmtpSink, QUIET};
use common::upstream::Upstream;
use common::*;
use gatehouse::config::Config;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The bound SPEC §9 promises (freshness_ms 500) plus the time a request takes; the issue
/// asks every measured latency to stay under 1 s.
const BOUND: Duration = Duration::from_secs(1);
const RUNS: usize = 50;

/// Two replicas (A, B) on one fresh migrated database, with a staff user and a proxied
/// auth-required route `/app/` to `up`.
fn replicas(up: &Upstream, rotate: bool) -> (Gatehouse, Gatehouse) {
    replicas_with(up, |c| c.jwt.rotate_refresh_tokens = rotate)
}

fn replicas_with(up: &Upstream, edit: impl Fn(&mut Config)) -> (Gatehouse, Gatehouse) {
    postgres::replicas(|b| {
        b.with_config(|c| {
            c.routes = vec![route("/app/", &[up.addr])];
            c.store.freshness_ms = 500;
            edit(c);
        })
    })
}

/// Polls `check` every 5 ms until it says done; the time it took (panics after 10 s).
fn latency(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if done() {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: not enforced after 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn report(kind: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
    println!(
        "revocation latency {kind}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} runs",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        times.len()
    );
    assert!(max < BOUND, "{kind}: max {max:?} is over {BOUND:?}");
}

#[test]
fn serve_refuses_an_unmigrated_schema_and_migrate_is_idempotent() {
    let (url, db) = postgres::empty_database();
    // The test cluster trusts loopback, so any password is accepted: this one must never be
    // printed by any command.
    let url = url.replace("postgres@", "postgres:Never-Log-This-7@");
    let g = Gatehouse::new().postgres(&url).build();
    let serve = g.cli(&["serve"], &[]);
    assert!(!serve.succeeded(), "serve on an empty database must refuse");
    assert!(
        serve.stderr.contains("gatehouse migrate"),
        "serve names the command: {}",
        serve.stderr
    );
    assert!(
        !serve.stderr.contains("Never-Log-This-7"),
        "the password is not printed: {}",
        serve.stderr
    );
    let first = g.cli(&["migrate"], &[]);
    first.assert_ok("migrate");
    assert!(
        first.stdout.contains(&format!(
            "from version 0 to {}",
            gatehouse::store::postgres::schema::latest()
        )),
        "{}",
        first.stdout
    );
    let again = g.cli(&["migrate"], &[]);
    again.assert_ok("migrate again");
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);
    // A schema from a newer gatehouse: neither command touches it.
    postgres::cluster()
        .psql(
            &db,
            "INSERT INTO gatehouse_schema (version, name) VALUES (99, 'future')",
        )
        .expect("insert");
    let newer = g.cli(&["migrate"], &[]);
    assert!(
        !newer.succeeded() && newer.stderr.contains("newer"),
        "{}",
        newer.stderr
    );
    let serve = g.cli(&["serve"], &[]);
    assert!(
        !serve.succeeded() && serve.stderr.contains("newer"),
        "{}",
        serve.stderr
    );
    // A served database: the log names the store without the password.
    postgres::cluster()
        .psql(&db, "DELETE FROM gatehouse_schema WHERE version = 99")
        .expect("delete");
    let mut g = g;
    g.restart();
    let log = g.wait_for_log("listening on");
    assert!(
        log.contains("store postgres postgres://postgres:***@"),
        "{log}"
    );
    assert!(!log.contains("Never-Log-This-7"), "{log}");
    let check = g.cli(&["check-config"], &[]);
    assert!(
        !check.stdout.contains("Never-Log-This-7") && !check.stderr.contains("Never-Log-This-7")
    );
}

#[test]
fn racing_registrations_over_two_replicas_have_one_winner() {
    let up = Upstream::start();
    let (a, b) = replicas(&up, false);
    for round in 0..3 {
        let name = format!("racer{round}");
        let barrier = Barrier::new(16);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let (g, barrier, name) = (if i % 2 == 0 { &a } else { &b }, &barrier, &name);
                    s.spawn(move || {
                        barrier.wait();
                        // Every email differs, and the name comes in two cases.
                        let n = if i % 4 < 2 {
                            name.clone()
                        } else {
                            name.to_uppercase()
                        };
                        g.register_as(&n, &format!("{name}-{i}@example.com"), PASSWORD)
                            .status
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let won = statuses.iter().filter(|&&s| s == 201).count();
        assert_eq!(won, 1, "round {round}: {statuses:?}");
        assert!(
            statuses.iter().all(|&s| s == 201 || s == 400),
            "the losers are told the name is taken: {statuses:?}"
        );
    }
    // Both replicas sign with the one key kept in the database.
    let (access, _) = a.login("racer0", PASSWORD);
    b.get(PROFILE, Some(&access)).expect_status(200);
}

#[test]
fn concurrent_refreshes_over_two_replicas_make_one_family() {
    let up = Upstream::start();
    let (a, b) = replicas(&up, true);
    a.register("spinner");
    let (_, r0) = a.login("spinner", PASSWORD);
    let results: Vec<Resp> = race(32, |i| (if i % 2 == 0 { &a } else { &b }).refresh(&r0));
    let mut children: Vec<String> = results
        .iter()
        .map(|r| {
            r.expect_status(200);
            jti(&r.field("refresh"))
        })
        .collect();
    children.sort();
    children.dedup();
    assert_eq!(children.len(), 1, "32 racing refreshes minted {children:?}");
    // Advancing the family once kills every token handed out in the race, on both.
    let child = results[0].field("refresh");
    let grandchild = b.refresh(&child);
    grandchild.expect_status(200);
    a.refresh(&r0).expect_status(401);
    b.refresh(&grandchild.field("refresh")).expect_status(401);
}

#[test]
fn revocation_through_a_reaches_b_within_the_bound() {
    let up = Upstream::start();
    let (a, b) = replicas(&up, false);
    let (staff, _) = a.login("root", PASSWORD);
    let proxied = |g: &Gatehouse, token: &str| g.get("/app/x", Some(token)).status;
    let mut deleted = Vec::new();
    let mut changed = Vec::new();
    let mut restored = Vec::new();
    let mut logged_out = Vec::new();
    for run in 0..RUNS {
        // Soft delete through A; B's cache is warm with the user active.
        let name = format!("d{run}");
        let (id, access, refresh) = a.user(&name);
        assert_eq!(proxied(&b, &access), 200, "B serves the live token");
        a.soft_delete(&access).expect_status(200);
        deleted.push(latency("soft delete", || proxied(&b, &access) == 401));

        // Restore through A: B lets a new login in; the old token stays dead.
        a.restore(&staff, id).expect_status(200);
        let t0 = Instant::now();
        let (fresh_access, _) = a.login(&name, PASSWORD);
        latency("restore", || proxied(&b, &fresh_access) == 200);
        restored.push(t0.elapsed());
        assert_eq!(proxied(&b, &access), 401, "the pre-delete token stays dead");
        assert_eq!(
            b.refresh(&refresh).status,
            401,
            "and so does its refresh token"
        );

        // Password change through A.
        let name = format!("p{run}");
        let (_, access, _) = a.user(&name);
        assert_eq!(proxied(&b, &access), 200);
        a.change_password(&access, PASSWORD, "An0ther-Pass-123")
            .expect_status(200);
        changed.push(latency("password change", || proxied(&b, &access) == 401));

        // Logout through A: B refuses the refresh token at once (families are not cached).
        let name = format!("l{run}");
        let (_, _, refresh) = a.user(&name);
        a.logout(&refresh).expect_status(200);
        logged_out.push(latency("logout", || b.refresh(&refresh).status == 401));
    }
    report("soft delete", deleted);
    report("password change", changed);
    report("restore", restored);
    report("logout", logged_out);
}

#[test]
fn b_with_its_listener_cut_never_serves_a_revoked_token_past_the_bound() {
    let up = Upstream::start();
    let (a, b) = replicas(&up, false);
    let b_pid = b.pid().expect("B runs");
    for run in 0..5 {
        let (_, access, _) = a.user(&format!("cut{run}"));
        assert_eq!(b.get("/app/x", Some(&access)).status, 200, "warm");
        // B's listening connection goes; the soft delete lands while B is deaf.
        let killed = postgres::cluster()
            .psql(
                "postgres",
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'gatehouse-feed-{b_pid}'"
                ),
            )
            .expect("terminate");
        assert_eq!(killed, "1", "B's listener found and cut");
        a.soft_delete(&access).expect_status(200);
        let t0 = Instant::now();
        loop {
            let sent = t0.elapsed();
            let status = b.get("/app/x", Some(&access)).status;
            if status == 401 {
                break;
            }
            // A request sent after t0 + freshness must never be answered from stale memory.
            assert!(
                !(status == 200 && sent > Duration::from_millis(500)),
                "run {run}: B served the revoked token {sent:?} after the delete"
            );
            assert!(
                sent < Duration::from_secs(10),
                "run {run}: stuck at {status}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // B listens again by itself: a new user's token works, and its revocation arrives.
    let (_, access, _) = a.user("after");
    eventually("B serves again", || {
        (b.get("/app/x", Some(&access)).status == 200).then_some(())
    });
    a.soft_delete(&access).expect_status(200);
    report(
        "soft delete after reconnect",
        vec![latency("soft delete", || {
            b.get("/app/x", Some(&access)).status == 401
        })],
    );
}

#[test]
fn throttle_counters_are_shared_by_the_replicas() {
    let up = Upstream::start();
    let (a, b) = replicas_with(&up, |c| c.throttle.login_failures_per_username = 4);
    a.register("guarded");
    // Four failures spread over both replicas use up the one allowance.
    for g in [&a, &b, &a, &b] {
        g.login_attempt("guarded", "wrong-password")
            .expect_status(401);
    }
    for g in [&a, &b] {
        let r = g.login_attempt("guarded", PASSWORD);
        r.expect_status(429);
        assert!(r.header("retry-after").is_some(), "{}", r.text);
    }
    // Another username is not affected.
    a.register("other");
    b.login("other", PASSWORD);
}

#[test]
fn store_copy_moves_everything_from_sled_keeping_ids_and_tokens() {
    let up = Upstream::start();
    // The mail server is down while sled runs: a reset mail stays queued in its outbox.
    let mut sink = SmtpSink::start();
    sink.stop();
    let mut sled = sending_to(Gatehouse::new(), &sink)
        .with_config(|c| c.routes = vec![route("/app/", &[up.addr])])
        .start();
    let (id1, access1, _) = sled.user("first");
    let (_, access2, _) = sled.user("second");
    let (_, _, refresh3) = sled.user("third");
    sled.soft_delete(&access2).expect_status(200);
    sled.logout(&refresh3).expect_status(200);
    reset(&sled, "first@example.com").expect_status(204);
    sled.terminate();
    let trail = audit_trail_in_stopped_sled(&sled, id1);

    let (url, _) = postgres::empty_database();
    let copy = sled.cli(&["store", "copy", "--to", &url], &[]);
    copy.assert_ok("store copy");
    let n = trail.len();
    assert!(
        copy.stderr.contains(&format!("audit events: {n}/{n}"))
            && copy.stdout.contains(&format!("copied {n} audit events")),
        "{}{}",
        copy.stderr,
        copy.stdout
    );
    audit_trail_goes_on_in_the_copy(&url, &trail);
    assert!(
        copy.stderr.contains("users: 3/3"),
        "progress: {}",
        copy.stderr
    );
    // Every token login records its family (the device) when it signs in: three logins.
    assert!(
        copy.stdout
            .contains("copied 3 users and 3 refresh-token families"),
        "{}",
        copy.stdout
    );
    assert!(
        copy.stderr.contains("queued mails: 1/1") && copy.stdout.contains("copied 1 queued mails"),
        "{}{}",
        copy.stderr,
        copy.stdout
    );
    let again = sled.cli(&["store", "copy", "--to", &url], &[]);
    assert!(
        !again.succeeded() && again.stderr.contains("empty database"),
        "a second copy is refused: {}",
        again.stderr
    );

    // A replica on the copy: same ids, same key (the sled token still works), same states.
    sink.resume();
    let pg = sending_to(Gatehouse::new(), &sink)
        .postgres(&url)
        .with_config(|c| c.routes = vec![route("/app/", &[up.addr])])
        .start();
    assert_eq!(pg.get("/app/x", Some(&access1)).status, 200, "sled's token");
    assert_eq!(
        pg.get("/app/x", Some(&access2)).status,
        401,
        "deleted stays deleted"
    );
    assert_eq!(
        pg.refresh(&refresh3).status,
        401,
        "logged out stays logged out"
    );
    assert_eq!(id_of(&pg.get(PROFILE, Some(&access1)).json), id1);
    let fourth = id_of(&pg.register("fourth"));
    assert_eq!(fourth, 4, "ids continue above the copied ones");
    // The mail queued in sled is sent from the copy, once.
    let mails = sink.wait_for("first@example.com", 1, Duration::from_secs(20));
    assert_eq!(subjects(&mails), ["Password Reset"]);
    std::thread::sleep(QUIET);
    assert_eq!(sink.messages().len(), 1, "{:?}", sink.messages());
}

/// sled's audit trail after two more events by `user` (whatever the run wrote besides),
/// oldest first.
fn audit_trail_in_stopped_sled(sled: &Gatehouse, user: u64) -> Vec<gatehouse::store::Event> {
    use gatehouse::store::{Action, Effects, Event, SledStore, UserStore};
    let store = SledStore::open(&sled.data_dir.join("db"), 8 << 20).expect("open sled");
    let event = |action, time| Event {
        id: 0,
        time,
        action,
        actor_id: Some(user),
        actor_username: "first".into(),
        target_id: Some(user),
        ip: Some("203.0.113.7".into()),
        user_agent: None,
        request_id: None,
        details: serde_json::Map::new(),
    };
    block(
        store
            .record(Effects::from(event(Action::LoginSucceeded, 1)).with(event(Action::Logout, 2))),
    )
    .expect("record events");
    block(store.events_after(0, 10_000)).expect("events")
}

/// The copy holds `trail` with its ids, and ids written there continue above them.
fn audit_trail_goes_on_in_the_copy(url: &str, trail: &[gatehouse::store::Event]) {
    use gatehouse::store::{Action, Event, PgStore, UserStore};
    let pg = PgStore::open(url, postgres::options(true)).expect("open the copy");
    assert_eq!(block(pg.events_after(0, 10_000)).expect("events"), trail);
    let highest = trail.last().map_or(0, |e| e.id);
    let next = Event {
        id: 0,
        action: Action::Logout,
        ..trail[0].clone()
    };
    block(pg.record(next.into())).expect("record");
    let after = block(pg.events_after(highest, 10)).expect("events");
    assert_eq!(after.len(), 1, "{after:?}");
}

#[test]
fn kill_9_of_one_replica_under_load_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let up = Upstream::start();
    let (mut a, b) = replicas(&up, true);
    let stop = AtomicBool::new(false);
    let acked: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let b_failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let (a_http, b_http) = (a.fresh(), b.fresh());
    let (_, r0) = {
        b.register("rotor");
        b.login("rotor", PASSWORD)
    };
    std::thread::scope(|s| {
        for t in 0..4 {
            let (stop, acked, b_failures) = (&stop, &acked, &b_failures);
            let http = if t % 2 == 0 {
                a_http.clone()
            } else {
                b_http.clone()
            };
            let on_b = t % 2 == 1;
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("k{t}_{i}");
                    i += 1;
                    let body = serde_json::json!({
                        "username": name, "email": format!("{name}@example.com"), "password": PASSWORD
                    });
                    match http.try_send(http.request("POST", common::paths::REGISTER).json(&body)) {
                        Ok(r) if r.status == 201 => acked.lock().expect("lock").push(name),
                        Ok(r) if on_b => b_failures.lock().expect("lock").push(format!("{} {}", r.status, r.text)),
                        Err(e) if on_b => b_failures.lock().expect("lock").push(e),
                        _ => {}
                    }
                }
            });
        }
        // Refreshes of one family through B meanwhile.
        let (stop, b_failures, b_ref) = (&stop, &b_failures, &b);
        s.spawn(move || {
            let mut token = r0;
            while !stop.load(Ordering::Relaxed) {
                let r = b_ref.refresh(&token);
                if r.status == 200 {
                    token = r.field("refresh");
                } else {
                    b_failures
                        .lock()
                        .expect("lock")
                        .push(format!("refresh {} {}", r.status, r.text));
                }
            }
        });
        std::thread::sleep(Duration::from_millis(700));
        a.kill();
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::Relaxed);
    });
    let failures = b_failures.into_inner().expect("lock");
    assert!(failures.is_empty(), "B failed while A died: {failures:?}");
    let acked = acked.into_inner().expect("lock");
    assert!(
        acked.len() > 10,
        "the load ran ({} registrations)",
        acked.len()
    );
    for name in &acked {
        b.login(name, PASSWORD);
    }
    // Restarted, A sees the same users (no duplicate: the registration race is the index's).
    a.restart();
    for name in acked.iter().take(20) {
        a.login(name, PASSWORD);
        assert_eq!(
            a.register_as(name, "other@example.com", PASSWORD).status,
            400
        );
    }
}

/// Kills the upgraded process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pingora's graceful upgrade of `g`: a new process with `serve --upgrade`, then SIGQUIT to
/// the old one once the new one waits on the upgrade socket.
fn upgrade(g: &mut Gatehouse) -> KillOnDrop {
    let old_pid = g.pid().expect("old pid");
    let log = std::fs::File::create(g.dir().join("new.log")).expect("new log");
    let mut cmd = g.command();
    cmd.args(["serve", "--upgrade"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("fd"))
        .stderr(log);
    let mut new = KillOnDrop(cmd.spawn().expect("spawn the new process"));
    let sock = std::path::PathBuf::from(&g.config.server.upgrade_sock);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            new.0.try_wait().ok().flatten().is_none(),
            "the new process exited"
        );
        assert!(Instant::now() < deadline, "no upgrade socket after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-QUIT", &old_pid.to_string()])
        .status()
        .expect("kill");
    // Not SIGTERM on top: a TERM that Pingora sees before the QUIT makes it stop without
    // handing the sockets over.
    assert_eq!(g.wait_exit(), Some(0), "the old process drains and exits");
    new
}

#[test]
fn rolling_upgrade_of_both_replicas_fails_no_request_and_never_stalls() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let up = Upstream::start();
    let (mut a, mut b) = replicas(&up, false);
    let token = a.user_token("roller");
    let stop = AtomicBool::new(false);
    let outcomes: Mutex<Vec<(Result<u16, String>, Duration)>> = Mutex::new(Vec::new());
    let (a_http, b_http) = (a.fresh(), b.fresh());
    let _new = std::thread::scope(|s| {
        for http in [a_http, b_http] {
            let (stop, outcomes, token) = (&stop, &outcomes, &token);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    let outcome = http
                        .try_send(http.request("GET", &format!("/app/{n}")).bearer_auth(token))
                        .map(|r| r.status);
                    outcomes
                        .lock()
                        .expect("lock")
                        .push((outcome, started.elapsed()));
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let new_a = upgrade(&mut a);
        std::thread::sleep(Duration::from_millis(300));
        let new_b = upgrade(&mut b);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        (new_a, new_b)
    });
    let outcomes = outcomes.into_inner().expect("lock");
    let failed: Vec<_> = outcomes.iter().filter(|(o, _)| *o != Ok(200)).collect();
    let slowest = outcomes.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "rolling upgrade: {} requests, slowest {slowest:?}",
        outcomes.len()
    );
    if !failed.is_empty() {
        let tail = |g: &Gatehouse| {
            let new = std::fs::read_to_string(g.dir().join("new.log")).unwrap_or_default();
            format!("--- old:\n{}\n--- new:\n{new}", g.log())
        };
        // The logs first, the verdict last: a CI log that keeps only its tail still shows what
        // failed.
        eprintln!("A:\n{}\nB:\n{}", tail(&a), tail(&b));
        let first: Vec<_> = failed.iter().take(5).collect();
        panic!("{} failed, the first: {first:?}", failed.len());
    }
    assert!(outcomes.len() > 50, "the load ran");
    assert!(
        slowest < Duration::from_secs(1),
        "no stall waiting for a store hand-over: slowest {slowest:?}"
    );
}

#[test]
fn the_kubernetes_example_runs_three_ready_replicas_with_the_url_from_a_secret() {
    let read = |rel: &str| -> serde_yaml::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    let d = read("deploy/k8s-postgres/deployment.yaml");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"], "/readyz",
        "readiness includes the store"
    );
    let env = c["env"].as_sequence().expect("env");
    let var = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
    assert_eq!(
        var("GATEHOUSE_STORE_BACKEND").expect("backend")["value"],
        "postgres"
    );
    let url = var("GATEHOUSE_STORE_URL").expect("url");
    assert_eq!(url["valueFrom"]["secretKeyRef"]["name"], "gatehouse-store");
    assert!(url.get("value").is_none(), "the URL never in the manifest");
    let pdb = read("deploy/k8s-postgres/pdb.yaml");
    assert_eq!(pdb["kind"], "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let k = read("deploy/k8s-postgres/kustomization.yaml");
    let resources: Vec<&str> = k["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    for f in ["secret.yaml", "deployment.yaml", "pdb.yaml"] {
        assert!(resources.contains(&f), "{f} in the kustomization");
    }
}

/// Django's `pbkdf2_sha256$...` (few rounds: the importer keeps whatever count it is given).
fn django_pbkdf2(password: &str, salt: &str) -> String {
    use base64::Engine;
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), 1000, &mut key);
    format!(
        "pbkdf2_sha256$1000${salt}${}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[test]
fn import_and_createsuperuser_run_against_postgres_while_replicas_serve() {
    let up = Upstream::start();
    let (a, b) = replicas(&up, false);
    let entry = |pk: u64, name: &str| {
        serde_json::json!({"model": "accounts.user", "pk": pk, "fields": {
            "password": django_pbkdf2(PASSWORD, &format!("salt{pk}")),
            "last_login": null, "is_superuser": false, "username": name,
            "first_name": "", "last_name": "", "email": format!("{name}@example.com"),
            "is_staff": false, "is_active": true, "date_joined": "2024-01-31T12:00:00Z",
            "is_deleted": false, "groups": [], "user_permissions": []
        }})
    };
    let dump = serde_json::json!([entry(50, "imported1"), entry(51, "imported2")]);
    let path = a.dir().join("dump.json");
    std::fs::write(&path, dump.to_string()).expect("write dump");
    a.cli(&["import", path.to_str().expect("utf-8")], &[])
        .assert_ok("import while serving");
    let (access, _) = b.login("imported2", PASSWORD);
    assert_eq!(id_of(&b.get(PROFILE, Some(&access)).json), 51);
    assert!(
        id_of(&b.register("later")) > 51,
        "ids continue above the import"
    );
    b.cli(
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "boss",
            "--email",
            "boss@example.com",
        ],
        &[("GATEHOUSE_SUPERUSER_PASSWORD", PASSWORD)],
    )
    .assert_ok("createsuperuser while serving");
    let (staff, _) = a.login("boss", PASSWORD);
    a.get(common::paths::ADMIN_USERS, Some(&staff))
        .expect_status(200);
}
