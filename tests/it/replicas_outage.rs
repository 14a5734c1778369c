// A replica on PostgreSQL while the database goes away and comes back (on a throwaway cluster
// of its own, `Cluster::private()`: it stops the server, which the other tests must not see). While it cannot read the database it answers 503
// JSON with Retry-After, never a 200 from stale memory past t0 + freshness_ms; it recovers by
// itself once the database is back.
use crate::common;

use common::upstream::Upstream;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn database_down_means_503_never_a_stale_200_and_recovery_by_itself() {
    let up = Upstream::start();
    let cluster = postgres::Cluster::private();
    let url = cluster.database();
    let make = || {
        Gatehouse::new()
            .postgres(&url)
            .with_config(|c| {
                c.routes = vec![route("/app/", &[up.addr])];
                c.store.freshness_ms = 500;
            })
            .start()
    };
    let a = make();
    let b = make();
    let (_, access, _) = a.user("steady");
    assert_eq!(b.get("/app/x", Some(&access)).status, 200, "B warm");

    cluster.stop();
    let t0 = Instant::now();
    let mut saw_503 = None;
    while t0.elapsed() < Duration::from_secs(3) {
        let sent = t0.elapsed();
        let r = b.get("/app/x", Some(&access));
        match r.status {
            200 => assert!(
                sent <= Duration::from_millis(500),
                "B served from memory {sent:?} after the database went"
            ),
            503 => saw_503 = Some(r),
            other => panic!("B answered {other} while the database is down: {}", r.text),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = saw_503.expect("B answers 503 while it cannot read the database");
    assert!(r.json.get("detail").is_some(), "a JSON error: {}", r.text);
    assert!(r.header("retry-after").is_some(), "with Retry-After");
    assert_ne!(b.ops().get("/readyz", None).status, 200, "not ready");
    // The API says the same, on both replicas.
    assert_eq!(a.login_attempt("steady", PASSWORD).status, 503);

    cluster.start();
    let recovered = Instant::now();
    while b.get("/app/x", Some(&access)).status != 200 {
        assert!(
            recovered.elapsed() < Duration::from_secs(10),
            "B did not recover: {}\n{}",
            b.get("/app/x", Some(&access)).text,
            b.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eventually("B is ready", || {
        (b.ops().get("/readyz", None).status == 200).then_some(())
    });
    // And hears revocations again.
    a.soft_delete(&access).expect_status(200);
    eventually("B enforces the delete", || {
        (b.get("/app/x", Some(&access)).status == 401).then_some(())
    });
    b.register("after-outage");
}
