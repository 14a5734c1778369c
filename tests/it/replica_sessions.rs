// Browser sessions and devices (SPEC §15) on two replicas of one PostgreSQL (SPEC §9): a
// session signed in through A works on B; signed out, ended from the list, or killed by a
// password change through A, B refuses it within `freshness_ms` (measured, as the revocation
// test of tests/it/replicas.rs measures tokens); "sign out this device" through A refuses the
// family's access token on B's next request; a use on B keeps the session alive for A; and
// `store copy` carries sessions from sled.
use crate::common;
use crate::replicas::report;
use crate::web_sessions::{session_of, set_cookie, COOKIE};

use common::upstream::Upstream;
use common::*;
use gatehouse::config::Config;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Runs per measured kind.
const RUNS: usize = 20;
/// The replicas' `freshness_ms`: a request sent this long after an acknowledged revocation
/// is never answered from what a replica knew before it (SPEC §9).
const FRESHNESS: Duration = Duration::from_millis(500);
const NEW_PASSWORD: &str = "An0ther-Pass-123";

/// Two replicas (A, B) on one fresh migrated database with the pages (default) and
/// forward-auth on, and an auth-required route `/app/` to `up`.
fn web_replicas(up: &Upstream, edit: impl Fn(&mut Config)) -> (Gatehouse, Gatehouse) {
    postgres::replicas(|b| {
        b.with_config(|c| {
            c.web.enabled = true;
            c.forward_auth.enabled = true;
            c.routes = vec![route("/app/", &[up.addr])];
            c.store.freshness_ms = FRESHNESS.as_millis() as u64;
            edit(c);
        })
    })
}

fn cookie_of(session: &str) -> String {
    format!("{COOKIE}={session}")
}

/// The status of a proxied GET through `g` with session cookie `session`.
fn proxied(g: &Gatehouse, session: &str) -> u16 {
    g.http()
        .send(
            g.http()
                .request("GET", "/app/x")
                .header("Cookie", cookie_of(session)),
        )
        .status
}

/// The status of a forward-auth ask (nginx's) to `g` for `/app/x` with `cookie` or `bearer`.
fn asked(g: &Gatehouse, cookie: Option<&str>, bearer: Option<&str>) -> u16 {
    let mut rb = g
        .http()
        .request("GET", "/_gatehouse/auth")
        .header("X-Original-URI", "/app/x");
    if let Some(s) = cookie {
        rb = rb.header("Cookie", cookie_of(s));
    }
    if let Some(t) = bearer {
        rb = rb.bearer_auth(t);
    }
    g.http().send(rb).status
}

/// An unsafe call to the user API through `g`, authenticated by session `session` with its
/// CSRF cookie `csrf` (Django's token in `X-CSRFToken`, the request's own `Origin`).
fn with_csrf(g: &Gatehouse, method: &str, path: &str, session: &str, csrf: &str) -> Resp {
    let own = g.http().url("").trim_end_matches('/').to_string();
    g.http().send(
        g.http()
            .request(method, path)
            .header(
                "Cookie",
                format!("{}; csrftoken={csrf}", cookie_of(session)),
            )
            .header("X-CSRFToken", csrf)
            .header("Origin", own),
    )
}

/// The sessions list (browser sessions and token families) through `g`, as `session` sees it.
fn devices(g: &Gatehouse, session: &str) -> Vec<Value> {
    let r = g.http().send(
        g.http()
            .request("GET", "/api/auth/sessions/")
            .header("Cookie", cookie_of(session)),
    );
    r.expect_status(200);
    r.json
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("a list: {}", r.text))
}

/// The id of the first row of `kind` in the list that is not the asking session.
fn other(rows: &[Value], kind: &str) -> String {
    rows.iter()
        .find(|d| d["kind"] == kind && d["current"] == Value::Bool(false))
        .and_then(|d| d["id"].as_str())
        .unwrap_or_else(|| panic!("no other {kind} in {rows:?}"))
        .to_string()
}

/// Polls `status` every 5 ms from `ack` (a revocation's acknowledgement) until it is 401;
/// how long that took. A 200 to a request sent more than `FRESHNESS` after `ack` fails the
/// test: that would be a replica answering from memory it cannot prove fresh.
fn refused_after(what: &str, ack: Instant, mut status: impl FnMut() -> u16) -> Duration {
    loop {
        let sent = ack.elapsed();
        match status() {
            401 => return ack.elapsed(),
            200 => assert!(
                sent <= FRESHNESS,
                "{what}: B still let it in {sent:?} after the acknowledgement"
            ),
            other => panic!("{what}: {other}"),
        }
        assert!(
            sent < Duration::from_secs(10),
            "{what}: not refused after 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_session_from_a_works_on_b_and_ended_through_a_is_refused_by_b_within_the_bound() {
    let up = Upstream::start();
    let (a, b) = web_replicas(&up, |_| {});
    let mut signed_out = Vec::new();
    let mut ended_from_list = Vec::new();
    for run in 0..RUNS {
        let name = format!("s{run}");
        a.register(&name);
        // Signed in through A, B knows it (the proxy, the user API, forward-auth).
        let (session, csrf) = session_of(&a, &name);
        assert_eq!(proxied(&b, &session), 200, "B serves A's session");
        let r = b.http().send(
            b.http()
                .request("GET", "/api/auth/profile/")
                .header("Cookie", cookie_of(&session)),
        );
        r.expect_status(200);
        assert_eq!(r.json["username"], name.as_str());
        assert_eq!(asked(&b, Some(&session), None), 200);

        // Sign out through A.
        with_csrf(&a, "DELETE", "/api/auth/session/", &session, &csrf).expect_status(204);
        let ack = Instant::now();
        signed_out.push(refused_after("sign out", ack, || proxied(&b, &session)));
        assert_eq!(asked(&b, Some(&session), None), 401, "forward-auth on B");
        assert_eq!(proxied(&a, &session), 401);

        // Another browser of the same user, ended from the list of a third through A; the
        // list through B names it as A does.
        let (doomed, _) = session_of(&a, &name);
        let (keeper, keeper_csrf) = session_of(&b, &name);
        assert_eq!(proxied(&b, &doomed), 200);
        let id = other(&devices(&b, &keeper), "browser");
        assert_eq!(id, other(&devices(&a, &keeper), "browser"));
        let path = format!("/api/auth/sessions/{id}/");
        with_csrf(&a, "DELETE", &path, &keeper, &keeper_csrf).expect_status(204);
        let ack = Instant::now();
        ended_from_list.push(refused_after("ended from the list", ack, || {
            proxied(&b, &doomed)
        }));
        assert_eq!(asked(&b, Some(&doomed), None), 401, "forward-auth on B");
        assert_eq!(proxied(&b, &keeper), 200, "the session that ended it lives");
        assert!(
            devices(&b, &keeper).iter().all(|d| d["id"] != id.as_str()),
            "an ended session leaves the list"
        );
    }
    report("session signed out", signed_out);
    report("session ended from the list", ended_from_list);
}

#[test]
fn a_password_change_through_a_ends_the_users_sessions_on_b_within_the_bound() {
    let up = Upstream::start();
    let (a, b) = web_replicas(&up, |_| {});
    let mut changed = Vec::new();
    for run in 0..RUNS {
        let name = format!("p{run}");
        let (_, access, _) = a.user(&name);
        // One browser signed in through each replica, both in use on B.
        let (on_a, _) = session_of(&a, &name);
        let (on_b, _) = session_of(&b, &name);
        for s in [&on_a, &on_b] {
            assert_eq!(proxied(&b, s), 200, "warm on B");
        }
        a.change_password(&access, PASSWORD, NEW_PASSWORD)
            .expect_status(200);
        let ack = Instant::now();
        changed.push(refused_after("password change", ack, || {
            // 401 once both are refused.
            proxied(&b, &on_a).min(proxied(&b, &on_b))
        }));
        for s in [&on_a, &on_b] {
            assert_eq!(asked(&b, Some(s), None), 401, "forward-auth on B");
            assert_eq!(proxied(&a, s), 401);
        }
        // A new sign-in with the new password works on both.
        let r = b.http().post(
            "/api/auth/session/",
            serde_json::json!({"username": name, "password": NEW_PASSWORD}),
            None,
        );
        r.expect_status(200);
        let (fresh, _) = set_cookie(&r, COOKIE).expect("a session cookie");
        assert_eq!(proxied(&a, &fresh), 200);
    }
    report("password change, sessions", changed);
}

#[test]
fn signing_out_a_device_through_a_refuses_its_access_token_on_bs_next_request() {
    let up = Upstream::start();
    let (a, b) = web_replicas(&up, |_| {});
    let mut ended = Vec::new();
    for run in 0..RUNS {
        let name = format!("t{run}");
        // A token login through B (the device), a browser through A.
        a.register(&name);
        let (access, refresh) = b.login(&name, PASSWORD);
        let (session, csrf) = session_of(&a, &name);
        assert_eq!(b.get("/app/x", Some(&access)).status, 200);
        assert_eq!(asked(&b, None, Some(&access)), 200);
        let family = other(&devices(&a, &session), "app");
        let path = format!("/api/auth/sessions/{family}/");
        with_csrf(&a, "DELETE", &path, &session, &csrf).expect_status(204);
        let ack = Instant::now();
        if run % 2 == 0 {
            // Measured: how soon B refuses it.
            ended.push(refused_after("sign out this device", ack, || {
                b.get("/app/x", Some(&access)).status
            }));
        } else {
            // The very next request after the bound, inline and through forward-auth.
            std::thread::sleep(FRESHNESS.saturating_sub(ack.elapsed()));
            assert_eq!(
                b.get("/app/x", Some(&access)).status,
                401,
                "run {run}: B's first request after the bound"
            );
        }
        assert_eq!(asked(&b, None, Some(&access)), 401, "forward-auth on B");
        b.refresh(&refresh).expect_status(401);
        assert_eq!(proxied(&b, &session), 200, "the browser is untouched");
        assert!(
            devices(&b, &session).iter().all(|d| d["kind"] != "app"),
            "the device left the list"
        );
    }
    report("sign out this device", ended);
}

/// The store's last-seen time of the asking session, from the list through `g` (a use
/// itself).
fn stored_last_seen(g: &Gatehouse, session: &str) -> u64 {
    devices(g, session)
        .iter()
        .find(|d| d["current"] == Value::Bool(true))
        .and_then(|d| d["last_seen"].as_u64())
        .expect("the current session with its last_seen")
}

/// Idle expiry across replicas in real time, with the smallest idle limit (one minute, the
/// interval "last seen" is written at most once in): a session used only on B stays alive for
/// A, which last saw it over a minute ago; one used nowhere is idle on both. The same with
/// explicit clocks and 30 minutes: `auth::sessions` unit tests. About 80 s.
#[test]
fn a_session_used_on_b_stays_alive_for_a_and_one_used_nowhere_goes_idle() {
    use gatehouse::auth::sessions::TOUCH_EVERY_SECONDS;
    let up = Upstream::start();
    let (a, b) = web_replicas(&up, |c| c.web.session_idle_minutes = 1);
    a.register("ivy");
    let (kept, _) = session_of(&a, "ivy");
    let (left, _) = session_of(&a, "ivy");
    let t0 = Instant::now();
    for s in [&kept, &left] {
        assert_eq!(proxied(&a, s), 200, "A has seen both");
    }
    let created = stored_last_seen(&b, &kept);
    // B alone uses `kept`, every 2 s, for 80 s; the store hears of it at most once a minute.
    let mut writes = vec![created];
    while t0.elapsed() < Duration::from_secs(80) {
        assert_eq!(proxied(&b, &kept), 200, "B at {:?}", t0.elapsed());
        let seen = stored_last_seen(&b, &kept);
        if writes.last() != Some(&seen) {
            writes.push(seen);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        writes.len() >= 2
            && writes
                .windows(2)
                .all(|w| w[1] >= w[0] + TOUCH_EVERY_SECONDS),
        "last_seen written once a minute: {writes:?}"
    );
    // A saw both last 80 s ago, past the idle limit: the store tells it B saw one since.
    assert_eq!(proxied(&a, &kept), 200, "B's use keeps it alive for A");
    assert_eq!(proxied(&a, &left), 401, "idle on A");
    assert_eq!(proxied(&b, &left), 401, "idle on B");
    assert_eq!(asked(&a, Some(&kept), None), 200);
}

#[test]
fn store_copy_carries_browser_sessions_from_sled() {
    let up = Upstream::start();
    let web = |c: &mut Config| {
        c.web.enabled = true;
        c.routes = vec![route("/app/", &[up.addr])];
    };
    let mut sled = Gatehouse::new().with_config(web).start();
    sled.register("uma");
    let (_, refresh) = sled.login("uma", PASSWORD);
    let (live, _) = session_of(&sled, "uma");
    let (ended, csrf) = session_of(&sled, "uma");
    with_csrf(&sled, "DELETE", "/api/auth/session/", &ended, &csrf).expect_status(204);
    assert_eq!(proxied(&sled, &live), 200);
    let before = devices(&sled, &live);
    assert_eq!(before.len(), 2, "a browser and a device: {before:?}");
    sled.terminate();

    let (url, _) = postgres::empty_database();
    let copy = sled.cli(&["store", "copy", "--to", &url], &[]);
    copy.assert_ok("store copy");
    assert!(
        copy.stderr.contains("browser sessions: 1/1")
            && copy.stdout.contains("copied 1 browser sessions"),
        "{}{}",
        copy.stderr,
        copy.stdout
    );

    // A replica on the copy: the browser stays signed in, the ended one stays ended, the
    // list is the same (last_seen aside: the list itself is a use).
    let pg = Gatehouse::new().postgres(&url).with_config(web).start();
    assert_eq!(proxied(&pg, &live), 200, "sled's session");
    assert_eq!(proxied(&pg, &ended), 401, "signed out stays signed out");
    let without_last_seen = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .map(|mut d| {
                if let Some(o) = d.as_object_mut() {
                    o.remove("last_seen");
                }
                d
            })
            .collect()
    };
    assert_eq!(
        without_last_seen(devices(&pg, &live)),
        without_last_seen(before)
    );
    pg.refresh(&refresh).expect_status(200);
}
