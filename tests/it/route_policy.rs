use crate::common;

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

#[test]
fn require_groups_lets_members_of_any_listed_group_through_inline_and_by_forward_auth() {
    let up = Upstream::start();
    let addr = up.addr;
    let groups = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let g = Gatehouse::new()
        .superuser("root", "root@example.com", "Root-Pass-2024")
        .with_config(|c| {
            c.forward_auth.enabled = true;
            c.routes = vec![
                RouteConfig {
                    require_groups: groups(&["billing", "ops"]),
                    ..route("/billing/", &[addr])
                },
                RouteConfig {
                    require_groups: groups(&["ops"]),
                    ..route("/ops/", &[addr])
                },
            ]
        })
        .start();
    let root = g.login("root", "Root-Pass-2024").0;
    let (gina_id, gina, _) = g.user("gina");
    g.call(
        "PATCH",
        &format!("/api/auth/admin/users/{gina_id}/"),
        Some(json!({"groups": ["billing"]})),
        Some(&root),
    )
    .expect_status(200);

    g.get("/billing/invoices", Some(&gina)).expect_status(200);
    assert_eq!(
        up.last().header_values("x-user-groups"),
        vec!["billing".to_string()]
    );
    let forwarded = up.count();
    g.get("/ops/deploy", Some(&gina)).expect(
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
    g.get("/billing/invoices", None).expect(
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    assert_eq!(up.count(), forwarded, "refusals are never forwarded");

    // The same decisions for an ingress asking.
    let ask = |uri: &str| {
        g.send(
            g.request("GET", "/_gatehouse/auth")
                .bearer_auth(&gina)
                .header("X-Original-URI", uri),
        )
    };
    let r = ask("/billing/invoices");
    r.expect_status(200);
    assert_eq!(r.header("x-user-groups").as_deref(), Some("billing"));
    ask("/ops/deploy").expect_status(403);

    // A change of groups counts on the very next request.
    g.call(
        "PATCH",
        &format!("/api/auth/admin/users/{gina_id}/"),
        Some(json!({"groups": ["ops"]})),
        Some(&root),
    )
    .expect_status(200);
    g.get("/ops/deploy", Some(&gina)).expect_status(200);
    ask("/ops/deploy").expect_status(200);
}
