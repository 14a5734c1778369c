// API keys as a credential (SPEC §19), end to end: a key made through the part-1 endpoints
// is presented as `Bearer`, in `X-API-Key` and as Basic's password on a proxied route; the
// identity upstream carries only what the key grants, with `X-User-Auth`; a route's
// `accept`, a key's `routes`, the user API's refusal; revocation, expiry and the owner's
// deactivation refuse the next request (sled, and across two PostgreSQL replicas); malformed
// keys cost no store read; the key is never in the log or the metrics.
use crate::common;

use base64::Engine;
use common::nginx::Nginx;
use common::paths::{admin_user, PROFILE};
use common::smtp::metric;
use common::upstream::{Recorded, Upstream};
use common::*;
use gatehouse::config::{CredentialKind, RouteConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const KEYS: &str = "/api/auth/keys/";
const ADMIN_PW: &str = "AdminPass123";
const X_USER_AUTH: &str = "x-user-auth";
const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";

/// An instant `seconds` from now, ISO 8601.
fn in_seconds(seconds: u64) -> String {
    gatehouse::clock::iso_ms((gatehouse::clock::now() + seconds) * 1000)
}

/// A key of the caller `access` (password `PASSWORD`) with `extra` fields; (id, key).
#[track_caller]
fn make_key(g: &Http, access: &str, extra: Value) -> (String, String) {
    let mut body =
        json!({"name": "ci", "expires_at": in_seconds(30 * 86_400), "password": PASSWORD});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let made = g.post(KEYS, body, Some(access));
    made.expect_status(201);
    (made.field("id"), made.field("key"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A gateway with the required route `/app/` (every credential kind), `/jwt/` (tokens only)
/// and `/ci/` to `up`, with the superuser `admin`.
fn gateway(up: &Upstream) -> Gatehouse {
    Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![
                route("/app/", &[up.addr]),
                RouteConfig {
                    accept: vec![CredentialKind::Jwt],
                    ..route("/jwt/", &[up.addr])
                },
                route("/ci/", &[up.addr]),
            ];
        })
        .superuser("admin", "admin@example.com", ADMIN_PW)
        .start()
}

#[track_caller]
fn identity(seen: &Recorded) -> [Vec<String>; 5] {
    [
        "x-user-id",
        "x-user-name",
        "x-user-is-staff",
        "x-user-groups",
        X_USER_AUTH,
    ]
    .map(|h| seen.header_values(h))
}

fn one(v: &str) -> Vec<String> {
    vec![v.to_string()]
}

/// The store reads a key check can cost: key-cache and user-cache misses and bypasses.
fn store_reads(g: &Gatehouse) -> f64 {
    [
        ("gatehouse_apikey_cache_requests_total", "result=\"miss\""),
        ("gatehouse_apikey_cache_requests_total", "result=\"bypass\""),
        ("gatehouse_user_cache_requests_total", "result=\"miss\""),
        ("gatehouse_user_cache_requests_total", "result=\"bypass\""),
    ]
    .iter()
    .map(|(name, labels)| metric(g, name, labels))
    .sum()
}

fn checks(g: &Gatehouse, result: &str) -> f64 {
    metric(
        g,
        "gatehouse_apikey_checks_total",
        &format!("result=\"{result}\""),
    )
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_key_passes_three_ways_and_carries_only_what_it_grants() {
    let up = Upstream::start();
    let g = gateway(&up);
    let admin = g.login("admin", ADMIN_PW).0;
    let (ann_id, ann, _) = g.user("ann");
    g.call(
        "PATCH",
        &admin_user(ann_id),
        Some(json!({"groups": ["ops", "billing"]})),
        Some(&admin),
    )
    .expect_status(200);
    let (_, key) = make_key(&g, &ann, json!({"groups": ["ops"]}));
    let (_, ci_key) = make_key(&g, &ann, json!({"routes": ["/ci/"]}));
    let expected = [
        one(&ann_id.to_string()),
        one("ann"),
        one("false"),
        one("ops"),
        one("apikey"),
    ];

    // Each presentation, with a client's own X-User-Auth stripped.
    let presentations = [
        ("authorization", bearer(&key)),
        ("x-api-key", key.clone()),
        ("authorization", basic("anything", &key)),
        ("authorization", basic("", &key)),
    ];
    for (name, value) in &presentations {
        let r = g.with_headers(
            "GET",
            "/app/x",
            &[(name, value.as_str()), (X_USER_AUTH, "jwt")],
        );
        r.expect_status(200);
        assert_eq!(identity(&up.last()), expected, "presented in {name}");
    }

    // The groups narrowed to the key's; the access token carries all, as jwt.
    g.with_headers(
        "GET",
        "/app/x",
        &[("authorization", &bearer(&ann)), (X_USER_AUTH, "apikey")],
    )
    .expect_status(200);
    assert_eq!(
        identity(&up.last()),
        [
            one(&ann_id.to_string()),
            one("ann"),
            one("false"),
            one("billing,ops"),
            one("jwt"),
        ]
    );

    // With forward_authorization (the default) the upstream gets the credential as sent.
    g.with_header("GET", "/app/x", "x-api-key", &key)
        .expect_status(200);
    assert_eq!(up.last().header_values("x-api-key"), one(&key));

    // A route that takes tokens only: the key is no credential there.
    let r = g.with_header("GET", "/jwt/x", "x-api-key", &key);
    r.expect(
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    g.get("/jwt/x", Some(&ann)).expect_status(200);
    assert_eq!(up.last().header(X_USER_AUTH).as_deref(), Some("jwt"));

    // A key with routes reaches only those.
    let before = up.count();
    g.with_header("GET", "/ci/build", "x-api-key", &ci_key)
        .expect_status(200);
    assert_eq!(up.count(), before + 1);
    let r = g.with_header("GET", "/app/x", "x-api-key", &ci_key);
    r.expect(403, json!({"detail": PERMISSION_DENIED}));
    assert_eq!(up.count(), before + 1, "never forwarded");

    // Never on the user API: 401 as an invalid token, however it comes.
    for (name, value) in &presentations[..2] {
        let r = g.with_header("GET", PROFILE, name, value);
        r.expect_status(401);
    }
    assert_eq!(
        g.with_header("GET", PROFILE, "authorization", &bearer(&key))
            .json["code"],
        json!("token_not_valid")
    );
    let r = g.post(
        KEYS,
        json!({"name": "more", "expires_at": in_seconds(86_400), "password": PASSWORD}),
        Some(&key),
    );
    r.expect_status(401);

    // The owner loses "ops": the key's identity loses it on the next request.
    g.call(
        "PATCH",
        &admin_user(ann_id),
        Some(json!({"groups": ["billing"]})),
        Some(&admin),
    )
    .expect_status(200);
    g.with_header("GET", "/app/x", "x-api-key", &key)
        .expect_status(200);
    assert_eq!(up.last().header_values("x-user-groups"), one(""));

    // Allowed checks were counted, by result.
    assert!(checks(&g, "allowed") >= 6.0, "{}", checks(&g, "allowed"));

    // The key never reaches the log or the metrics.
    let metrics = g.ops().get("/metrics", None).text;
    for k in [&key, &ci_key] {
        assert!(!metrics.contains(k.as_str()));
        assert!(!g.log().contains(k.as_str()), "the key is in the log");
    }
}

#[test]
fn without_forward_authorization_the_upstream_never_sees_a_key() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.proxy.forward_authorization = false;
            c.routes = vec![route("/app/", &[up.addr])];
        })
        .start();
    let (_, ann, _) = g.user("ann");
    let (_, key) = make_key(&g, &ann, json!({}));
    for (name, value) in [("x-api-key", key.clone()), ("authorization", bearer(&key))] {
        g.with_header("GET", "/app/x", name, &value)
            .expect_status(200);
        let seen = up.last();
        assert!(seen.header_values("x-api-key").is_empty(), "{name}");
        assert!(seen.header_values("authorization").is_empty(), "{name}");
        assert_eq!(seen.header_values(X_USER_AUTH), one("apikey"));
    }
}

#[test]
fn malformed_keys_are_refused_without_a_store_read() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (_, ann, _) = g.user("ann");
    let (_, key) = make_key(&g, &ann, json!({}));
    g.with_header("GET", "/app/x", "x-api-key", &key)
        .expect_status(200);

    let flip = |i: usize| {
        let mut bytes = key.clone().into_bytes();
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        String::from_utf8(bytes).expect("ascii")
    };
    let base62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let long: String = (0..10 * 1024).map(|i| char::from(base62[i % 62])).collect();
    let jwt = ann.clone();
    let bad = [
        ("x-api-key", flip(10)),
        ("x-api-key", format!("{}000000", &key[..key.len() - 6])),
        ("x-api-key", key[..key.len() - 1].to_string()),
        ("x-api-key", format!("gk_{long}")),
        ("x-api-key", jwt),
        ("authorization", bearer(&flip(20))),
        ("authorization", basic("ci", &flip(30))),
    ];
    let reads = store_reads(&g);
    let malformed = checks(&g, "malformed");
    for (name, value) in &bad {
        let r = g.with_header("GET", "/app/x", name, value);
        r.expect_status(401);
        assert_eq!(
            r.json["code"],
            json!("token_not_valid"),
            "{name}: {}",
            r.text
        );
    }
    assert_eq!(checks(&g, "malformed"), malformed + bad.len() as f64);
    assert_eq!(store_reads(&g), reads, "a malformed key read the store");
    // The well-formed key still passes from memory.
    g.with_header("GET", "/app/x", "x-api-key", &key)
        .expect_status(200);
    assert_eq!(store_reads(&g), reads, "a warm key reads nothing");
}

#[test]
fn revocation_expiry_and_deactivation_refuse_the_next_request() {
    let up = Upstream::start();
    let g = gateway(&up);
    let admin = g.login("admin", ADMIN_PW).0;
    let (bob_id, bob, _) = g.user("bob");
    let (id, key) = make_key(&g, &bob, json!({}));
    let (_, other) = make_key(&g, &bob, json!({}));
    let (_, soon) = make_key(&g, &bob, json!({"expires_at": in_seconds(2)}));
    let pass = |k: &str| g.with_header("GET", "/app/x", "x-api-key", k).status;
    for k in [&key, &other, &soon] {
        assert_eq!(pass(k), 200, "warm");
    }

    g.call("DELETE", &format!("{KEYS}{id}/"), None, Some(&bob))
        .expect_status(204);
    assert_eq!(pass(&key), 401, "revoked: the next request");
    assert_eq!(pass(&other), 200, "the other key lives");
    assert!(checks(&g, "revoked") >= 1.0);

    let t0 = Instant::now();
    while pass(&soon) == 200 {
        assert!(t0.elapsed() < Duration::from_secs(5), "never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(checks(&g, "expired") >= 1.0);

    g.call(
        "PATCH",
        &admin_user(bob_id),
        Some(json!({"is_active": false})),
        Some(&admin),
    )
    .expect_status(200);
    assert_eq!(pass(&other), 401, "deactivated owner: the next request");
    g.call(
        "PATCH",
        &admin_user(bob_id),
        Some(json!({"is_active": true})),
        Some(&admin),
    )
    .expect_status(200);
    assert_eq!(pass(&other), 200, "reactivated");
}

#[test]
fn revocation_and_deactivation_through_a_reach_b_within_the_bound() {
    let up = Upstream::start();
    let (a, b) = postgres::replicas(|builder| {
        builder.with_config(|c| {
            c.routes = vec![route("/app/", &[up.addr])];
            c.store.freshness_ms = 500;
        })
    });
    let (root, _) = a.login("root", PASSWORD);
    let pass = |g: &Gatehouse, k: &str| g.with_header("GET", "/app/x", "x-api-key", k).status;
    let within = |what: &str, done: &dyn Fn() -> bool| {
        let t0 = Instant::now();
        while !done() {
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "{what}: not enforced on B within 1 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        t0.elapsed()
    };
    for run in 0..5 {
        let (carl_id, carl, _) = a.user(&format!("carl{run}"));
        let (id, key) = make_key(&a, &carl, json!({}));
        let (_, other) = make_key(&a, &carl, json!({}));
        assert_eq!(pass(&b, &key), 200, "B serves the key (warm)");
        assert_eq!(pass(&b, &other), 200);
        a.call("DELETE", &format!("{KEYS}{id}/"), None, Some(&carl))
            .expect_status(204);
        let took = within("revocation", &|| pass(&b, &key) == 401);
        println!(
            "key revocation reached B in {:.1} ms",
            took.as_secs_f64() * 1e3
        );
        assert_eq!(pass(&b, &other), 200, "the other key lives on B");
        a.call(
            "PATCH",
            &admin_user(carl_id),
            Some(json!({"is_active": false})),
            Some(&root),
        )
        .expect_status(200);
        within("deactivation", &|| pass(&b, &other) == 401);
    }
}

#[test]
fn keys_pass_forward_auth_through_a_real_nginx() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.forward_auth.enabled = true;
            c.routes = vec![
                route("/svc/", &[up.addr]),
                RouteConfig {
                    accept: vec![CredentialKind::Jwt, CredentialKind::Session],
                    ..route("/human/", &[up.addr])
                },
            ];
        })
        .superuser("admin", "admin@example.com", ADMIN_PW)
        .start();
    let nginx = Nginx::start(g.port, up.port);
    let admin = g.login("admin", ADMIN_PW).0;
    let (nina_id, nina, _) = g.user("nina");
    g.call(
        "PATCH",
        &admin_user(nina_id),
        Some(json!({"groups": ["ops", "billing"]})),
        Some(&admin),
    )
    .expect_status(200);
    let (id, key) = make_key(
        &g,
        &nina,
        json!({"groups": ["billing"], "routes": ["/svc/"]}),
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);

    let ways: [(&str, String); 3] = [
        ("authorization", bearer(&key)),
        ("x-api-key", key.clone()),
        ("authorization", basic("ci", &key)),
    ];
    for (name, value) in &ways {
        let r = http
            .get(url("/svc/orders"))
            .header(*name, value)
            .header(X_USER_AUTH, "jwt")
            .header("x-user-groups", "ops")
            .send()
            .expect("through nginx");
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(
            identity(&up.last()),
            [
                one(&nina_id.to_string()),
                one("nina"),
                one("false"),
                one("billing"),
                one("apikey"),
            ],
            "{name}"
        );
    }
    // An access token through the same nginx: X-User-Auth says jwt.
    let r = http
        .get(url("/svc/orders"))
        .bearer_auth(&nina)
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 200);
    assert_eq!(up.last().header_values(X_USER_AUTH), one("jwt"));

    let forwarded = up.count();
    // A route that does not take keys, and one beyond the key's routes.
    let r = http
        .get(url("/human/page"))
        .header("x-api-key", &key)
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 401);
    // Revoked: refused on the next request.
    g.call("DELETE", &format!("{KEYS}{id}/"), None, Some(&nina))
        .expect_status(204);
    let r = http
        .get(url("/svc/orders"))
        .header("x-api-key", &key)
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().expect("json body");
    assert_eq!(body["code"], json!("token_not_valid"));
    assert_eq!(up.count(), forwarded, "no refused request reached the app");
}

#[test]
fn a_key_beyond_its_routes_is_403_through_forward_auth() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.forward_auth.enabled = true;
            c.routes = vec![route("/svc/", &[up.addr]), route("/other/", &[up.addr])];
        })
        .start();
    let nginx = Nginx::start(g.port, up.port);
    let (_, nina, _) = g.user("nina");
    let (_, key) = make_key(&g, &nina, json!({"routes": ["/svc/"]}));
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/other/x", nginx.port))
        .header("x-api-key", &key)
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 403);
    let body: Value = r.json().expect("json body");
    assert_eq!(body, json!({"detail": PERMISSION_DENIED}));
    assert_eq!(up.count(), 0);
}

#[test]
fn a_routes_accept_is_validated_and_shown() {
    let up = Upstream::start();
    let addr = up.addr;
    let keys_only = move |c: &mut gatehouse::config::Config| {
        c.routes = vec![RouteConfig {
            accept: vec![CredentialKind::Apikey],
            ..route("/ci/", &[addr])
        }]
    };
    let g = Gatehouse::new().with_config(keys_only).build();
    g.cli(&["check-config"], &[])
        .assert_says("accepts apikey", "check-config shows accept");
    g.cli(&["routes", "explain", "/ci/x"], &[])
        .assert_says("accepts: apikey", "routes explain shows accept");
    for (bad, says) in [
        ("[]", "accept is empty"),
        ("[\"jwt\", \"jwt\"]", "accept lists \"jwt\" twice"),
        ("[\"cookie\"]", "cookie"),
    ] {
        let value =
            toml::from_str::<toml::Table>(&format!("v = {bad}")).expect("toml")["v"].clone();
        let b = Gatehouse::new()
            .with_config(keys_only)
            .edit_file(move |t| {
                if let Some(r) = t
                    .get_mut("routes")
                    .and_then(|r| r.as_array_mut())
                    .and_then(|r| r.first_mut())
                    .and_then(|r| r.as_table_mut())
                {
                    r.insert("accept".into(), value);
                }
            })
            .build();
        let r = b.cli(&["check-config"], &[]);
        assert!(!r.succeeded(), "{bad} accepted: {}", r.output());
        r.assert_says(says, bad);
    }
}

#[test]
fn x_user_auth_names_the_session_too_and_a_clients_copy_is_stripped() {
    use crate::web_sessions::{session_of, web_gatehouse, COOKIE};
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    let (_, sam, _) = g.user("sam");
    let (session, _) = session_of(&g, "sam");
    let (_, key) = make_key(&g, &sam, json!({}));
    let cookie = format!("{COOKIE}={session}");
    let token = bearer(&sam);
    let sent = [
        (vec![("cookie", cookie.as_str())], "session"),
        (vec![("authorization", token.as_str())], "jwt"),
        (vec![("x-api-key", key.as_str())], "apikey"),
        // A key and the session: the key decides (the cookie is the fallback).
        (
            vec![("x-api-key", key.as_str()), ("cookie", cookie.as_str())],
            "apikey",
        ),
    ];
    for (headers, via) in sent {
        let mut all = headers.clone();
        all.push((X_USER_AUTH, "session"));
        all.push(("X-USER-AUTH", "jwt"));
        g.with_headers("GET", "/api-like/x", &all)
            .expect_status(200);
        assert_eq!(
            up.last().header_values(X_USER_AUTH),
            one(via),
            "{headers:?}"
        );
    }
    // Forward-auth answers with it as well.
    let r = g.with_headers(
        "GET",
        "/_gatehouse/auth",
        &[
            ("x-original-uri", "/api-like/x"),
            ("x-original-method", "GET"),
            ("cookie", cookie.as_str()),
        ],
    );
    r.expect_status(200);
    assert_eq!(r.header(X_USER_AUTH).as_deref(), Some("session"));
}

/// The claims of a JWT, read without verifying (tests/it/assertion.rs verifies the signature).
fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[test]
fn the_assertion_carries_the_narrowed_identity() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = Gatehouse::new()
        .with_config(move |c| {
            c.routes = vec![RouteConfig {
                identity_assertion: true,
                ..route("/orders/", &[addr])
            }]
        })
        .superuser("admin", "admin@example.com", PASSWORD)
        .start();
    let (admin_id, admin, _) = {
        let (access, _) = g.login("admin", PASSWORD);
        let id = g.get(PROFILE, Some(&access)).json["id"]
            .as_u64()
            .expect("id");
        (id, access, ())
    };
    g.call(
        "PATCH",
        &admin_user(admin_id),
        Some(json!({"groups": ["ops", "billing"]})),
        Some(&admin),
    )
    .expect_status(200);
    let (_, plain) = make_key(&g, &admin, json!({"groups": ["ops"]}));
    let assertion = |headers: &[(&str, &str)]| {
        g.with_headers("GET", "/orders/1", headers)
            .expect_status(200);
        let sent = up.last().header_values("x-gatehouse-assertion");
        assert_eq!(sent.len(), 1);
        claims_of(&sent[0])
    };
    // The token: all the groups and staff; the key: only what it carries, after the token's
    // assertion was signed (never reused across credentials).
    let by_token = assertion(&[("authorization", &bearer(&admin))]);
    assert_eq!(
        (&by_token["groups"], &by_token["is_staff"]),
        (&json!(["billing", "ops"]), &json!(true))
    );
    let by_key = assertion(&[("x-api-key", &plain)]);
    assert_eq!(
        (&by_key["groups"], &by_key["is_staff"]),
        (&json!(["ops"]), &json!(false))
    );
    assert_eq!(by_key["sub"], json!(admin_id.to_string()));
}
