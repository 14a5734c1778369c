//! The proxy path with real hyper upstreams on loopback: auth modes, token attacks that never
//! reach the upstream, the header-spoofing matrix, revocation on the very next request,
//! routing, failover, 502/504, streaming uploads, upgrades, CORS and request ids.
mod common;

use common::upstream::{Options, Upstream};
use common::{now, route_toml as route, rss_kib, sign_hs256, Gatehouse, PASSWORD};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A gateway with a required "/" route, a public "/pub/", an optional "/opt/" and a staff
/// "/staff/" route, all to `up`.
fn gateway(up: &Upstream) -> Gatehouse {
    Gatehouse::builder()
        .toml(&route("/", &[&up.addr], "auth = \"required\""))
        .toml(&route("/pub/", &[&up.addr], "auth = \"public\""))
        .toml(&route("/opt/", &[&up.addr], "auth = \"optional\""))
        .toml(&route("/staff/", &[&up.addr], "require_staff = true"))
        .superuser("admin", "admin@example.com", "AdminPass123")
        .start()
}

fn get(g: &Gatehouse, path: &str, headers: &[(&str, &str)]) -> common::Resp {
    let mut rb = g.request("GET", path);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    g.send(rb)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn auth_modes_and_identity_headers() {
    let up = Upstream::start();
    let g = gateway(&up);
    let token = g.user_token("alice");
    let auth = bearer(&token);

    get(&g, "/svc/x", &[]).expect(
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    assert_eq!(up.count(), 0);

    get(&g, "/svc/x?q=1", &[("Authorization", &auth)]).expect_status(200);
    let seen = up.last();
    assert_eq!(seen.uri, "/svc/x?q=1");
    assert_eq!(seen.header("x-user-id").as_deref(), Some("2"));
    assert_eq!(seen.header("x-user-name").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-user-is-staff").as_deref(), Some("false"));
    assert_eq!(seen.header("authorization"), Some(auth.clone()));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));

    get(&g, "/pub/page", &[("Authorization", "Bearer garbage")]).expect_status(200);
    assert_eq!(up.last().header("x-user-id"), None);

    get(&g, "/opt/a", &[]).expect_status(200);
    assert_eq!(up.last().header("x-user-id"), None);
    get(&g, "/opt/a", &[("Authorization", &auth)]).expect_status(200);
    assert_eq!(up.last().header("x-user-id").as_deref(), Some("2"));
    let before = up.count();
    get(&g, "/opt/a", &[("Authorization", "Bearer garbage")]).expect_status(401);
    assert_eq!(
        up.count(),
        before,
        "a bad token on an optional route is not anonymous"
    );

    get(&g, "/staff/a", &[("Authorization", &auth)]).expect(
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
    let admin = g.login("admin", "AdminPass123").0;
    get(&g, "/staff/a", &[("Authorization", &bearer(&admin))]).expect_status(200);
    assert_eq!(up.last().header("x-user-is-staff").as_deref(), Some("true"));
}

#[test]
fn token_attacks_never_reach_the_upstream() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (access, refresh) = {
        g.register("mallory");
        g.login("mallory", PASSWORD)
    };
    let secret = g.secret();
    let claims = |extra: serde_json::Value| {
        let mut c = json!({"token_type": "access", "exp": now() + 60, "iat": now(),
                           "jti": "0".repeat(32), "user_id": "2", "ver": 0});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        c
    };
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            common::b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            common::b64(claims(json!({})).to_string().as_bytes())
        )
    };
    let invalid = |m: &str| {
        json!({"detail": "Given token not valid for any token type", "code": "token_not_valid",
               "messages": [{"token_class": "AccessToken", "token_type": "access", "message": m}]})
    };
    let cases = vec![
        (unsigned("none"), invalid("Token is invalid")),
        (unsigned("None"), invalid("Token is invalid")),
        (unsigned("NONE"), invalid("Token is invalid")),
        (
            sign_hs256(
                &hs,
                &claims(json!({})),
                b"wrong-secret-wrong-secret-wrong-secret",
            ),
            invalid("Token is invalid"),
        ),
        (
            sign_hs256(&hs, &claims(json!({"exp": now() - 5})), secret.as_bytes()),
            invalid("Token is expired"),
        ),
        (refresh.clone(), invalid("Token has wrong type")),
        (
            sign_hs256(&hs, &claims(json!({"exp": null})), secret.as_bytes()),
            invalid("Token has no 'exp' claim"),
        ),
        (
            sign_hs256(
                &hs,
                &claims(json!({"exp": "9999999999"})),
                secret.as_bytes(),
            ),
            invalid("Token is invalid"),
        ),
        (
            sign_hs256(&hs, &claims(json!({"token_type": null})), secret.as_bytes()),
            invalid("Token has no type"),
        ),
        (
            sign_hs256(&hs, &claims(json!({"user_id": "999"})), secret.as_bytes()),
            json!({"detail": "User not found", "code": "user_not_found"}),
        ),
        ("garbage".to_string(), invalid("Token is invalid")),
        // Past the token cap (8 KiB), below the header cap.
        ("a".repeat(20 * 1024), invalid("Token is invalid")),
    ];
    for (i, (token, body)) in cases.iter().enumerate() {
        let r = get(&g, "/svc", &[("Authorization", &bearer(token))]);
        assert_eq!((r.status, &r.json), (401, body), "case {i}: {}", r.text);
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"api\"")
        );
    }
    // 100 KiB: past the request-head cap, refused before any parsing.
    let huge = "a".repeat(100 * 1024);
    get(&g, "/svc", &[("Authorization", &bearer(&huge))])
        .expect(431, json!({"detail": "Request header fields too large."}));
    let two = g.send(
        g.request("GET", "/svc")
            .header("Authorization", bearer(&access))
            .header("Authorization", bearer(&access)),
    );
    two.expect_status(401);
    get(
        &g,
        "/svc",
        &[(
            "Authorization",
            &format!("Bearer {access}, Bearer {access}"),
        )],
    )
    .expect_status(401);
    assert_eq!(up.count(), 0, "no attack may reach the upstream");
    // The genuine token passes, proving the route works.
    get(&g, "/svc", &[("Authorization", &bearer(&access))]).expect_status(200);
    assert_eq!(up.count(), 1);
}

#[test]
fn spoofed_identity_headers_are_stripped_in_any_case_and_number() {
    let up = Upstream::start();
    let g = gateway(&up);
    let token = g.user_token("eve");
    for (path, auth) in [("/svc/x", Some(bearer(&token))), ("/pub/x", None)] {
        let mut raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close, X-Secret\r\n");
        raw.push_str(
            "X-User-Id: 1\r\nx-user-id: 1\r\nX-USER-NAME: admin\r\nx-User-Is-Staff: true\r\n",
        );
        raw.push_str("X-User-Is-Staff: true\r\nX-Secret: hop\r\n");
        if let Some(a) = &auth {
            raw.push_str(&format!("Authorization: {a}\r\n"));
        }
        raw.push_str("\r\n");
        let answer = g.raw(raw.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        let seen = up.last();
        assert_eq!(
            seen.header_values("x-secret"),
            Vec::<String>::new(),
            "Connection-nominated"
        );
        if auth.is_some() {
            assert_eq!(seen.header_values("x-user-id"), vec!["2".to_string()]);
            assert_eq!(seen.header_values("x-user-name"), vec!["eve".to_string()]);
            assert_eq!(
                seen.header_values("x-user-is-staff"),
                vec!["false".to_string()]
            );
        } else {
            for h in ["x-user-id", "x-user-name", "x-user-is-staff"] {
                assert_eq!(
                    seen.header_values(h),
                    Vec::<String>::new(),
                    "public route: {h}"
                );
            }
        }
    }
}

#[test]
fn custom_identity_header_names_and_dropping_authorization() {
    let up = Upstream::start();
    let g = Gatehouse::builder()
        .toml("[proxy]\nuser_id_header = \"X-Auth-User\"\nforward_authorization = false\n")
        .toml(&route("/", &[&up.addr], ""))
        .start();
    let token = g.user_token("nick");
    get(
        &g,
        "/a",
        &[("Authorization", &bearer(&token)), ("X-Auth-User", "1")],
    )
    .expect_status(200);
    let seen = up.last();
    assert_eq!(seen.header_values("x-auth-user"), vec!["1".to_string()]);
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-user-id"), None);
}

#[test]
fn revocation_is_seen_by_the_very_next_proxied_request() {
    let up = Upstream::start();
    let g = gateway(&up);
    let admin = g.login("admin", "AdminPass123").0;
    let token = g.user_token("olga");
    let auth = bearer(&token);
    get(&g, "/a", &[("Authorization", &auth)]).expect_status(200);
    // Username change: the next request carries the new name.
    g.call(
        "PATCH",
        "/api/auth/profile/",
        Some(json!({"username": "olga2"})),
        Some(&token),
    )
    .expect_status(200);
    get(&g, "/a", &[("Authorization", &auth)]).expect_status(200);
    assert_eq!(up.last().header("x-user-name").as_deref(), Some("olga2"));
    // Soft delete: dead at once; restore does not revive it.
    g.call("DELETE", "/api/auth/profile/delete/", None, Some(&token))
        .expect_status(200);
    get(&g, "/a", &[("Authorization", &auth)]).expect(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    g.call(
        "PUT",
        "/api/auth/admin/users/restore/2/",
        None,
        Some(&admin),
    )
    .expect_status(200);
    get(&g, "/a", &[("Authorization", &auth)]).expect_status(401);
    let fresh = g.login("olga2", PASSWORD).0;
    get(&g, "/a", &[("Authorization", &bearer(&fresh))]).expect_status(200);
    // Password change: every earlier token dies.
    let r = g.call(
        "PUT",
        "/api/auth/profile/password/",
        Some(json!({"old_password": PASSWORD, "new_password": "NewPass123"})),
        Some(&fresh),
    );
    r.expect_status(200);
    get(&g, "/a", &[("Authorization", &bearer(&fresh))]).expect_status(401);
    let newest = r.json["access"].as_str().expect("access");
    get(&g, "/a", &[("Authorization", &bearer(newest))]).expect_status(200);
}

#[test]
fn a_tiny_cache_never_lets_a_revoked_token_through() {
    let up = Upstream::start();
    let g = Gatehouse::builder()
        .toml("[cache]\ncapacity = 1\nttl_seconds = 3600\n")
        .toml(&route("/", &[&up.addr], ""))
        .start();
    let tokens: Vec<String> = (0..20).map(|i| g.user_token(&format!("u{i}"))).collect();
    for t in &tokens {
        get(&g, "/warm", &[("Authorization", &bearer(t))]).expect_status(200);
    }
    for t in tokens.iter().step_by(3) {
        g.call("DELETE", "/api/auth/profile/delete/", None, Some(t))
            .expect_status(200);
    }
    for round in 0..3 {
        for (i, t) in tokens.iter().enumerate() {
            let want = if i % 3 == 0 { 401 } else { 200 };
            let r = get(&g, "/x", &[("Authorization", &bearer(t))]);
            assert_eq!(r.status, want, "round {round}, user {i}: {}", r.text);
        }
    }
}

#[test]
fn routing_longest_prefix_strip_and_owned_prefixes() {
    let a = Upstream::start();
    let b = Upstream::start();
    let g = Gatehouse::builder()
        .toml(&route("/api", &[&a.addr], "auth = \"public\""))
        .toml(&route(
            "/api/v2/",
            &[&b.addr],
            "auth = \"public\"\nstrip_prefix = true",
        ))
        .start();
    get(&g, "/api/v2/things?x=1", &[]).expect_status(200);
    assert_eq!(b.last().uri, "/things?x=1");
    get(&g, "/api/v1/things", &[]).expect_status(200);
    assert_eq!(a.last().uri, "/api/v1/things");
    // Segment boundary: /apiary is not under /api; no route: 404, nothing forwarded.
    let before = a.count() + b.count();
    get(&g, "/apiary", &[]).expect(404, json!({"detail": "Not found."}));
    get(&g, "/api/auth/whatever/", &[]).expect(404, json!({"detail": "Not found."}));
    get(&g, "/api/token/x/", &[]).expect(404, json!({"detail": "Not found."}));
    assert_eq!(a.count() + b.count(), before);
}

#[test]
fn round_robin_failover_and_502() {
    let a = Upstream::start();
    let mut b = Upstream::start();
    let g = Gatehouse::builder()
        .toml(&route("/", &[&a.addr, &b.addr], "auth = \"public\""))
        .start();
    for _ in 0..10 {
        get(&g, "/rr", &[]).expect_status(200);
    }
    assert!(
        a.count() >= 3 && b.count() >= 3,
        "a={} b={}",
        a.count(),
        b.count()
    );
    b.stop();
    // Health checks run every second: after that, every request lands on a.
    std::thread::sleep(Duration::from_millis(2500));
    for i in 0..10 {
        let r = get(&g, "/rr", &[]);
        assert_eq!(r.status, 200, "request {i} after failover: {}", r.text);
    }
    let mut a = a;
    a.stop();
    let r = get(&g, "/rr", &[]);
    r.expect(
        502,
        json!({"detail": "The upstream service is unavailable."}),
    );
}

#[test]
fn slow_upstream_is_a_504() {
    let up = Upstream::start_with(Options {
        delay: Some(Duration::from_secs(3)),
    });
    let g = Gatehouse::builder()
        .toml(&route(
            "/",
            &[&up.addr],
            "auth = \"public\"\nread_timeout_ms = 500",
        ))
        .start();
    let started = Instant::now();
    get(&g, "/slow", &[]).expect(
        504,
        json!({"detail": "The upstream service did not answer in time."}),
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Yields `left` bytes of a repeating pattern without holding them.
struct Zeros {
    left: u64,
}

impl Read for Zeros {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        buf[..n].fill(b'z');
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_100_mib_upload_streams_without_being_buffered() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let up = Upstream::start();
    let g = Gatehouse::builder()
        .toml(&route("/", &[&up.addr], "auth = \"public\""))
        .start();
    let pid = g.pid().expect("pid");
    let before = rss_kib(pid);
    let body = reqwest::blocking::Body::sized(Zeros { left: SIZE }, SIZE);
    let r = g.send(g.request("POST", "/upload").body(body));
    r.expect_status(200);
    assert_eq!(up.last().body_len, SIZE);
    let after = rss_kib(pid);
    assert!(
        after < before + 50 * 1024,
        "gatehouse grew from {before} KiB to {after} KiB while streaming 100 MiB"
    );
}

#[test]
fn upgrades_are_authenticated_then_pass_through() {
    let up = Upstream::start();
    let g = gateway(&up);
    let token = g.user_token("wendy");
    let handshake = |auth: Option<&str>| {
        let mut s = TcpStream::connect(("127.0.0.1", g.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut req = String::from(
            "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
        if let Some(a) = auth {
            req.push_str(&format!("Authorization: {a}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        (s, String::from_utf8_lossy(&head).into_owned())
    };
    let (_, refused) = handshake(None);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert_eq!(up.count(), 0);
    let (mut s, head) = handshake(Some(&bearer(&token)));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(up.last().header("x-user-name").as_deref(), Some("wendy"));
    s.write_all(b"ping through the tunnel").expect("write");
    let mut echoed = [0u8; 23];
    s.read_exact(&mut echoed).expect("echo");
    assert_eq!(&echoed, b"ping through the tunnel");
}

#[test]
fn cors_preflight_is_answered_and_plain_options_is_authenticated() {
    let up = Upstream::start();
    let g = Gatehouse::builder()
        .toml(&route("/", &[&up.addr], "[routes.cors]\nallowed_origins = [\"https://app.example.com\"]\nallow_credentials = true"))
        .start();
    let pre = g.send(
        g.request("OPTIONS", "/things")
            .header("Origin", "https://app.example.com")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
    );
    pre.expect_status(204);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        pre.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(pre
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let evil = g.send(
        g.request("OPTIONS", "/things")
            .header("Origin", "https://evil.example")
            .header("Access-Control-Request-Method", "POST"),
    );
    evil.expect_status(403);
    g.call("OPTIONS", "/things", None, None).expect_status(401);
    assert_eq!(
        up.count(),
        0,
        "preflights and refused requests are never forwarded"
    );
    let token = g.user_token("cora");
    let r = get(
        &g,
        "/things",
        &[
            ("Authorization", &bearer(&token)),
            ("Origin", "https://app.example.com"),
        ],
    );
    r.expect_status(200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
}

#[test]
fn request_ids_are_kept_generated_and_returned() {
    let up = Upstream::start();
    let g = gateway(&up);
    let r = get(&g, "/pub/a", &[("X-Request-Id", "abc-123")]);
    assert_eq!(r.header("x-request-id").as_deref(), Some("abc-123"));
    assert_eq!(up.last().header("x-request-id").as_deref(), Some("abc-123"));
    let r = get(&g, "/pub/a", &[("X-Request-Id", "bad id <script>")]);
    let given = r.header("x-request-id").expect("generated");
    assert_eq!(given.len(), 32);
    assert_eq!(up.last().header("x-request-id"), Some(given));
    let local = get(&g, "/private", &[]);
    local.expect_status(401);
    assert_eq!(local.header("x-request-id").map(|v| v.len()), Some(32));
}

#[test]
fn forwarded_for_is_trusted_only_from_configured_proxies() {
    let up = Upstream::start();
    let untrusted = Gatehouse::builder()
        .toml(&route("/", &[&up.addr], "auth = \"public\""))
        .start();
    get(&untrusted, "/a", &[("X-Forwarded-For", "6.6.6.6")]).expect_status(200);
    assert_eq!(
        up.last().header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    let trusted = Gatehouse::builder()
        .toml("[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n")
        .toml(&route("/", &[&up.addr], "auth = \"public\""))
        .start();
    get(&trusted, "/a", &[("X-Forwarded-For", "203.0.113.7")]).expect_status(200);
    assert_eq!(
        up.last().header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
}

#[test]
fn no_spelling_of_an_owned_path_reaches_the_upstream() {
    let up = Upstream::start();
    let g = Gatehouse::builder()
        .toml(&route("/", &[&up.addr], "auth = \"public\""))
        .start();
    for path in [
        "/api/%61uth/profile/",
        "//api/auth/profile/",
        "/api//auth/profile/",
        "/public/../api/auth/profile/",
        "/api/./auth/profile/",
    ] {
        get(&g, path, &[]).expect(
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        );
    }
    get(&g, "/api/t%6Fken/other/", &[]).expect(404, json!({"detail": "Not found."}));
    assert_eq!(up.count(), 0);
    // Forwarded requests carry the path the decision was made on.
    get(&g, "/a/./b//c/%7Ed?q=1", &[]).expect_status(200);
    assert_eq!(up.last().uri, "/a/b/c/~d?q=1");
}
