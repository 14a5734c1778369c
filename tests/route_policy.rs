mod common;

// Route policy (SPEC §12): `methods` limits what a route takes; anything else is 405 JSON
// with the route's `Allow` and never reaches the upstream. Who is calling is settled first.

use common::upstream::Upstream;
use common::*;
use gatehouse::config::RouteConfig;
use serde_json::json;

fn methods(list: &[&str]) -> Vec<http::Method> {
    list.iter().map(|m| m.parse().expect("a method")).collect()
}

#[test]
fn methods_outside_the_route_list_are_405_and_never_forwarded() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![
                RouteConfig {
                    methods: methods(&["GET", "HEAD"]),
                    ..route("/ro/", &[addr])
                },
                RouteConfig {
                    methods: methods(&["GET"]),
                    ..public_route("/open/", &[addr])
                },
            ]
        })
        .start();
    let token = g.user_token("reader");

    g.get("/ro/items", Some(&token)).expect_status(200);
    let forwarded = up.count();
    let r = g.send(g.request("DELETE", "/ro/items").bearer_auth(&token));
    r.expect(405, json!({"detail": "Method \"DELETE\" not allowed."}));
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"));
    // Without a token the caller learns nothing about the route's methods: 401 first.
    g.send(g.request("DELETE", "/ro/items")).expect_status(401);
    // Public routes too.
    let r = g.send(g.request("POST", "/open/form"));
    r.expect(405, json!({"detail": "Method \"POST\" not allowed."}));
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
    g.get("/open/form", None).expect_status(200);
    assert_eq!(
        up.count(),
        forwarded + 1,
        "only the allowed GET was forwarded"
    );
}

#[test]
fn a_route_without_a_method_list_takes_every_method() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = Gatehouse::new()
        .with_config(|c| c.routes = vec![public_route("/any/", &[addr])])
        .start();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        g.send(g.request(method, "/any/x")).expect_status(200);
    }
    assert_eq!(up.count(), 5);
}

#[test]
fn routes_explain_names_the_route_and_decides_for_a_user() {
    let up = Upstream::start();
    let addr = up.addr;
    let mut g = Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![
                RouteConfig {
                    methods: methods(&["GET", "HEAD"]),
                    strip_prefix: true,
                    ..route("/ro/", &[addr])
                },
                RouteConfig {
                    require_staff: true,
                    ..route("/staff/", &[addr])
                },
                public_route("/open/", &[addr]),
            ]
        })
        .start();
    let id = id_of(&g.register("alice"));
    let explain = |g: &Gatehouse, args: &[&str]| {
        let mut all = vec!["routes", "explain"];
        all.extend_from_slice(args);
        g.cli(&all, &[])
    };
    // Without --user it needs no store: it works while the server runs.
    let r = explain(&g, &["/ro/items"]);
    r.assert_ok("routes explain");
    r.assert_says(
        &format!("route: /ro/ -> {addr}"),
        "the route and its upstreams",
    );
    r.assert_says(
        "auth required; methods: GET, HEAD; path sent upstream: /items",
        "the requirements",
    );
    // With --user while sled is held by the server: a clear message, not a hang.
    let busy = explain(&g, &["--user", "alice", "/ro/items"]);
    assert!(!busy.succeeded(), "{}", busy.output());
    busy.assert_says("held by a running gatehouse", "the store is busy");

    g.kill();
    explain(&g, &["--user", "alice", "/ro/items"]).assert_says(
        &format!("user alice: forwarded with x-user-id: {id}, x-user-name: alice, x-user-is-staff: false"),
        "the identity the upstream would get",
    );
    explain(&g, &["--method", "DELETE", "--user", "alice", "/ro/items"]).assert_says(
        "refused with a valid token: 405",
        "a method the route does not take",
    );
    explain(&g, &["--user", "alice", "/staff/panel"])
        .assert_says("refused with a valid token: 403", "staff only");
    explain(&g, &["--user", "nobody", "/ro/items"]).assert_says(
        "refused with a valid token: 401 {\"detail\":\"User not found\"",
        "no such user",
    );
    explain(&g, &["--user", "alice", "/open/page"])
        .assert_says("forwarded without identity headers", "a public route");
    explain(&g, &["/api/auth/profile/"])
        .assert_says("answered by gatehouse itself", "the user API");
    explain(&g, &["/elsewhere"]).assert_says("no route: 404", "no route");
    explain(&g, &["/open/..%2fro/x"]).assert_says("refused: 400", "an escaped path");
}
