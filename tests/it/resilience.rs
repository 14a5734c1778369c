//! Holding under abuse and at the worst moments: SIGKILL mid-stream loses no acknowledged
//! write, races have one winner, login timing does not reveal users, a login flood is
//! answered while the proxy keeps flowing, and a silent client is cut off.
use crate::common;

use common::paths::{PROFILE, REGISTER};
use common::upstream::Upstream;
use common::*;
use gatehouse::config::PasswordConfig;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_registration() {
    let mut g = Gatehouse::new().start();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let count = |a: &Arc<Mutex<Vec<String>>>| a.lock().map(|a| a.len()).unwrap_or(0);
    let cycles = 4;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let acknowledged = Arc::clone(&acknowledged);
                let stop = Arc::clone(&stop);
                let http = g.http();
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("c{cycle}w{w}n{n}");
                        n += 1;
                        let body = json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
                        let sent = http.try_send(
                            http.request("POST", REGISTER)
                                .timeout(Duration::from_secs(5))
                                .json(&body),
                        );
                        match sent {
                            Ok(r) if r.status == 201 => {
                                if let Ok(mut a) = acknowledged.lock() {
                                    a.push(name);
                                }
                            }
                            // Killed mid-request: not acknowledged, so not promised.
                            _ => std::thread::sleep(Duration::from_millis(20)),
                        }
                    }
                })
            })
            .collect();
        // Kill while the writers are in full flow: once this cycle has had its acknowledgements.
        let before = count(&acknowledged);
        eventually("registrations acknowledged in this cycle", || {
            (count(&acknowledged) >= before + 8).then_some(())
        });
        g.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("a writer thread");
        }
        g.restart();
    }
    // Each cycle had at least 8 acknowledgements before its kill (the wait above fails
    // otherwise): enough writes to prove something.
    let names = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    for name in &names {
        let r = g.login_attempt(name, PASSWORD);
        assert_eq!(
            r.status, 200,
            "{name} had a 201 but cannot log in after {cycles} SIGKILLs: {}",
            r.text
        );
    }
    eprintln!(
        "durability: {} acknowledged registrations survived {cycles} SIGKILL cycles",
        names.len()
    );
}

#[test]
fn racing_username_changes_have_exactly_one_winner() {
    let g = Gatehouse::new().start();
    let tokens: Vec<String> = (0..12)
        .map(|i| g.user_token(&format!("racer{i}")))
        .collect();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let g = &g;
                s.spawn(move || {
                    let name = if i % 2 == 0 { "winner" } else { "WINNER" };
                    g.call("PATCH", PROFILE, Some(json!({ "username": name })), Some(t))
                        .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a racer thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        11,
        "{statuses:?}"
    );
}

/// The mean of the middle half: robust to a stray slow sample, and, unlike a median, stable
/// when the samples fall into two speeds in equal numbers.
fn interquartile_mean(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let middle = &v[v.len() / 4..v.len() - v.len() / 4];
    middle.iter().sum::<f64>() / middle.len() as f64
}

#[test]
fn unknown_user_logins_cost_the_same_as_wrong_passwords() {
    // Real argon2 parameters: the dummy verification must match a real one.
    let g = Gatehouse::new()
        .with_config(|c| c.passwords = PasswordConfig::default())
        .start();
    g.register("known");
    let time = |username: &str| {
        let started = Instant::now();
        g.login_attempt(username, "Wrong-Pass-42")
            .expect(401, wrong_login());
        started.elapsed().as_secs_f64()
    };
    let (mut unknown, mut known) = (Vec::new(), Vec::new());
    // The two hashing threads may run on vCPUs of different speeds for a while (measured:
    // 16-19 ms on one, 27-28 ms on the other), and consecutive logins tend to alternate
    // between them: strictly alternating kinds would put each kind on one thread. The order
    // u k k u ... gives each kind both positions.
    for i in 0..16 {
        if i % 2 == 0 {
            unknown.push(time(&format!("ghost{i}")));
            known.push(time("known"));
        } else {
            known.push(time("known"));
            unknown.push(time(&format!("ghost{i}")));
        }
    }
    let ratio = interquartile_mean(unknown) / interquartile_mean(known);
    eprintln!("timing: unknown/known login time ratio = {ratio:.2}");
    assert!(
        (0.6..=1.6).contains(&ratio),
        "ratio {ratio:.2} reveals which users exist"
    );
}

#[test]
fn a_login_flood_is_answered_and_the_proxy_keeps_flowing() {
    let up = Upstream::start();
    // Real argon2 parameters and a short queue, so the flood really queues.
    let g = Gatehouse::new()
        .with_config(|c| {
            c.passwords = PasswordConfig {
                hash_queue: 16,
                ..PasswordConfig::default()
            };
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    g.register("flood");
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let http = g.http();
            std::thread::spawn(move || {
                let password = if i % 2 == 0 { PASSWORD } else { "Wrong-Pass-1" };
                let r = http.try_send(
                    http.request("POST", "/api/token/")
                        .timeout(Duration::from_secs(60))
                        .json(&json!({"username": "flood", "password": password})),
                );
                match r {
                    Ok(r) => (r.status, r.header("retry-after").is_some()),
                    Err(_) => (0, false),
                }
            })
        })
        .collect();
    // Meanwhile proxied requests keep being answered quickly.
    let mut proxied = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        g.get("/health-of-upstream", None).expect_status(200);
        proxied.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let answers: Vec<(u16, bool)> = flood
        .into_iter()
        .map(|h| h.join().expect("a flood thread"))
        .collect();
    for (status, retry_after) in &answers {
        assert!(
            [200, 401, 429, 503].contains(status),
            "unexpected answer {status}"
        );
        if *status == 503 || *status == 429 {
            assert!(retry_after, "{status} without Retry-After");
        }
    }
    let slowest = proxied.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(1),
        "proxied request took {slowest:?} during the flood"
    );
    let kib = rss_kib(g.pid().expect("pid"));
    assert!(kib < 400 * 1024, "RSS after the flood: {kib} KiB");
    let count = |s: u16| answers.iter().filter(|(st, _)| *st == s).count();
    eprintln!(
        "login flood: 200 ok={} 401={} 429={} 503={}, slowest proxied {slowest:?}",
        count(200),
        count(401),
        count(429),
        count(503)
    );
}

/// Many writes waiting for their flush at once (logins write `last_login` and a refresh family)
/// once filled sled's own I/O pool with waiting flushes and hung the process, `/metrics`
/// too; the store's group commit runs flushes on one thread of its own.
#[test]
fn many_concurrent_logins_all_finish_and_the_server_stays_up() {
    let g = Gatehouse::new()
        .with_config(|c| {
            c.throttle.enabled = false;
            c.passwords.argon2_memory_kib = 64;
            c.passwords.argon2_iterations = 1;
            c.passwords.hash_queue = 1024;
        })
        .start();
    g.register("busy");
    let started = Instant::now();
    let logins: Vec<_> = (0..32)
        .map(|_| {
            let http = g.http();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| {
                        http.try_send(
                            http.request("POST", "/api/token/")
                                .timeout(Duration::from_secs(20))
                                .json(&json!({"username": "busy", "password": PASSWORD})),
                        )
                        .map(|r| r.status)
                        .unwrap_or(0)
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    // The ops listener answers while the logins run.
    std::thread::sleep(Duration::from_millis(200));
    let metrics = g.ops().try_send(
        g.ops()
            .request("GET", "/metrics")
            .timeout(Duration::from_secs(5)),
    );
    let statuses: Vec<u16> = logins
        .into_iter()
        .flat_map(|h| h.join().expect("a login thread"))
        .collect();
    let elapsed = started.elapsed();
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} logins did not get 200 (0 = no answer in 20 s) in {elapsed:?}",
        statuses.len()
    );
    assert_eq!(
        metrics.map(|r| r.status).ok(),
        Some(200),
        "/metrics answered"
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "800 logins took {elapsed:?}"
    );
    eprintln!("800 concurrent logins on sled in {elapsed:?}");
}

#[test]
fn a_client_that_stops_sending_mid_body_is_cut_off() {
    let g = Gatehouse::new()
        .with_config(|c| c.limits.client_read_timeout_seconds = 1)
        .start();
    let started = Instant::now();
    // 6 of the 100 bytes announced; the answer, if any, is held to the framing rules.
    let raw = g.raw(
        "POST /api/token/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    );
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "connection held for {waited:?}"
    );
    // The server answered or closed; it did not wait for the rest of the body.
    assert!(
        raw.status == 0 || (400..500).contains(&raw.status),
        "{} {}",
        raw.status,
        raw.text()
    );
    // And it still serves others.
    g.get(PROFILE, None).expect(401, not_provided());
}
