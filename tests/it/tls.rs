// TLS on both sides (SPEC §14), end to end with certificates made here by `openssl`: the TLS
// listener with real clients (curl --http2 / --http1.1, a rustls + hyper client), every proxy
// rule over h2 as over HTTP/1.1, the redirect and HSTS, TLS upstreams verified against a
// route's CA (wrong host, unknown CA, expired: 502, never a downgrade), mTLS to an upstream,
// check-config on certificate files, and broken handshakes beside working connections.
use crate::common;

use common::certs::{Ca, Pair};
use common::paths::PASSWORD_CHANGE;
use common::tls_client::{cert_der, TlsClient, TlsResp};
use common::upstream::{self, Recorded, Upstream};
use common::*;
use gatehouse::config::{AuthMode, RouteConfig};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const ADMIN_PASSWORD: &str = "AdminPass123";

/// A CA and a certificate for localhost / 127.0.0.1 from it.
fn pki() -> (Ca, Pair) {
    let ca = Ca::new("gatehouse test CA");
    let server = ca.server(&["localhost", "127.0.0.1"], 20);
    (ca, server)
}

/// A TLS route to an upstream reached as `https://localhost:PORT`.
fn https_route(prefix: &str, up: &Upstream) -> RouteConfig {
    let mut r = public_route(prefix, &[up.addr]);
    r.upstreams = vec![format!("https://localhost:{}", up.port)
        .parse()
        .expect("an https upstream")];
    r
}

/// curl against the TLS listener: `(http_version, status, headers+body)`.
fn curl(port: u16, ca: &Pair, flag: &str, path: &str, extra: &[&str]) -> (String, u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-i",
            flag,
            "--cacert",
            &ca.cert_str(),
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl is needed for the TLS tests (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {flag} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = text.lines().last().unwrap_or_default().to_string();
    let (version, code) = last.split_once(' ').expect("the -w line");
    (version.to_string(), code.parse().expect("a status"), text)
}

#[test]
fn curl_speaks_h2_and_http11_over_tls_beside_the_plain_listener() {
    let (ca, server) = pki();
    let up = Upstream::start();
    let g = Gatehouse::new()
        .tls(&server)
        .with_config(|c| {
            c.server.hsts_max_age_seconds = 31_536_000;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    let port = g.tls_port.expect("a TLS port");
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (v, code, text) = curl(port, &ca.root, flag, "/svc/a?x=1", &[]);
        assert_eq!((v.as_str(), code), (version, 200), "{flag}: {text}");
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("strict-transport-security: max-age=31536000"),
            "{flag}: HSTS on a TLS answer: {text}"
        );
        assert!(
            lower.contains(&format!("{}: {}", upstream::MARK, up.port)),
            "{text}"
        );
        assert_eq!(
            up.last().header("x-forwarded-proto").as_deref(),
            Some("https")
        );
        // gatehouse's own answers over TLS too (the user API).
        let (v, code, text) = curl(
            port,
            &ca.root,
            flag,
            "/api/token/",
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                "{}",
            ],
        );
        assert_eq!((v.as_str(), code), (version, 400), "{flag}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("strict-transport-security"),
            "{text}"
        );
    }
    // TLS 1.2 and 1.3 are offered; older versions are not.
    for (flag, ok) in [("--tlsv1.2", true), ("--tlsv1.3", true)] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                flag,
                "--tls-max",
                &flag[6..],
                "--cacert",
                &ca.root.cert_str(),
            ])
            .arg(format!("https://localhost:{port}/svc"))
            .output()
            .expect("curl");
        assert_eq!(
            out.status.success(),
            ok,
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--tlsv1.1",
            "--tls-max",
            "1.1",
            "--cacert",
            &ca.root.cert_str(),
        ])
        .arg(format!("https://localhost:{port}/svc"))
        .output()
        .expect("curl");
    assert!(!out.status.success(), "TLS 1.1 must be refused");
    // The plain listener keeps working, without HSTS and with X-Forwarded-Proto http.
    let r = g.get("/svc/plain", None);
    r.expect_status(200);
    assert!(r.header("strict-transport-security").is_none());
    assert_eq!(
        up.last().header("x-forwarded-proto").as_deref(),
        Some("http")
    );
    // The certificate's expiry is a metric.
    let metrics = g.ops().get("/metrics", None).text;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("gatehouse_tls_certificate_expiry_timestamp_seconds{")
                && l.contains("role=\"listener\"")
        })
        .unwrap_or_else(|| panic!("no expiry metric for the listener:\n{metrics}"));
    let expiry: i64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a value");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let days = (expiry - now) / 86_400;
    assert!((18..=20).contains(&days), "{line}");
}

#[test]
fn plain_requests_get_a_308_to_the_tls_listener() {
    let (ca, server) = pki();
    let up = Upstream::start();
    let g = Gatehouse::new()
        .tls(&server)
        .with_config(|c| {
            c.server.redirect_to_https = true;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    let port = g.tls_port.expect("a TLS port");
    let raw =
        g.raw("POST /svc/a?b=1 HTTP/1.1\r\nHost: example.test:8080\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(raw.status, 308, "{:?}", raw.headers);
    assert_eq!(
        raw.header("location"),
        Some(format!("https://example.test:{port}/svc/a?b=1"))
    );
    assert_eq!(up.count(), 0, "a redirected request is not forwarded");
    // Followed by curl, it arrives over TLS.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-L",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{scheme}",
            "--cacert",
            &ca.root.cert_str(),
        ])
        .arg(format!("http://localhost:{}/svc/b", g.port))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase(),
        "200 https"
    );
    assert_eq!(
        up.last().header("x-forwarded-proto").as_deref(),
        Some("https")
    );
}

#[test]
fn a_tls_only_server_listens_on_tls_alone() {
    let (ca, server) = pki();
    let up = Upstream::start();
    let g = Gatehouse::new()
        .tls(&server)
        .with_config(|c| {
            c.server.listen = None;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    let client = TlsClient::new(g.tls_port.expect("TLS"), &[&ca.root.cert], true);
    assert_eq!(client.get("/a", &[]).status, 200);
    let log = g.log();
    assert!(log.contains("listening on off (plain HTTP)"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// every proxy rule over h2 as over HTTP/1.1

fn identity(seen: &Recorded) -> Vec<Vec<String>> {
    [
        "x-user-id",
        "x-user-name",
        "x-user-is-staff",
        "x-user-groups",
    ]
    .iter()
    .map(|h| seen.header_values(h))
    .collect()
}

#[test]
fn the_proxy_matrix_holds_over_h2_and_http11() {
    let (ca, server) = pki();
    let up = Upstream::start();
    let g = Gatehouse::new()
        .tls(&server)
        .with_config(|c| {
            c.routes = vec![
                route("/", &[up.addr]),
                public_route("/pub/", &[up.addr]),
                RouteConfig {
                    require_staff: true,
                    ..route("/staff/", &[up.addr])
                },
                RouteConfig {
                    strip_prefix: true,
                    auth: AuthMode::Public,
                    ..route("/strip/", &[up.addr])
                },
            ]
        })
        .superuser("admin", "admin@example.com", ADMIN_PASSWORD)
        .start();
    let port = g.tls_port.expect("TLS");
    for h2 in [true, false] {
        let client = TlsClient::new(port, &[&ca.root.cert], h2);
        let label = if h2 { "h2" } else { "http/1.1" };
        let name = format!("eve{}", u8::from(h2));
        let (id, access, _) = g.user(&name);
        let auth = format!("Bearer {access}");
        let spoof: Vec<(&str, &str)> = vec![
            ("x-user-id", "1"),
            ("X-User-Id", "2"),
            ("x-user-name", "admin"),
            ("X-USER-IS-STAFF", "true"),
            ("x-user-groups", "admins"),
            ("x-gatehouse-assertion", "forged"),
        ];
        let mut headers = spoof.clone();
        headers.push(("authorization", &auth));
        headers.push(("x-request-id", "my-request-0001"));
        let r = client.get("/svc/x?q=1", &headers);
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        assert_eq!(r.version, if h2 { "HTTP/2.0" } else { "HTTP/1.1" });
        assert_eq!(r.header("x-request-id").as_deref(), Some("my-request-0001"));
        let seen = up.last();
        assert_eq!(seen.uri, "/svc/x?q=1", "{label}");
        assert_eq!(
            identity(&seen),
            vec![
                vec![id.to_string()],
                vec![name.clone()],
                vec!["false".to_string()],
                vec![String::new()]
            ],
            "{label}: only gatehouse's identity headers"
        );
        assert!(seen.header("x-gatehouse-assertion").is_none(), "{label}");
        assert_eq!(seen.header_values("x-request-id"), vec!["my-request-0001"]);
        assert_eq!(seen.header_values("x-forwarded-proto"), vec!["https"]);
        assert!(
            seen.header("host").is_some(),
            "{label}: the upstream gets a Host"
        );
        // Spoofing on a public route: dropped, no identity added.
        let r = client.get("/pub/a", &spoof);
        assert_eq!(r.status, 200);
        assert!(identity(&up.last()).iter().all(Vec::is_empty), "{label}");
        // Routing on the real path: dot segments resolved before routing and deciding.
        let before = up.count();
        let r = client.get("/pub/../staff/x", &[("authorization", &auth)]);
        assert_eq!((r.status, r.json()), (403, forbidden()), "{label}");
        let r = client.get("/pub/..%2fstaff/x", &[]);
        assert_eq!(r.status, 400, "{label}: an encoded slash");
        let r = client.get("/strip/deep/x", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(up.last().uri, "/deep/x", "{label}: strip_prefix");
        assert_eq!(up.count(), before + 1);
        // 401 bodies.
        let r = client.get("/svc/x", &[]);
        assert_eq!((r.status, r.json()), (401, not_provided()), "{label}");
        let r = client.get("/svc/x", &[("authorization", "Bearer nope")]);
        assert_eq!(r.status, 401, "{label}");
        // A body streams through with its length.
        let body = vec![b'x'; 3 * 1024 * 1024 + 17];
        let r = client
            .request(
                "POST",
                "/svc/upload",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/octet-stream"),
                ],
                body.clone(),
            )
            .expect("upload");
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        assert_eq!(up.last().body_len, body.len() as u64, "{label}");
        // Revocation at once: a password change kills the token for the next request.
        let changed = g.change_password(&access, PASSWORD, "NewPass123!x");
        changed.expect_status(200);
        let r = client.get("/svc/after", &[("authorization", &auth)]);
        assert_eq!(
            (r.status, r.json()),
            (401, bad_access("Token is invalid")),
            "{label}"
        );
        // The user API over TLS.
        let r = client
            .request(
                "POST",
                PASSWORD_CHANGE,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                b"{}".to_vec(),
            )
            .expect("api");
        assert_eq!(r.status, 401, "{label}");
    }
}

// ---------------------------------------------------------------------------------------------
// TLS upstreams

#[test]
fn tls_upstreams_are_verified_and_never_downgraded() {
    let (ca, server) = pki();
    let good = Upstream::start_tls(&server, None);
    let wrong_host = Upstream::start_tls(&ca.server(&["elsewhere.test"], 20), None);
    let expired = Upstream::start_tls(&ca.server(&["localhost"], -1), None);
    let other_ca = Ca::new("nobody's CA");
    let unknown = Upstream::start_tls(&other_ca.server(&["localhost"], 20), None);
    let ca_path = ca.root.cert_str();
    let g = Gatehouse::new()
        .with_config(|c| {
            let with_ca = |prefix: &str, up: &Upstream| RouteConfig {
                upstream_ca: ca_path.clone(),
                ..https_route(prefix, up)
            };
            c.routes = vec![
                with_ca("/good/", &good),
                with_ca("/wrong-host/", &wrong_host),
                with_ca("/expired/", &expired),
                with_ca("/unknown/", &unknown),
                // The system roots do not know the test CA.
                https_route("/system-roots/", &good),
                // Plain HTTP to a TLS port is not TLS: it is refused by the upstream, not a
                // way around verification.
                public_route("/plain-to-tls/", &[good.addr]),
            ];
        })
        .start();
    let r = g.get("/good/a", None);
    r.expect_status(200);
    assert_eq!(r.header(upstream::MARK), Some(good.port.to_string()));
    assert_eq!(good.last().uri, "/good/a");
    for (path, up, why) in [
        (
            "/wrong-host/a",
            &wrong_host,
            "certificate not valid for name",
        ),
        ("/expired/a", &expired, "Expired"),
        ("/unknown/a", &unknown, "UnknownIssuer"),
        ("/system-roots/a", &good, "UnknownIssuer"),
    ] {
        let before = up.count();
        let r = g.get(path, None);
        assert_eq!(r.status, 502, "{path}: {}", r.text);
        assert_eq!(
            r.json,
            json!({"detail": "The upstream service is unavailable."}),
            "{path}"
        );
        assert_eq!(up.count(), before, "{path}: nothing reached the upstream");
        let log = g.wait_for_log(why);
        assert!(
            log.contains(&format!("{}", up.addr)),
            "{path}: the log names the upstream"
        );
    }
    let r = g.get("/plain-to-tls/a", None);
    assert_eq!(r.status, 502, "{}", r.text);
    // Health checks use TLS: the route whose upstream does not verify is marked down.
    let log = g.wait_for_log(&format!(
        "upstream {} of route /unknown/ is down (TLS:",
        unknown.addr
    ));
    assert!(
        !log.contains(&format!("upstream {} of route /good/ is down", good.addr)),
        "{log}"
    );
    assert!(
        !log.contains("BEGIN") && !log.contains("PRIVATE"),
        "no key material in the log"
    );
}

#[test]
fn mtls_to_an_upstream_that_requires_a_client_certificate() {
    let (ca, server) = pki();
    let client_ca = Ca::new("clients");
    let up = Upstream::start_tls(&server, Some(&client_ca.root.cert));
    let client = client_ca.client("gatehouse");
    let strangers = Ca::new("strangers");
    let stranger = strangers.client("gatehouse");
    let ca_path = ca.root.cert_str();
    let g = Gatehouse::new()
        .with_config(|c| {
            let base = RouteConfig {
                upstream_ca: ca_path.clone(),
                ..https_route("/with/", &up)
            };
            c.routes = vec![
                RouteConfig {
                    upstream_client_cert: client.cert_str(),
                    upstream_client_key: client.key_str(),
                    ..base.clone()
                },
                RouteConfig {
                    prefix: "/without/".into(),
                    ..base.clone()
                },
                RouteConfig {
                    prefix: "/stranger/".into(),
                    upstream_client_cert: stranger.cert_str(),
                    upstream_client_key: stranger.key_str(),
                    ..base
                },
            ];
        })
        .start();
    for _ in 0..3 {
        let r = g.get("/with/a", None);
        r.expect_status(200);
    }
    assert_eq!(up.count(), 3);
    assert_eq!(g.get("/without/a", None).status, 502);
    assert_eq!(g.get("/stranger/a", None).status, 502);
    assert_eq!(
        up.count(),
        3,
        "no request without the right client certificate"
    );
    // The route's own client certificate is still used after the others failed.
    g.get("/with/b", None).expect_status(200);
}

// ---------------------------------------------------------------------------------------------
// check-config and bad files

#[test]
fn check_config_checks_the_certificate_files() {
    let (ca, server) = pki();
    let expired = ca.server(&["localhost"], -1);
    let other = ca.server(&["localhost"], 20);
    let g = Gatehouse::new().tls(&server).build();
    let out = g.cli(&["check-config"], &[]);
    out.assert_ok("check-config with a good certificate");
    out.assert_says("days left", "the certificate's days left");
    out.assert_says("ALPN h2 and http/1.1", "explains the TLS listener");
    out.assert_says("CN=localhost", "names the certificate");
    let cases = [
        (expired.cert_str(), expired.key_str(), "expired on"),
        (server.cert_str(), other.key_str(), "does not go with"),
        (
            "/nonexistent/cert.pem".to_string(),
            server.key_str(),
            "cannot read",
        ),
        (server.key_str(), server.key_str(), "no CERTIFICATE"),
        (server.cert_str(), server.cert_str(), "no PRIVATE KEY"),
    ];
    for (cert, key, says) in cases {
        let bad = Gatehouse::new()
            .with_config(|c| {
                c.server.tls_listen = Some(free_addr());
                c.server.tls_cert = cert.clone();
                c.server.tls_key = key.clone();
            })
            .build();
        let out = bad.cli(&["check-config"], &[]);
        out.assert_failed(&format!("check-config with {cert} / {key}"));
        out.assert_says(says, "says what is wrong with the file");
        out.assert_says("server.tls_", "names the key");
        let out = bad.cli(&["serve"], &[]);
        out.assert_failed("serve refuses it too");
        out.assert_says(says, "serve says why");
    }
    // Keys that go together.
    let bad = Gatehouse::new()
        .with_config(|c| c.server.hsts_max_age_seconds = 60)
        .build();
    bad.cli(&["check-config"], &[])
        .assert_failed("HSTS without TLS")
        .assert_says("server.tls_listen", "names what is missing");
    let bad = Gatehouse::new()
        .with_config(|c| {
            let mut r = public_route("/", &[free_addr()]);
            r.upstream_ca = ca.root.cert_str();
            c.routes = vec![r];
        })
        .build();
    bad.cli(&["check-config"], &[])
        .assert_failed("a CA for a plain upstream")
        .assert_says("https://", "says it needs an https upstream");
}

// ---------------------------------------------------------------------------------------------
// broken handshakes

#[test]
fn garbage_and_truncated_handshakes_do_not_disturb_other_connections() {
    let (ca, server) = pki();
    let up = Upstream::start();
    let g = Gatehouse::new()
        .tls(&server)
        .with_config(|c| c.routes = vec![public_route("/", &[up.addr])])
        .start();
    let port = g.tls_port.expect("TLS");
    let client = TlsClient::new(port, &[&ca.root.cert], true);
    let mut held = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let bytes: Vec<u8> = match i % 4 {
            // Plain HTTP on the TLS port.
            0 => b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            // A record header announcing a ClientHello, then nothing.
            1 => vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc],
            // Random bytes.
            2 => (0..512u32)
                .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            // Nothing at all.
            _ => Vec::new(),
        };
        s.write_all(&bytes).expect("write");
        held.push(s);
        // Working clients in between.
        assert_eq!(
            client.get("/ok", &[]).status,
            200,
            "after broken connection {i}"
        );
    }
    // The garbage ones are closed by the server; the silent ones are not in the way.
    for (i, s) in held
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| i % 4 == 0 || i % 4 == 2)
    {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
            assert!(total < 4096, "connection {i} keeps talking");
        }
    }
    let h1 = TlsClient::new(port, &[&ca.root.cert], false);
    assert_eq!(h1.get("/still", &[]).status, 200);
    assert_eq!(g.get("/plain-still", None).status, 200);
    let last: TlsResp = client.get("/last", &[]);
    assert_eq!(
        last.peer_cert,
        cert_der(&server.cert),
        "the configured certificate"
    );
}
