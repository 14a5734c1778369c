use crate::common;

// Forward-auth (SPEC §11): gatehouse as the authentication service of an ingress in front of
// it. A real nginx with `auth_request`; requests shaped as Traefik ForwardAuth and Envoy's
// ext_authz HTTP service send them; the same route table and decisions as the inline proxy.

use common::nginx::Nginx;
use common::upstream::Upstream;
use common::*;
use gatehouse::config::{Config, RouteConfig};
use serde_json::json;
use std::time::Duration;

/// The routes every scenario asks about, and forward-auth on for loopback peers.
fn asked_about(up: &Upstream) -> impl FnOnce(&mut Config) {
    let addr = up.addr;
    move |c| {
        c.forward_auth.enabled = true;
        c.routes = vec![
            route("/svc/", &[addr]),
            public_route("/pub/", &[addr]),
            RouteConfig {
                require_staff: true,
                ..route("/staff/", &[addr])
            },
            RouteConfig {
                methods: vec![http::Method::GET],
                ..route("/ro/", &[addr])
            },
        ];
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[test]
fn nginx_auth_request_lets_valid_tokens_through_with_identity_and_relays_refusals() {
    let up = Upstream::start();
    let g = Gatehouse::new().with_config(asked_about(&up)).start();
    let nginx = Nginx::start(g.port, up.port);
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let http = client();
    let token = g.user_token("nina");
    let id = g.get("/api/auth/profile/", Some(&token)).json["id"].clone();

    // A valid token passes, with the identity headers nginx copied; a spoofed copy is gone.
    let r = http
        .get(format!("{base}/svc/orders?x=1"))
        .bearer_auth(&token)
        .header("X-User-Id", "1")
        .header("x-user-name", "root")
        .send()
        .expect("through nginx");
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.uri, "/svc/orders?x=1");
    assert_eq!(seen.header_values("x-user-id"), vec![id.to_string()]);
    assert_eq!(seen.header_values("x-user-name"), vec!["nina".to_string()]);
    assert_eq!(
        seen.header_values("x-user-is-staff"),
        vec!["false".to_string()]
    );
    let forwarded = up.count();

    // No token: gatehouse's status, body and WWW-Authenticate, relayed by nginx.
    let r = http
        .get(format!("{base}/svc/orders"))
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"api\"")
    );
    let body: serde_json::Value = r.json().expect("json body");
    assert_eq!(
        body,
        json!({"detail": "Authentication credentials were not provided."})
    );
    // Not staff: 403.
    let r = http
        .get(format!("{base}/staff/panel"))
        .bearer_auth(&token)
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 403);
    // Revoked (soft delete): refused on the very next request.
    g.call("DELETE", "/api/auth/profile/delete/", None, Some(&token))
        .expect_status(200);
    let r = http
        .get(format!("{base}/svc/orders"))
        .bearer_auth(&token)
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().expect("json body");
    assert_eq!(
        body,
        json!({"detail": "User is inactive", "code": "user_inactive"})
    );
    assert_eq!(
        up.count(),
        forwarded,
        "no refused request reached the upstream"
    );

    // A public route passes without a token and without identity, even a spoofed one.
    let r = http
        .get(format!("{base}/pub/page"))
        .header("X-User-Id", "1")
        .send()
        .expect("nginx");
    assert_eq!(r.status(), 200);
    assert!(
        up.last().header_values("x-user-id").is_empty(),
        "{:?}",
        up.last()
    );
}

#[test]
fn traefik_and_envoy_shaped_asks_get_the_same_decisions() {
    let up = Upstream::start();
    let g = Gatehouse::new().with_config(asked_about(&up)).start();
    let token = g.user_token("tara");
    // Traefik ForwardAuth: X-Forwarded-Method/-Uri/-Host/-Proto, the client's headers.
    let traefik = |method: &str, uri: &str, token: Option<&str>| {
        let mut rb = g
            .request("GET", "/_gatehouse/auth")
            .header("X-Forwarded-Method", method)
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Forwarded-Uri", uri)
            .header("X-Forwarded-For", "203.0.113.9");
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        g.send(rb)
    };
    let r = traefik("GET", "/svc/a?b=c", Some(&token));
    r.expect_status(200);
    assert_eq!(r.header("x-user-name").as_deref(), Some("tara"));
    assert!(r.text.is_empty(), "an allowed ask has an empty body");
    traefik("GET", "/svc/a", None).expect(
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    let r = traefik("GET", "/pub/x", None);
    r.expect_status(200);
    assert_eq!(r.header("x-user-id"), None, "public: no identity");
    traefik("POST", "/ro/x", Some(&token))
        .expect(405, json!({"detail": "Method \"POST\" not allowed."}));
    traefik("GET", "/nowhere", Some(&token)).expect(404, json!({"detail": "Not found."}));
    traefik("GET", "/pub/..%2fsvc/x", None).expect_status(400);

    // Envoy ext_authz HTTP service (path_prefix): the original path after the prefix, the
    // original method as the ask's own.
    let r = g.send(
        g.request("PUT", "/_gatehouse/ext_authz/svc/items/7")
            .bearer_auth(&token)
            .header("x-envoy-internal", "true")
            .header("x-request-id", "envoy-1"),
    );
    r.expect_status(200);
    assert_eq!(r.header("x-user-name").as_deref(), Some("tara"));
    g.send(g.request("GET", "/_gatehouse/ext_authz/svc/items/7"))
        .expect_status(401);
    assert_eq!(up.count(), 0, "forward-auth never forwards anything itself");

    // The asks are counted as forward-auth in the metrics.
    let metrics = g.ops().get("/metrics", None).text;
    assert!(
        metrics.contains("kind=\"forward_auth\""),
        "forward-auth requests are marked in gatehouse_http_requests_total"
    );
}

#[test]
fn peers_outside_allowed_peers_and_a_disabled_endpoint_get_404() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(asked_about(&up))
        .with_config(|c| c.forward_auth.allowed_peers = vec!["10.0.0.0/8".parse().expect("net")])
        .start();
    g.send(
        g.request("GET", "/_gatehouse/auth")
            .header("X-Original-URI", "/pub/x"),
    )
    .expect(404, json!({"detail": "Not found."}));
    let off = Gatehouse::new()
        .with_config(asked_about(&up))
        .with_config(|c| c.forward_auth.enabled = false)
        .start();
    off.send(
        off.request("GET", "/_gatehouse/auth")
            .header("X-Original-URI", "/pub/x"),
    )
    .expect(404, json!({"detail": "Not found."}));
    // The prefix is gatehouse's: never forwarded, even with a catch-all route.
    let addr = up.addr;
    let catch_all = Gatehouse::new()
        .with_config(|c| c.routes = vec![public_route("/", &[addr])])
        .start();
    catch_all
        .send(catch_all.request("GET", "/_gatehouse/anything"))
        .expect_status(404);
    assert_eq!(up.count(), 0);
}
