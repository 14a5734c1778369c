// Reloading (SPEC §14): `gatehouse reload` (SIGHUP through the pid file) re-reads the config
// and the certificate files and swaps routes, upstreams with their health checks and the TLS
// listener's certificate while requests keep flowing; an invalid file changes nothing and
// says why; what cannot change live is named.
use crate::common;

use common::certs::{Ca, Pair};
use common::tls_client::{cert_der, TlsClient};
use common::upstream::{self, Upstream};
use common::*;
use gatehouse::config::Config;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Writes the config file as `g.config` with `edit` applied (the server reads it on reload).
fn rewrite(g: &Gatehouse, edit: impl FnOnce(&mut Config)) {
    let mut c = g.config.clone();
    edit(&mut c);
    std::fs::write(&g.config_path, toml::to_string(&c).expect("serializes")).expect("write");
}

fn reloads(g: &Gatehouse, result: &str) -> u64 {
    let text = g.ops().get("/metrics", None).text;
    let key = format!("gatehouse_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn pki() -> (Ca, Pair, Pair) {
    let ca = Ca::new("reload CA");
    let first = ca.server(&["localhost", "127.0.0.1"], 20);
    let second = ca.server(&["localhost", "127.0.0.1"], 40);
    (ca, first, second)
}

fn mark(r: &common::tls_client::TlsResp) -> Option<u16> {
    r.header(upstream::MARK).and_then(|v| v.parse().ok())
}

#[test]
fn a_reload_under_load_changes_a_route_and_the_certificate_without_a_failed_request() {
    let (ca, first, second) = pki();
    let (a, b) = (Upstream::start(), Upstream::start());
    let g = Gatehouse::new()
        .tls(&first)
        .with_config(|c| c.routes = vec![public_route("/", &[a.addr])])
        .start();
    let port = g.tls_port.expect("TLS");
    let second_der = cert_der(&second.cert);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for h2 in [true, true, false] {
        let client = TlsClient::new(port, &[&ca.root.cert], h2);
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match client.request("GET", "/load", &[], Vec::new()) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("{} {}", r.status, r.text()))
                    }
                    Err(e) => failures.lock().expect("lock").push(e),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    {
        let http = g.http();
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match http.try_send(http.request("GET", "/plain-load")) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("{} {}", r.status, r.text)),
                    Err(e) => failures.lock().expect("lock").push(e),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    eventually("load before the reload", || {
        (done.load(Ordering::SeqCst) > 50).then_some(())
    });
    let before_b = b.count();
    rewrite(&g, |c| {
        c.server.tls_cert = second.cert_str();
        c.server.tls_key = second.key_str();
        c.routes = vec![public_route("/", &[b.addr])];
    });
    g.cli(&["reload"], &[]).assert_ok("gatehouse reload");
    let log = g.wait_for_log("reload");
    assert!(!log.contains("reload refused"), "{log}");
    eventually("the new route and certificate", || {
        // A new client each time: a resumed TLS session reports the certificate of the
        // session it resumes.
        let probe = TlsClient::new(port, &[&ca.root.cert], true);
        let r = probe.get("/probe", &[]);
        (mark(&r) == Some(b.port) && r.peer_cert == second_der).then_some(())
    });
    let at_reload = done.load(Ordering::SeqCst);
    eventually("load after the reload", || {
        (done.load(Ordering::SeqCst) > at_reload + 50).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("load thread");
    }
    let failures = failures.lock().expect("lock");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across the reload: {:?}",
        failures.len(),
        done.load(Ordering::SeqCst),
        &failures[..failures.len().min(5)]
    );
    assert!(a.count() > 0 && b.count() > before_b, "both routes served");
    let a_after = a.count();
    for _ in 0..5 {
        assert_eq!(
            g.get("/after", None).header(upstream::MARK),
            Some(b.port.to_string())
        );
    }
    assert_eq!(a.count(), a_after, "the old upstream gets nothing new");
    assert_eq!(reloads(&g, "success"), 1);
    g.wait_for_log("reload: config and certificates re-read");
}

#[test]
fn an_invalid_reload_changes_nothing_and_says_why() {
    let (ca, first, second) = pki();
    let other = ca.server(&["localhost"], 20);
    let (a, b) = (Upstream::start(), Upstream::start());
    let g = Gatehouse::new()
        .tls(&first)
        .with_config(|c| c.routes = vec![public_route("/", &[a.addr])])
        .start();
    let port = g.tls_port.expect("TLS");
    let client = TlsClient::new(port, &[&ca.root.cert], true);
    let first_der = cert_der(&first.cert);
    let working = |why: &str| {
        let r = client.get("/x", &[]);
        assert_eq!(
            (r.status, mark(&r)),
            (200, Some(a.port)),
            "{why}: still the old route"
        );
        assert_eq!(r.peer_cert, first_der, "{why}: still the old certificate");
        assert_eq!(
            g.get("/y", None).header(upstream::MARK),
            Some(a.port.to_string())
        );
    };
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "a broken file",
            Box::new(|| std::fs::write(&g.config_path, "[server\nlisten = ").expect("write")),
            "reload refused, nothing changed",
        ),
        (
            "a key that is not the certificate's",
            Box::new(|| {
                rewrite(&g, |c| {
                    c.server.tls_cert = second.cert_str();
                    c.server.tls_key = other.key_str();
                    c.routes = vec![public_route("/", &[b.addr])];
                })
            }),
            "does not go with",
        ),
        (
            "a certificate file that is gone",
            Box::new(|| {
                rewrite(&g, |c| {
                    c.server.tls_cert = "/nonexistent/cert.pem".into();
                    c.routes = vec![public_route("/", &[b.addr])];
                })
            }),
            "/nonexistent/cert.pem: cannot read it",
        ),
        (
            "an upstream name that does not resolve",
            Box::new(|| {
                rewrite(&g, |c| {
                    let mut r = public_route("/", &[b.addr]);
                    r.upstreams = vec!["https://nowhere.invalid:443".parse().expect("upstream")];
                    c.routes = vec![r];
                })
            }),
            "cannot resolve nowhere.invalid",
        ),
    ];
    let pid = g.pid().expect("running").to_string();
    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    for (i, (what, write, says)) in cases.into_iter().enumerate() {
        write();
        if i == 0 {
            // `gatehouse reload` reads the file itself first (for the pid file): it refuses.
            g.cli(&["reload"], &[])
                .assert_failed(what)
                .assert_says("invalid table header", "says why");
            hup();
        } else {
            g.cli(&["reload"], &[]).assert_ok(what);
        }
        let failed = i as u64 + 1;
        eventually(&format!("{what}: the failure is counted"), || {
            (reloads(&g, "failure") == failed).then_some(())
        });
        let log = g.wait_for_log(says);
        assert!(log.contains("reload refused, nothing changed"), "{what}");
        working(what);
    }
    assert_eq!(reloads(&g, "success"), 0);
    assert!(
        !g.log().contains("PRIVATE KEY"),
        "no key material in the log"
    );
    // A valid file with settings that need a restart: the rest applies, those are named. A
    // plain SIGHUP does the same as `gatehouse reload`; a new route's upstream is checked.
    let dead = free_addr();
    rewrite(&g, |c| {
        c.server.threads = 3;
        c.jwt.access_lifetime_seconds = 77;
        c.routes = vec![
            public_route("/", &[b.addr]),
            public_route("/dead/", &[dead]),
        ];
    });
    hup();
    let log = g.wait_for_log("server.threads, jwt.access_lifetime_seconds changed but cannot change in a running process");
    assert!(log.contains("routes now [/ -> "), "{log}");
    eventually("the new route", || {
        (mark(&client.get("/z", &[])) == Some(b.port)).then_some(())
    });
    g.wait_for_log(&format!("upstream {dead} of route /dead/ is down"));
    assert_eq!(g.get("/dead/a", None).status, 502);
    assert_eq!(reloads(&g, "success"), 1);
    // The process is the same one: the reload did not restart it.
    assert_eq!(g.pid().map(|p| p.to_string()), Some(pid));
}

#[test]
fn reload_without_a_running_server_says_so() {
    let g = Gatehouse::new().build();
    let out = g.cli(&["reload"], &[]);
    out.assert_failed("no server");
    out.assert_says("pid_file", "names the pid file");
    std::fs::write(&g.config.server.pid_file, "1\n").expect("write");
    let out = g.cli(&["reload"], &[]);
    out.assert_failed("a stale pid file");
    out.assert_says("not gatehouse", "does not signal another program");
}
