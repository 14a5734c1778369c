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
