// gatehouse on a PostgreSQL that takes only TLS connections (on a throwaway cluster of its own,
// `Cluster::private()`: it turns TLS on in the server, which the other tests must not see). `sslmode=require` goes through rustls and checks the
// server's certificate: against the CA in GATEHOUSE_STORE_CA_FILE it migrates and serves, every
// connection it holds (the pool and the change feed) is encrypted, and a revocation through one
// replica reaches the other over the encrypted feed. Without the CA, or without TLS, it refuses
// and says why.
use crate::common;

use common::*;
use gatehouse::config::env::STORE_CA_FILE_VAR;
use std::time::{Duration, Instant};

#[test]
fn sslmode_require_is_encrypted_verified_and_refused_otherwise() {
    let ca = certs::Ca::new("gatehouse test PostgreSQL CA");
    let cert = ca.server(&["127.0.0.1", "localhost"], 30);
    let cluster = postgres::Cluster::private();
    let (url, db) = cluster.empty_database();
    cluster.require_tls(&cert, &db);
    let tls_url = format!("{url}?sslmode=require");
    let ca_file = ca.root.cert_str();
    let on = |url: &str| {
        Gatehouse::new()
            .postgres(url)
            .env(STORE_CA_FILE_VAR, &ca_file)
    };

    // Refusals first, while the database is still empty: each names its cause.
    let plain = Gatehouse::new()
        .postgres(&format!("{url}?sslmode=disable"))
        .build();
    plain
        .cli(&["migrate"], &[])
        .assert_failed("a plain connection to a TLS-only database")
        .assert_says("no encryption", "PostgreSQL's reason reaches the operator");
    let unverified = Gatehouse::new().postgres(&tls_url).build();
    let run = unverified.cli(&["migrate"], &[]);
    run.assert_failed("TLS against a certificate nobody said to trust");
    assert!(
        run.output().to_lowercase().contains("certificate"),
        "the refusal says it is the certificate: {}",
        run.output()
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        Ok("0".into()),
        "nothing was written over a connection that was refused"
    );

    on(&tls_url)
        .build()
        .cli(&["migrate"], &[])
        .assert_ok("migrate over verified TLS");
    let a = on(&tls_url).start();
    let b = on(&tls_url).start();
    let (_, access, _) = a.user("encrypted");
    assert_eq!(b.get("/api/auth/profile/", Some(&access)).status, 200);

    let counts = cluster
        .psql(
            &db,
            &format!(
                "SELECT count(*) FILTER (WHERE s.ssl) || ' ' || count(*) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{db}' \
                 AND a.pid <> pg_backend_pid()"
            ),
        )
        .expect("pg_stat_ssl");
    let (encrypted, all) = counts.split_once(' ').expect("two numbers");
    let all: u32 = all.parse().expect("a count");
    assert!(
        all >= 4,
        "two replicas hold a pool connection and a feed each: {counts}"
    );
    assert_eq!(
        encrypted,
        all.to_string(),
        "every connection is TLS: {counts}"
    );

    // The change feed works over TLS: a soft delete through A is refused on B at once.
    a.soft_delete(&access).expect_status(200);
    let t0 = Instant::now();
    while b.get("/api/auth/profile/", Some(&access)).status == 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "B still accepts a deleted user's token after {:?}",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
