// The second factor across two replicas on one PostgreSQL (SPEC §17 with §9): enrolment
// started on one replica is confirmed and used on the other, the same fresh code sent to both
// at the same moment signs in once, and failed codes count towards one lock wherever they are
// sent. Codes come only from pyotp (tests/it/common/totp.rs).
use crate::common;
use crate::mfa::{amr, confirm, otp_invalid, otp_required, sign_in, start, window, TOTP};

use common::paths::PROFILE;
use common::totp::fresh_step;
use common::*;
use serde_json::json;

/// Two replicas (A, B) on one fresh database; the (username, address) limit out of the way
/// (every request comes from loopback here).
fn replicas() -> (Gatehouse, Gatehouse) {
    postgres::replicas(|b| {
        b.with_config(|c| {
            c.throttle.login_failures_per_username_address = 1_000;
            c.store.freshness_ms = 500;
        })
    })
}

/// Rounds of the race, each with a user of its own (so that no round waits for a new step).
const ROUNDS: usize = 6;
/// Requests per round, half to each replica.
const RACERS: usize = 4;

#[test]
fn enrolled_on_one_replica_used_on_the_other_and_a_code_wins_once_across_both() {
    let (a, b) = replicas();
    for round in 0..ROUNDS {
        let name = format!("rex{round}");
        a.register(&name);
        let (access, _) = a.login(&name, PASSWORD);
        // Started on A, confirmed on B: the pending secret is the database's.
        let secret = start(&a, &access);
        fresh_step(10);
        let w = window(&secret);
        let recovery = confirm(&b, &access, &w.before);
        assert_eq!(recovery.len(), 10);
        // A asks for the code at once, and B's code signs in on A.
        a.login_attempt(&name, PASSWORD).expect(401, otp_required());
        let r = sign_in(&a, &name, json!(w.now));
        r.expect_status(200);
        assert_eq!(amr(&r.field("access")), json!(["pwd", "otp"]));
        // The same fresh code to both replicas at the same moment: one sign-in.
        let answers = race(RACERS, |i| {
            sign_in(if i % 2 == 0 { &a } else { &b }, &name, json!(w.after))
        });
        let won: Vec<usize> = (0..RACERS).filter(|&i| answers[i].status == 200).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: {:?}",
            answers
                .iter()
                .map(|r| (r.status, &r.text))
                .collect::<Vec<_>>()
        );
        for r in &answers {
            if r.status == 200 {
                assert_eq!(amr(&r.field("access")), json!(["pwd", "otp"]));
            } else {
                r.expect(401, otp_invalid());
            }
        }
        // A recovery code used on B is gone on A.
        let (on_b, _) = sign_in(&b, &name, json!(recovery[0])).tokens();
        sign_in(&a, &name, json!(recovery[0])).expect(401, otp_invalid());
        if round + 1 == ROUNDS {
            // Turned off on B: A refuses the earlier tokens within freshness_ms, and signs
            // in with the password alone.
            let (on_a, _) = sign_in(&a, &name, json!(recovery[1])).tokens();
            b.call(
                "DELETE",
                TOTP,
                Some(json!({"password": PASSWORD, "code": recovery[2]})),
                Some(&on_b),
            )
            .expect_status(204);
            let t0 = std::time::Instant::now();
            let refused = poll(|| a.get(PROFILE, Some(&on_a)).status, |s| *s == 401);
            assert_eq!(
                refused, 401,
                "A still takes a token of before the factor went"
            );
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(1),
                "{:?}",
                t0.elapsed()
            );
            let (plain, _) = a.login(&name, PASSWORD);
            assert_eq!(amr(&plain), serde_json::Value::Null);
        }
    }
}

#[test]
fn failed_codes_on_both_replicas_lock_the_second_step_on_both() {
    let (a, b) = replicas();
    a.register("lena");
    let (access, _) = a.login("lena", PASSWORD);
    let secret = start(&a, &access);
    fresh_step(20);
    let w = window(&secret);
    confirm(&a, &access, &w.before);
    // Ten wrong codes: four on A, six on B (default: ten in an hour lock).
    for i in 0..10 {
        let g = if i < 4 { &a } else { &b };
        let wrong = if i % 2 == 0 { &w.before2 } else { &w.after2 };
        sign_in(g, "lena", json!(wrong)).expect(401, otp_invalid());
    }
    for g in [&a, &b] {
        let r = sign_in(g, "lena", json!(w.now));
        r.expect_status(429);
        let wait: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers));
        assert!(wait > 3000 && wait <= 3600, "an hour's lock: {wait}");
    }
}

#[test]
fn store_copy_carries_second_factors_from_sled() {
    let mut sled = Gatehouse::new().start();
    let (_, access, _) = sled.user("sven");
    sled.register("tina");
    let secret = start(&sled, &access);
    fresh_step(25);
    let w = window(&secret);
    let recovery = confirm(&sled, &access, &w.before);
    sign_in(&sled, "sven", json!(w.now)).expect_status(200);
    sign_in(&sled, "sven", json!(recovery[0])).expect_status(200);
    sled.terminate();

    let (url, _) = postgres::empty_database();
    let copy = sled.cli(&["store", "copy", "--to", &url], &[]);
    copy.assert_ok("store copy");
    assert!(
        copy.stdout.contains("copied 1 second factors"),
        "{}{}",
        copy.stderr,
        copy.stdout
    );
    // On the copy, sven still needs his code: the used step and recovery code stay used, the
    // next code and another recovery code sign in. tina still needs none.
    let pg = Gatehouse::new().postgres(&url).start();
    pg.login_attempt("sven", PASSWORD)
        .expect(401, otp_required());
    sign_in(&pg, "sven", json!(w.now)).expect(401, otp_invalid());
    sign_in(&pg, "sven", json!(recovery[0])).expect(401, otp_invalid());
    let r = sign_in(&pg, "sven", json!(w.after));
    r.expect_status(200);
    assert_eq!(amr(&r.field("access")), json!(["pwd", "otp"]));
    sign_in(&pg, "sven", json!(recovery[1])).expect_status(200);
    let (plain, _) = pg.login("tina", PASSWORD);
    assert_eq!(amr(&plain), serde_json::Value::Null);
}
