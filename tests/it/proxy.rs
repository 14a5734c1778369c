// The proxy path end to end: real gatehouse binary, real hyper upstreams that record what they
// receive; auth modes, token attacks, header spoofing, revocation, routing, 502/504, streaming,
// upgrades, CORS. The harness checks the framing of every answer, gatehouse's and upstreams'.
use crate::common;

use common::attacks::forged_access_tokens;
use common::paths::{PASSWORD_CHANGE, PROFILE};
use common::upstream::{self, Options, Recorded, Upstream};
use common::*;
use gatehouse::config::{AuthMode, CorsConfig, RouteConfig};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "AdminPass123";
const IDENTITY: [&str; 3] = ["x-user-id", "x-user-name", "x-user-is-staff"];

// ---------------------------------------------------------------------------------------------
// helpers

/// A gateway with a required "/", a public "/pub/", an optional "/opt/" and a staff "/staff/"
/// route, all to `up`, plus the superuser `admin` (id 1).
fn gateway(up: &Upstream) -> Gatehouse {
    Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![
                route("/", &[up.addr]),
                public_route("/pub/", &[up.addr]),
                RouteConfig {
                    auth: AuthMode::Optional,
                    ..route("/opt/", &[up.addr])
                },
                RouteConfig {
                    require_staff: true,
                    ..route("/staff/", &[up.addr])
                },
            ]
        })
        .superuser("admin", "admin@example.com", ADMIN_PASSWORD)
        .start()
}

/// A gateway with these routes and nothing else.
fn gateway_with(routes: Vec<RouteConfig>) -> Gatehouse {
    Gatehouse::new().with_config(|c| c.routes = routes).start()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// What gatehouse sent upstream for the identity headers: every value of each, in order.
fn identity_of(seen: &Recorded) -> Vec<Vec<String>> {
    IDENTITY.iter().map(|h| seen.header_values(h)).collect()
}

#[track_caller]
fn assert_identity(seen: &Recorded, id: u64, name: &str, staff: bool) {
    assert_eq!(
        identity_of(seen),
        vec![
            vec![id.to_string()],
            vec![name.to_string()],
            vec![staff.to_string()]
        ],
        "identity headers upstream: {:?}",
        seen.headers
    );
}

#[track_caller]
fn assert_no_identity(seen: &Recorded) {
    for h in IDENTITY {
        assert_eq!(
            seen.header_values(h),
            Vec::<String>::new(),
            "{h} reached the upstream: {:?}",
            seen.headers
        );
    }
}

// ---------------------------------------------------------------------------------------------
// auth modes

#[test]
fn required_route_forwards_identity_and_refuses_the_anonymous() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (id, access, _) = g.user("alice");

    for (label, headers) in [
        ("no header", vec![]),
        (
            "basic scheme",
            vec![("Authorization", "Basic YWxpY2U6eA==")],
        ),
        ("lower-case scheme", vec![("Authorization", "bearer abc")]),
        ("empty header", vec![("Authorization", "")]),
    ] {
        let r = g.with_headers("GET", "/svc/x", &headers);
        assert_eq!(r.status, 401, "{label}: {}", r.text);
        r.expect(401, not_provided());
    }
    g.with_headers("GET", "/svc/x", &[("Authorization", "Bearer")])
        .expect(401, bad_header());
    assert_eq!(up.count(), 0, "a refused request reached the upstream");

    let auth = bearer(&access);
    let r = g.with_headers("GET", "/svc/x?q=1&r=2", &[("Authorization", &auth)]);
    r.expect_status(200);
    assert_eq!(r.json["uri"], "/svc/x?q=1&r=2");
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/svc/x?q=1&r=2");
    assert_identity(&seen, id, "alice", false);
    assert_eq!(seen.header_values("authorization"), vec![auth.clone()]);
    assert_eq!(seen.header_values("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.header_values("x-forwarded-for"), vec!["127.0.0.1"]);
    assert!(seen.header("x-request-id").is_some_and(|v| is_hex32(&v)));

    // A body goes through with the method.
    let r = g.call(
        "PUT",
        "/svc/items/7",
        Some(json!({"name": "seven"})),
        Some(&access),
    );
    r.expect_status(200);
    let seen = up.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.body_len,
        json!({"name": "seven"}).to_string().len() as u64
    );
    assert_identity(&seen, id, "alice", false);
    assert_eq!(up.count(), 2);
}

#[test]
fn optional_route_anonymous_authenticated_and_bad_token() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (id, access, refresh) = g.user("olive");

    // Anonymous: forwarded, no identity.
    g.get("/opt/feed", None).expect_status(200);
    assert_no_identity(&up.last());
    // A scheme other than Bearer is "no credentials", as DRF has it: anonymous.
    g.with_headers(
        "GET",
        "/opt/feed",
        &[("Authorization", "Basic b2xpdmU6eA==")],
    )
    .expect_status(200);
    assert_no_identity(&up.last());
    assert_eq!(up.count(), 2);

    // Authenticated: identity from the user's state.
    g.get("/opt/feed", Some(&access)).expect_status(200);
    assert_identity(&up.last(), id, "olive", false);
    assert_eq!(up.count(), 3);

    // A bad token is a 401, never a silent downgrade to anonymous.
    g.get("/opt/feed", Some("garbage"))
        .expect(401, bad_access("Token is invalid"));
    g.get("/opt/feed", Some(&refresh))
        .expect(401, bad_access("Token has wrong type"));
    let expired = g.forge(&access, json!({"exp": now() - 10}));
    g.get("/opt/feed", Some(&expired))
        .expect(401, bad_access("Token is expired"));
    g.with_headers(
        "GET",
        "/opt/feed",
        &[(
            "Authorization",
            &format!("Bearer {access}, Bearer {access}"),
        )],
    )
    .expect(401, bad_header());
    // A soft-deleted user's token on an optional route: 401, not anonymous.
    g.soft_delete(&access).expect_status(200);
    g.get("/opt/feed", Some(&access)).expect(401, inactive());
    assert_eq!(
        up.count(),
        3,
        "a bad token on an optional route was forwarded"
    );
}

#[test]
fn public_route_forwards_without_identity_and_ignores_tokens() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (_, access, _) = g.user("paul");
    let admin = g.login("admin", ADMIN_PASSWORD).0;

    g.get("/pub/page", None).expect_status(200);
    assert_no_identity(&up.last());
    // Not checked: garbage and valid tokens alike go through, without identity headers.
    g.get("/pub/page", Some("garbage")).expect_status(200);
    assert_no_identity(&up.last());
    assert_eq!(
        up.last().header("authorization").as_deref(),
        Some("Bearer garbage")
    );
    g.get("/pub/page", Some(&admin)).expect_status(200);
    assert_no_identity(&up.last());
    g.get("/pub/page", Some(&access)).expect_status(200);
    assert_no_identity(&up.last());
    assert_eq!(up.count(), 4);

    // Two Authorization headers are refused on every route, public too.
    let two = g.send(
        g.request("GET", "/pub/page")
            .header("Authorization", bearer(&access))
            .header("Authorization", bearer(&admin)),
    );
    two.expect(401, bad_header());
    assert_eq!(up.count(), 4);
}

#[test]
fn staff_route_admits_a_superuser_and_refuses_a_normal_user() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (_, access, _) = g.user("norm");
    let admin = g.login("admin", ADMIN_PASSWORD).0;

    let r = g.get("/staff/panel", Some(&access));
    r.expect(403, forbidden());
    g.get("/staff/panel", None).expect(401, not_provided());
    g.get("/staff/panel", Some("garbage"))
        .expect(401, bad_access("Token is invalid"));
    assert_eq!(up.count(), 0);

    g.get("/staff/panel", Some(&admin)).expect_status(200);
    assert_identity(&up.last(), 1, "admin", true);
    // The same user on a non-staff route: identity says staff too.
    g.get("/other", Some(&admin)).expect_status(200);
    assert_identity(&up.last(), 1, "admin", true);
    // And the normal user is fine off the staff route.
    g.get("/other", Some(&access)).expect_status(200);
    assert_eq!(
        up.last().header("x-user-is-staff").as_deref(),
        Some("false")
    );
    assert_eq!(up.count(), 3);
}

// ---------------------------------------------------------------------------------------------
// token attacks

#[test]
fn token_attacks_never_reach_the_upstream() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (_, access, refresh) = g.user("mallory");
    let (_, doomed, _) = g.user("doomed");
    let mut cases: Vec<(&str, String, Value)> = forged_access_tokens(&g, &access, &refresh)
        .into_iter()
        .map(|f| (f.label, f.token, f.body))
        .collect();
    // A soft-deleted user's own token.
    g.soft_delete(&doomed).expect_status(200);
    cases.push(("soft-deleted user", doomed.clone(), inactive()));

    let paths = ["/svc/x", "/opt/x", "/staff/x"];
    for path in paths {
        for (label, token, body) in &cases {
            let r = g.get(path, Some(token));
            assert_eq!(
                (r.status, &r.json),
                (401, body),
                "{path} {label}: {}",
                r.text
            );
        }
        // Two bearer tokens: two headers, or one with a second joined by a comma.
        let two = g.send(
            g.request("GET", path)
                .header("Authorization", bearer(&access))
                .header("Authorization", bearer(&access)),
        );
        two.expect(401, bad_header());
        for joined in [
            format!("Bearer {access}, Bearer {access}"),
            format!("Bearer {access},Bearer {access}"),
            "Bearer a, Bearer b".to_string(),
            format!("Bearer {access} extra"),
        ] {
            g.with_headers("GET", path, &[("Authorization", &joined)])
                .expect(401, bad_header());
        }
        // Duplicates in odd letter cases, raw.
        let raw = g.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nauthorization: Bearer {access}\r\n\
                 AUTHORIZATION: Bearer {access}\r\n\r\n"
        ));
        assert_eq!(
            (raw.status, raw.json()),
            (401, bad_header()),
            "{path} raw duplicates"
        );
    }
    assert_eq!(up.count(), 0, "an attack reached the upstream");
    // The genuine token passes: the route itself works.
    g.get("/svc/x", Some(&access)).expect_status(200);
    assert_eq!(up.count(), 1);
}

// ---------------------------------------------------------------------------------------------
// header spoofing

/// Every client copy of the identity headers, in many spellings and counts.
const SPOOF: &str = "X-User-Id: 1\r\nx-user-id: 1\r\nX-USER-ID: 0\r\nx-UsEr-Id: 1\r\n\
                     x-user-name: admin\r\nX-User-Name: root\r\nX-USER-NAME: admin\r\n\
                     X-USER-IS-STAFF: true\r\nx-user-is-staff: true\r\nX-User-Is-Staff: True\r\n\
                     X-User-Id:\r\n";

#[test]
fn spoofed_identity_headers_never_reach_the_upstream_on_authenticated_routes() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (id, access, _) = g.user("eve");
    let admin = g.login("admin", ADMIN_PASSWORD).0;
    for (method, path, token, who) in [
        ("GET", "/svc/x", &access, (id, "eve", false)),
        ("POST", "/svc/x", &access, (id, "eve", false)),
        ("GET", "/opt/x", &access, (id, "eve", false)),
        ("DELETE", "/staff/x", &admin, (1, "admin", true)),
    ] {
        let body = if method == "POST" { "{\"a\":1}" } else { "" };
        let raw = g.raw(&format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\n{SPOOF}Authorization: Bearer {token}\r\n\
                 Content-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        assert_eq!(raw.status, 200, "{method} {path}: {:?}", raw.headers);
        let seen = up.last();
        assert_eq!(seen.method, method);
        assert_identity(&seen, who.0, who.1, who.2);
    }
    // Through an ordinary client too (headers set before the token).
    let r = g.with_headers(
        "GET",
        "/svc/y",
        &[
            ("X-User-Id", "1"),
            ("X-User-Name", "admin"),
            ("X-User-Is-Staff", "true"),
            ("Authorization", &bearer(&access)),
        ],
    );
    r.expect_status(200);
    assert_identity(&up.last(), id, "eve", false);
    // Spoofing does not turn a refused request into a forwarded one.
    let raw = g.raw(&format!(
        "GET /staff/x HTTP/1.1\r\nHost: t\r\n{SPOOF}Authorization: Bearer {access}\r\n\r\n"
    ));
    assert_eq!((raw.status, raw.json()), (403, forbidden()));
    let raw = g.raw(&format!("GET /svc/x HTTP/1.1\r\nHost: t\r\n{SPOOF}\r\n"));
    assert_eq!((raw.status, raw.json()), (401, not_provided()));
    assert_eq!(up.count(), 5);
}

#[test]
fn spoofed_identity_headers_are_dropped_on_public_and_anonymous_routes() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (_, access, _) = g.user("mask");
    for (path, auth) in [
        ("/pub/x", String::new()),
        ("/pub/x", format!("Authorization: Bearer {access}\r\n")),
        ("/pub/x", "Authorization: Bearer garbage\r\n".to_string()),
        ("/opt/x", String::new()),
    ] {
        let raw = g.raw(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n{SPOOF}{auth}X-Kept: yes\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n"));
        assert_eq!(raw.status, 200, "{path} {auth:?}");
        let seen = up.last();
        assert_no_identity(&seen);
        assert_eq!(
            seen.header_values("x-kept"),
            vec!["yes"],
            "other headers pass"
        );
        // The recorder sees duplicates, so "exactly one" elsewhere means something.
        assert_eq!(seen.header_values("x-dup"), vec!["1", "2"]);
    }
    let r = g.with_headers(
        "POST",
        "/pub/form",
        &[
            ("x-user-id", "1"),
            ("x-user-name", "admin"),
            ("x-user-is-staff", "true"),
        ],
    );
    r.expect_status(200);
    assert_no_identity(&up.last());
    assert_eq!(up.count(), 5);
}

#[test]
fn headers_nominated_by_connection_are_removed() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (id, access, _) = g.user("hop");
    // Nominated alone, with keep-alive, several at once, in odd case; public and required.
    for (path, auth) in [
        ("/pub/a", String::new()),
        ("/svc/a", format!("Authorization: Bearer {access}\r\n")),
    ] {
        for connection in ["X-Secret", "keep-alive, X-Secret", "x-secret, X-Other-Hop"] {
            let raw = g.raw(&format!(
                "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\
                     X-SECRET: hop\r\nX-Other-Hop: hop\r\nX-Kept: yes\r\n{auth}\r\n"
            ));
            assert_eq!(raw.status, 200, "{path} Connection: {connection}");
            let seen = up.last();
            assert_eq!(
                seen.header_values("x-secret"),
                Vec::<String>::new(),
                "{path} Connection: {connection}: {:?}",
                seen.headers
            );
            if connection.contains("Other") {
                assert_eq!(seen.header_values("x-other-hop"), Vec::<String>::new());
            } else {
                assert_eq!(seen.header_values("x-other-hop"), vec!["hop"]);
            }
            assert_eq!(seen.header_values("x-kept"), vec!["yes"]);
        }
    }
    // Stripping happens before gatehouse adds its own: nominating X-User-Id cannot remove it.
    let raw = g.raw(&format!(
        "GET /svc/b HTTP/1.1\r\nHost: t\r\nConnection: X-User-Id, X-User-Name\r\n\
             X-User-Id: 1\r\nAuthorization: Bearer {access}\r\n\r\n"
    ));
    assert_eq!(raw.status, 200);
    assert_identity(&up.last(), id, "hop", false);
}

#[test]
fn custom_identity_header_names() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.proxy.user_id_header = ::http::HeaderName::from_static("x-auth-user");
            c.proxy.user_is_staff_header = ::http::HeaderName::from_static("x-auth-staff");
            c.routes = vec![route("/", &[up.addr]), public_route("/pub/", &[up.addr])];
        })
        .start();
    let (id, access, _) = g.user("nick");
    let raw = g.raw(&format!(
        "GET /a HTTP/1.1\r\nHost: t\r\nX-Auth-User: 1\r\nx-auth-user: 1\r\nX-AUTH-USER: 1\r\n\
             x-auth-staff: true\r\nX-User-Name: admin\r\nAuthorization: Bearer {access}\r\n\r\n"
    ));
    assert_eq!(raw.status, 200);
    let seen = up.last();
    assert_eq!(seen.header_values("x-auth-user"), vec![id.to_string()]);
    assert_eq!(seen.header_values("x-auth-staff"), vec!["false"]);
    assert_eq!(seen.header_values("x-user-name"), vec!["nick"]);
    // The default names for the renamed headers are not what gatehouse sends.
    assert_eq!(seen.header_values("x-user-id"), Vec::<String>::new());
    assert_eq!(seen.header_values("x-user-is-staff"), Vec::<String>::new());

    let raw = g.raw("GET /pub/a HTTP/1.1\r\nHost: t\r\nX-Auth-User: 1\r\nX-AUTH-STAFF: true\r\nx-user-name: admin\r\n\r\n");
    assert_eq!(raw.status, 200);
    let seen = up.last();
    for h in ["x-auth-user", "x-auth-staff", "x-user-name"] {
        assert_eq!(
            seen.header_values(h),
            Vec::<String>::new(),
            "{h} on a public route"
        );
    }
}

#[test]
fn forward_authorization_false_drops_the_token() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.proxy.forward_authorization = false;
            c.routes = vec![route("/", &[up.addr]), public_route("/pub/", &[up.addr])];
        })
        .start();
    let (id, access, _) = g.user("quiet");
    g.get("/a", Some(&access)).expect_status(200);
    let seen = up.last();
    assert_eq!(seen.header_values("authorization"), Vec::<String>::new());
    assert_identity(&seen, id, "quiet", false);
    g.get("/pub/a", Some(&access)).expect_status(200);
    assert_eq!(
        up.last().header_values("authorization"),
        Vec::<String>::new()
    );
    // Still checked on the required route.
    g.get("/a", Some("garbage"))
        .expect(401, bad_access("Token is invalid"));
    assert_eq!(up.count(), 2);
}

// ---------------------------------------------------------------------------------------------
// revocation on the very next request

#[test]
fn soft_delete_and_restore_are_seen_by_the_next_proxied_request() {
    let up = Upstream::start();
    let g = gateway(&up);
    let admin = g.login("admin", ADMIN_PASSWORD).0;
    let (id, access, _) = g.user("dora");
    g.get("/a", Some(&access)).expect_status(200);
    assert_identity(&up.last(), id, "dora", false);

    g.soft_delete(&access).expect_status(200);
    g.get("/a", Some(&access)).expect(401, inactive());
    g.get("/opt/a", Some(&access)).expect(401, inactive());
    assert_eq!(up.count(), 1);

    g.restore(&admin, id).expect_status(200);
    // The old token stays dead after the restore; a new login works.
    g.get("/a", Some(&access))
        .expect(401, bad_access("Token is invalid"));
    assert_eq!(up.count(), 1);
    let fresh = g.login("dora", PASSWORD).0;
    g.get("/a", Some(&fresh)).expect_status(200);
    assert_identity(&up.last(), id, "dora", false);
    assert_eq!(up.count(), 2);
}

#[test]
fn password_change_kills_every_earlier_token_on_the_proxy() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (id, access, _) = g.user("pete");
    let second = g.login("pete", PASSWORD).0;
    g.get("/a", Some(&access)).expect_status(200);
    g.get("/a", Some(&second)).expect_status(200);
    let r = g.change_password(&access, PASSWORD, "NewPass123");
    r.expect_status(200);
    g.get("/a", Some(&access))
        .expect(401, bad_access("Token is invalid"));
    g.get("/a", Some(&second))
        .expect(401, bad_access("Token is invalid"));
    assert_eq!(up.count(), 2);
    let newest = r.json["access"].as_str().expect("fresh access");
    g.get("/a", Some(newest)).expect_status(200);
    assert_identity(&up.last(), id, "pete", false);
    let relogin = g.login("pete", "NewPass123").0;
    g.get("/a", Some(&relogin)).expect_status(200);
    assert_eq!(up.count(), 4);
}

#[test]
fn username_change_updates_x_user_name_at_once() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (id, access, _) = g.user("una");
    g.get("/a", Some(&access)).expect_status(200);
    assert_identity(&up.last(), id, "una", false);
    g.call(
        "PATCH",
        PROFILE,
        Some(json!({"username": "una2"})),
        Some(&access),
    )
    .expect_status(200);
    // Same token (a rename does not revoke), new name at once.
    g.get("/a", Some(&access)).expect_status(200);
    assert_identity(&up.last(), id, "una2", false);
    g.call(
        "PUT",
        PROFILE,
        Some(json!({"username": "una3", "email": "una3@example.com"})),
        Some(&access),
    )
    .expect_status(200);
    g.get("/opt/a", Some(&access)).expect_status(200);
    assert_identity(&up.last(), id, "una3", false);
}

#[test]
fn a_tiny_cache_decides_every_request_right() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.cache.capacity = 1;
            c.cache.ttl_seconds = 1;
            c.routes = vec![route("/", &[up.addr])];
        })
        .superuser("admin", "admin@example.com", ADMIN_PASSWORD)
        .start();
    let admin = g.login("admin", ADMIN_PASSWORD).0;
    struct U {
        id: u64,
        name: String,
        token: String,
        old: Option<String>,
        want: Option<Value>,
    }
    let mut users: Vec<U> = (0..20)
        .map(|i| {
            let name = format!("tiny{i}");
            let (id, token, _) = g.user(&name);
            U {
                id,
                name,
                token,
                old: None,
                want: None,
            }
        })
        .collect();
    // Warm the (one-entry) cache with everyone.
    for u in &users {
        g.get("/warm", Some(&u.token)).expect_status(200);
        assert_identity(&up.last(), u.id, &u.name, false);
    }
    for (i, u) in users.iter_mut().enumerate() {
        match i % 4 {
            0 => {
                g.soft_delete(&u.token).expect_status(200);
                u.want = Some(inactive());
            }
            1 => {
                let r = g.call(
                    "PATCH",
                    PASSWORD_CHANGE,
                    Some(json!({"old_password": PASSWORD, "new_password": "NewPass123"})),
                    Some(&u.token),
                );
                r.expect_status(200);
                u.old = Some(std::mem::replace(
                    &mut u.token,
                    r.json["access"].as_str().expect("access").to_string(),
                ));
            }
            2 => {
                u.name = format!("renamed{i}");
                g.call(
                    "PATCH",
                    PROFILE,
                    Some(json!({"username": u.name})),
                    Some(&u.token),
                )
                .expect_status(200);
            }
            _ => {}
        }
    }
    // Restoring user 0 does not revive its old token.
    g.restore(&admin, users[0].id).expect_status(200);
    users[0].want = Some(bad_access("Token is invalid"));

    let check = |round: &str, u: &U| {
        let before = up.count();
        let r = g.get("/x", Some(&u.token));
        match &u.want {
            Some(body) => {
                assert_eq!(
                    (r.status, &r.json),
                    (401, body),
                    "{round} {}: {}",
                    u.name,
                    r.text
                );
                assert_eq!(
                    up.count(),
                    before,
                    "{round} {}: revoked token forwarded",
                    u.name
                );
            }
            None => {
                assert_eq!(r.status, 200, "{round} {}: {}", u.name, r.text);
                assert_identity(&up.last(), u.id, &u.name, false);
            }
        }
        if let Some(old) = &u.old {
            let r = g.get("/x", Some(old));
            assert_eq!(
                (r.status, &r.json),
                (401, &bad_access("Token is invalid")),
                "{round} {}: old token after password change",
                u.name
            );
        }
    };
    for u in &users {
        check("forward", u);
    }
    for u in users.iter().rev() {
        check("reverse", u);
    }
    std::thread::sleep(Duration::from_millis(1100));
    for u in users
        .iter()
        .step_by(3)
        .chain(users.iter().skip(1).step_by(2))
    {
        check("after ttl", u);
    }
}

// ---------------------------------------------------------------------------------------------
// upstreams: round robin, failover, 502, 504

#[test]
fn round_robin_across_two_upstreams() {
    let a = Upstream::start();
    let b = Upstream::start();
    let g = gateway_with(vec![public_route("/", &[a.addr, b.addr])]);
    let mut ports = Vec::new();
    for _ in 0..12 {
        let r = g.get("/rr", None);
        r.expect_status(200);
        ports.push(r.header("x-upstream-port").expect("upstream port"));
    }
    assert_eq!(a.count() + b.count(), 12);
    assert!(
        a.count() >= 4 && b.count() >= 4,
        "uneven round robin: a={} b={} ({ports:?})",
        a.count(),
        b.count()
    );
}

#[test]
fn failover_when_one_upstream_stops() {
    let a = Upstream::start();
    let mut b = Upstream::start();
    let g = gateway_with(vec![public_route("/", &[a.addr, b.addr])]);
    for _ in 0..4 {
        g.get("/before", None).expect_status(200);
    }
    assert!(a.count() > 0 && b.count() > 0);
    b.stop();
    // Until a health check (every second) has seen b gone, round robin still picks it; three
    // answers in a row from a say it no longer does.
    let from_a = |r: &Resp| r.status == 200 && r.header(upstream::MARK) == Some(a.port.to_string());
    eventually("b leaves the rotation", || {
        (0..3).all(|_| from_a(&g.get("/probe", None))).then_some(())
    });
    let before = a.count();
    for i in 0..20 {
        let r = g.get("/after", None);
        assert!(
            from_a(&r),
            "request {i} after failover: {} {}",
            r.status,
            r.text
        );
    }
    assert_eq!(a.count(), before + 20);
}

#[test]
fn the_only_upstream_down_is_a_502() {
    let mut up = Upstream::start();
    let g = gateway(&up);
    let (_, access, _) = g.user("lonely");
    g.get("/a", Some(&access)).expect_status(200);
    up.stop();
    // Each request on its own connection: reusing one after a 502 is the subject of
    // `failed_upstream_answers_do_not_advertise_keep_alive_then_close`.
    let auth = bearer(&access);
    let fresh = |method: &str, path: &str, auth: Option<&str>| {
        let mut h = vec![("Connection", "close")];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        g.with_headers(method, path, &h)
    };
    let body = upstream_unavailable();
    let r = fresh("GET", "/a", Some(&auth));
    r.expect(502, body.clone());
    assert!(r.header("x-request-id").is_some());
    fresh("POST", "/pub/a", None).expect(502, body.clone());
    // Auth still comes first.
    fresh("GET", "/a", None).expect(401, not_provided());
    // And after the health checks (every second) have seen it gone, still a JSON 502. The
    // route's check says so in the log once it has taken the upstream out of the rotation.
    g.wait_for_log(&format!("upstream {} of route / is down", up.addr));
    fresh("GET", "/a", Some(&auth)).expect(502, body);
}

/// After a 502 or 504 the connection either stays usable or the answer says
/// `Connection: close`; announcing keep-alive and then closing breaks every pooling client.
#[test]
fn failed_upstream_answers_do_not_advertise_keep_alive_then_close() {
    let live = Upstream::start();
    let slow = Upstream::start_with(Options {
        delay: Some(Duration::from_secs(3)),
    });
    let g = gateway_with(vec![
        public_route("/", &[live.addr]),
        public_route("/dead/", &[free_addr()]),
        RouteConfig {
            read_timeout_ms: 500,
            ..public_route("/slow/", &[slow.addr])
        },
    ]);
    let mut failures = Vec::new();
    for (path, status) in [("/dead/a", 502), ("/slow/a", 504)] {
        let mut s = g.connect();
        let first = g.raw_on(&mut s, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(first.status, status, "{path}");
        let connection = first.header("connection").unwrap_or_default();
        if connection.eq_ignore_ascii_case("close") {
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
        let second = g.raw_on(&mut s, "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
        if second.status != 200 {
            failures.push(format!(
                "GET {path} -> {status} with `Connection: {connection}`, then GET /ok on the \
                 same connection -> {}",
                if second.status == 0 {
                    "connection closed, no answer".to_string()
                } else {
                    second.status.to_string()
                }
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_slow_upstream_is_a_504() {
    let up = Upstream::start_with(Options {
        delay: Some(Duration::from_secs(3)),
    });
    let g = gateway_with(vec![RouteConfig {
        read_timeout_ms: 500,
        ..public_route("/", &[up.addr])
    }]);
    let started = Instant::now();
    let r = g.get("/slow", None);
    let took = started.elapsed();
    r.expect(504, upstream_timeout());
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
        "504 after {took:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// streaming and upgrades

/// Yields `left` bytes of a pattern without ever holding them.
struct Pattern {
    left: u64,
    at: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            *b = (self.at % 251) as u8;
            self.at += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_streamed_100_mib_upload_keeps_gatehouse_memory_bounded() {
    const SIZE: u64 = 100 * 1024 * 1024;
    const LIMIT_KIB: u64 = 100 * 1024;
    let up = Upstream::start();
    let g = gateway_with(vec![public_route("/", &[up.addr])]);
    let pid = g.pid().expect("pid");
    let before = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let r = g.send(
        g.request("POST", "/upload")
            .timeout(Duration::from_secs(120))
            .header("content-type", "application/octet-stream")
            .body(reqwest::blocking::Body::new(Pattern { left: SIZE, at: 0 })),
    );
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let after = rss_kib(pid);
    let peak = peak.load(Ordering::Relaxed).max(after);
    eprintln!("gatehouse RSS: before {before} KiB, peak {peak} KiB, after {after} KiB");
    r.expect_status(200);
    assert_eq!(up.last().body_len, SIZE);
    assert_eq!(r.json["body_len"], SIZE);
    assert!(
        peak < LIMIT_KIB && after < LIMIT_KIB,
        "gatehouse RSS reached {peak} KiB (before {before}, after {after}) streaming 100 MiB"
    );
}

fn upgrade_request(path: &str, auth: Option<&str>) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if let Some(a) = auth {
        r.push_str(&format!("Authorization: Bearer {a}\r\n"));
    }
    r.push_str("\r\n");
    r
}

#[test]
fn websocket_upgrade_is_authenticated_then_echoes() {
    let up = Upstream::start();
    let g = gateway(&up);
    let (id, access, _) = g.user("wendy");

    for auth in [None, Some("garbage")] {
        let raw = g.raw(&upgrade_request("/ws", auth));
        assert_eq!(raw.status, 401, "upgrade with {auth:?}");
        let want = if auth.is_some() {
            bad_access("Token is invalid")
        } else {
            not_provided()
        };
        assert_eq!(raw.json(), want);
    }
    assert_eq!(up.count(), 0, "a refused upgrade reached the upstream");

    let mut s = g.connect();
    s.write_all(upgrade_request("/ws", Some(&access)).as_bytes())
        .expect("write");
    let head = raw::read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (_, headers) = raw::parse_head(&head);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "upgrade" && v.eq_ignore_ascii_case("websocket")));
    let seen = up.last();
    assert_identity(&seen, id, "wendy", false);
    assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(
        seen.header("sec-websocket-key").as_deref(),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    for msg in [
        b"ping through the tunnel".to_vec(),
        (0..64 * 1024).map(|i| (i % 253) as u8).collect(),
    ] {
        s.write_all(&msg).expect("write through");
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).expect("echo");
        assert!(back == msg, "echo differs ({} bytes)", msg.len());
    }
}

// ---------------------------------------------------------------------------------------------
// CORS

#[test]
fn cors_preflight_is_answered_and_other_options_are_authenticated() {
    let up = Upstream::start();
    let app = "https://app.example.com";
    // Only the origins are given: the methods and headers are the file's defaults.
    let mut cors: CorsConfig = toml::from_str(&format!("allowed_origins = [{app:?}]"))
        .expect("a CORS table with its defaults");
    cors.allow_credentials = true;
    cors.max_age_seconds = 120;
    let g = gateway_with(vec![
        RouteConfig {
            cors: Some(cors),
            ..route("/", &[up.addr])
        },
        route("/plain/", &[up.addr]),
    ]);
    let preflight = |path: &str, origin: &str, method: &str, headers: Option<&str>| {
        let mut h = vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
        ];
        if let Some(x) = headers {
            h.push(("Access-Control-Request-Headers", x));
        }
        g.with_headers("OPTIONS", path, &h)
    };

    let pre = preflight("/things", app, "POST", Some("Authorization, Content-Type"));
    pre.expect_status(204);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some(app)
    );
    assert_eq!(
        pre.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(pre.header("access-control-max-age").as_deref(), Some("120"));
    let methods = pre
        .header("access-control-allow-methods")
        .unwrap_or_default();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "allow-methods {methods:?}");
    }
    let allowed = pre
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "x-request-id"] {
        assert!(allowed.contains(h), "allow-headers {allowed:?}");
    }
    preflight("/things", app, "DELETE", Some("x-request-id")).expect_status(204);
    // An HTTP client never reads a 204's body; raw, to the close, any byte of one fails.
    let raw = g.raw(&format!(
        "OPTIONS /things HTTP/1.1\r\nHost: t\r\nOrigin: {app}\r\n\
         Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(raw.status, 204, "raw preflight");

    for (label, r) in [
        (
            "origin",
            preflight("/things", "https://evil.example", "POST", None),
        ),
        ("method", preflight("/things", app, "PURGE", None)),
        ("header", preflight("/things", app, "GET", Some("x-evil"))),
    ] {
        assert_eq!(r.status, 403, "disallowed {label}: {}", r.text);
        assert!(r.json["detail"].is_string(), "403 JSON: {}", r.text);
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    // Not a real preflight, or no CORS on the route: authenticated like any request.
    g.call("OPTIONS", "/things", None, None)
        .expect(401, not_provided());
    g.with_headers("OPTIONS", "/things", &[("Origin", app)])
        .expect(401, not_provided());
    preflight("/plain/x", app, "POST", None).expect(401, not_provided());
    assert_eq!(
        up.count(),
        0,
        "a preflight or refused OPTIONS was forwarded"
    );

    let (_, access, _) = g.user("cora");
    let r = g.with_headers("OPTIONS", "/things", &[("Authorization", &bearer(&access))]);
    r.expect_status(200);
    assert_eq!(up.last().method, "OPTIONS");
    assert_eq!(up.count(), 1);

    let r = g.with_headers(
        "GET",
        "/things",
        &[("Authorization", &bearer(&access)), ("Origin", app)],
    );
    r.expect_status(200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(app)
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(r.headers.get_all("vary").iter().any(|v| v
        .to_str()
        .unwrap_or("")
        .to_ascii_lowercase()
        .contains("origin")));
    let r = g.with_headers(
        "GET",
        "/things",
        &[
            ("Authorization", &bearer(&access)),
            ("Origin", "https://evil.example"),
        ],
    );
    r.expect_status(200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

// ---------------------------------------------------------------------------------------------
// request ids, forwarded headers

#[test]
fn request_ids_are_kept_replaced_or_generated_and_returned() {
    let up = Upstream::start();
    let g = gateway(&up);
    let long_ok = "a".repeat(128);
    for id in ["abc-123", "A.b_c:d-9", long_ok.as_str()] {
        let r = g.with_headers("GET", "/pub/a", &[("X-Request-Id", id)]);
        r.expect_status(200);
        assert_eq!(r.header("x-request-id").as_deref(), Some(id));
        assert_eq!(
            up.last().header_values("x-request-id"),
            vec![id.to_string()]
        );
    }
    let too_long = "a".repeat(129);
    let mut generated = Vec::new();
    for id in ["bad id", "<script>", "a/b", "x;y=1", "", too_long.as_str()] {
        let r = g.with_headers("GET", "/pub/a", &[("X-Request-Id", id)]);
        r.expect_status(200);
        let given = r.header("x-request-id").expect("an id is returned");
        assert!(is_hex32(&given), "{id:?} replaced by {given:?}");
        assert_eq!(up.last().header_values("x-request-id"), vec![given.clone()]);
        generated.push(given);
    }
    let r = g.get("/pub/a", None);
    let given = r.header("x-request-id").expect("generated");
    assert!(is_hex32(&given));
    assert_eq!(up.last().header_values("x-request-id"), vec![given.clone()]);
    generated.push(given);
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 7, "generated ids repeat");

    // Two client ids: the upstream sees exactly one, the one returned.
    let raw =
        g.raw("GET /pub/a HTTP/1.1\r\nHost: t\r\nX-Request-Id: one\r\nx-request-id: two\r\n\r\n");
    assert_eq!(raw.status, 200);
    let ids = up.last().header_values("x-request-id");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(raw.header("x-request-id"), Some(ids[0].clone()));

    // Local answers carry one too.
    let count = up.count();
    let local = g.get("/private", None);
    local.expect_status(401);
    assert!(local.header("x-request-id").is_some_and(|v| is_hex32(&v)));
    let local = g.with_headers("GET", "/private", &[("X-Request-Id", "trace-401")]);
    local.expect_status(401);
    assert_eq!(local.header("x-request-id").as_deref(), Some("trace-401"));
    let local = g.with_headers("GET", "/private", &[("X-Request-Id", "bad id")]);
    assert!(local.header("x-request-id").is_some_and(|v| is_hex32(&v)));
    assert_eq!(up.count(), count);
}

#[test]
fn client_forwarded_for_is_dropped_from_untrusted_peers() {
    let up = Upstream::start();
    // 10.0.0.0/8 is trusted, but the test's peer (127.0.0.1) is not in it.
    let g = Gatehouse::new()
        .with_config(|c| {
            c.proxy.trusted_proxies = vec!["10.0.0.0/8".parse().expect("network")];
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    g.with_headers(
        "GET",
        "/a",
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .expect_status(200);
    let seen = up.last();
    assert_eq!(seen.header_values("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header_values("x-forwarded-proto"), vec!["http"]);
    let raw = g.raw("GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n\r\n");
    assert_eq!(raw.status, 200);
    assert_eq!(
        up.last().header_values("x-forwarded-for"),
        vec!["127.0.0.1"]
    );
    g.get("/a", None).expect_status(200);
    assert_eq!(
        up.last().header_values("x-forwarded-for"),
        vec!["127.0.0.1"]
    );
}

#[test]
fn client_forwarded_for_is_kept_in_front_from_trusted_proxies() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.proxy.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    g.with_headers("GET", "/a", &[("X-Forwarded-For", "203.0.113.7")])
        .expect_status(200);
    let seen = up.last();
    assert_eq!(
        seen.header_values("x-forwarded-for"),
        vec!["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(seen.header_values("x-forwarded-proto"), vec!["http"]);
    g.with_headers(
        "GET",
        "/a",
        &[("X-Forwarded-For", "198.51.100.1, 203.0.113.7")],
    )
    .expect_status(200);
    assert_eq!(
        up.last().header_values("x-forwarded-for"),
        vec!["198.51.100.1, 203.0.113.7, 127.0.0.1"]
    );
    g.get("/a", None).expect_status(200);
    assert_eq!(
        up.last().header_values("x-forwarded-for"),
        vec!["127.0.0.1"]
    );
}

/// The peer is carried from one request of a keep-alive connection to the next (issue 28's
/// per-connection context); what one request's `X-Forwarded-For` said is not: behind a trusted
/// proxy each request's own chain is used, from any other peer never.
#[test]
fn forwarded_for_on_a_reused_connection_is_each_requests_own() {
    let up = Upstream::start();
    let request = |xff: Option<&str>| {
        let line = xff.map_or(String::new(), |v| format!("X-Forwarded-For: {v}\r\n"));
        format!("GET /a HTTP/1.1\r\nHost: t\r\n{line}\r\n")
    };
    for (trusted, steps) in [
        (
            "127.0.0.1/32",
            [
                (Some("203.0.113.7"), "203.0.113.7, 127.0.0.1"),
                (None, "127.0.0.1"),
                (Some("198.51.100.1"), "198.51.100.1, 127.0.0.1"),
                (None, "127.0.0.1"),
            ],
        ),
        (
            "10.0.0.0/8",
            [
                (Some("203.0.113.7"), "127.0.0.1"),
                (None, "127.0.0.1"),
                (Some("6.6.6.6"), "127.0.0.1"),
                (None, "127.0.0.1"),
            ],
        ),
    ] {
        let g = Gatehouse::new()
            .with_config(|c| {
                c.proxy.trusted_proxies = vec![trusted.parse().expect("network")];
                c.routes = vec![public_route("/", &[up.addr])];
            })
            .start();
        // One connection for all four: an answer on it means it was reused.
        let mut s = raw::connect(g.port);
        for (i, (xff, want)) in steps.into_iter().enumerate() {
            let answer = g.raw_on(&mut s, &request(xff));
            assert_eq!(answer.status, 200, "request {i} (trusted {trusted})");
            assert_eq!(
                up.last().header_values("x-forwarded-for"),
                vec![want],
                "request {i} on one connection, trusted {trusted}, sent {xff:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// routing

#[test]
fn strip_prefix_and_longest_prefix_routing() {
    let root = Upstream::start();
    let svc = Upstream::start();
    let deep = Upstream::start();
    let slash = Upstream::start();
    let stripped = |prefix: &str, up: &Upstream| RouteConfig {
        strip_prefix: true,
        ..public_route(prefix, &[up.addr])
    };
    let g = gateway_with(vec![
        public_route("/", &[root.addr]),
        stripped("/svc", &svc),
        public_route("/svc/admin/", &[deep.addr]),
        stripped("/files/", &slash),
    ]);
    let cases: [(&str, &Upstream, &str); 10] = [
        ("/svc/a/b?x=1&y=2", &svc, "/a/b?x=1&y=2"),
        ("/svc/a", &svc, "/a"),
        ("/svc", &svc, "/"),
        ("/svc/", &svc, "/"),
        ("/svcx/a", &root, "/svcx/a"),
        ("/svc/admin/users", &deep, "/svc/admin/users"),
        ("/svc/administrator", &svc, "/administrator"),
        ("/files/docs/a.txt?v=2", &slash, "/docs/a.txt?v=2"),
        ("/files/", &slash, "/"),
        ("/elsewhere", &root, "/elsewhere"),
    ];
    for (path, up, want) in cases {
        let before = (root.count(), svc.count(), deep.count(), slash.count());
        let r = g.get(path, None);
        r.expect_status(200);
        assert_eq!(
            r.header("x-upstream-port"),
            Some(up.port.to_string()),
            "{path}"
        );
        assert_eq!(up.last().uri, want, "{path}");
        let after = (root.count(), svc.count(), deep.count(), slash.count());
        let total = |t: (usize, usize, usize, usize)| t.0 + t.1 + t.2 + t.3;
        assert_eq!(total(after), total(before) + 1, "{path} forwarded once");
    }
}

#[test]
fn no_route_is_a_404_and_nothing_is_forwarded() {
    let up = Upstream::start();
    let g = gateway_with(vec![
        public_route("/app/", &[up.addr]),
        public_route("/api", &[up.addr]),
    ]);
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/apple"),
        ("POST", "/other/x"),
        ("GET", "/apiary"),
        ("DELETE", "/ap"),
    ] {
        let r = g.call(method, path, None, None);
        r.expect(404, not_found());
        assert!(r.header("x-request-id").is_some(), "{method} {path}");
    }
    assert_eq!(up.count(), 0);
    g.get("/app/x", None).expect_status(200);
    g.get("/api/x", None).expect_status(200);
    assert_eq!(up.count(), 2);
}

#[test]
fn owned_prefixes_are_never_forwarded() {
    let up = Upstream::start();
    let g = gateway_with(vec![
        public_route("/", &[up.addr]),
        public_route("/api/", &[up.addr]),
        // A route under /api/auth/ itself is refused by check-config (the `prefixes` tests).
    ]);
    for (method, path) in [
        ("GET", "/api/auth/anything/"),
        ("GET", "/api/auth/anything/deeper/"),
        ("POST", "/api/auth/anything/"),
        ("GET", "/api/token/x/"),
        ("POST", "/api/token/x/"),
        ("DELETE", "/api/token/x/y/"),
    ] {
        let r = g.call(method, path, None, None);
        r.expect(404, not_found());
    }
    // Without the trailing slash these are not API routes either: still never forwarded.
    for path in ["/api/auth/anything", "/api/token/x"] {
        let r = g.get(path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_ne!(r.header("x-upstream-port"), Some(up.port.to_string()));
    }
    // Real API paths are answered by gatehouse itself.
    g.get(PROFILE, None).expect(401, not_provided());
    assert_eq!(up.count(), 0, "an owned path reached the upstream");
    // The rest of /api/ goes through.
    g.get("/api/things", None).expect_status(200);
    assert_eq!(up.count(), 1);
}

#[test]
fn no_spelling_of_an_owned_path_reaches_the_upstream() {
    let up = Upstream::start();
    let g = gateway_with(vec![public_route("/", &[up.addr])]);
    for path in [
        "/api/%61uth/profile/",
        "//api/auth/profile/",
        "/api//auth/profile/",
        "/public/../api/auth/profile/",
        "/api/./auth/profile/",
    ] {
        g.get(path, None).expect(401, not_provided());
    }
    g.get("/api/t%6Fken/other/", None).expect(404, not_found());
    assert_eq!(up.count(), 0);
    // Forwarded requests carry the path the decision was made on.
    g.get("/a/./b//c/%7Ed?q=1", None).expect_status(200);
    assert_eq!(up.last().uri, "/a/b/c/~d?q=1");
}

#[test]
fn an_oversized_request_head_is_refused_before_any_parsing() {
    let up = Upstream::start();
    let g = gateway(&up);
    let huge = bearer(&"a".repeat(100 * 1024));
    g.with_headers("GET", "/svc", &[("Authorization", &huge)])
        .expect(431, headers_too_large());
    assert_eq!(up.count(), 0);
}

/// A refusal answered before the upstream (401 here) keeps a bodiless request's connection
/// open for the next request, as a proxied answer does; a refused request with a body it did
/// not read closes its connection, so those bytes are never read as the next request.
#[test]
fn a_refused_bodiless_request_keeps_its_connection_and_one_with_a_body_closes_it() {
    let up = Upstream::start();
    let g = gateway_with(vec![RouteConfig {
        auth: AuthMode::Required,
        ..public_route("/", &[up.addr])
    }]);
    let mut s = g.connect();
    for _ in 0..3 {
        let r = g.raw_on(&mut s, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 401, "a refused GET on a kept connection");
        assert!(
            !r.header("connection")
                .unwrap_or_default()
                .eq_ignore_ascii_case("close"),
            "a refused GET closes its connection"
        );
    }
    let r = g.raw_on(
        &mut s,
        "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 27\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "a refused POST whose body was not read keeps its connection"
    );
    let after = g.raw_on(&mut s, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        after.status, 0,
        "the connection answered after the unread body"
    );
}
