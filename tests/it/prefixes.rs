//! The paths gatehouse answers itself and where they live: the user API under `[api] prefix`,
//! the pages under `[web] prefix`, the admin console under `[console] prefix`, forward-auth
//! under `/_gatehouse/`. One classifier decides who answers a path (the proxy, forward-auth,
//! `routes explain`); `check-config` refuses a route that one of these prefixes would hide.

use crate::common::upstream::Upstream;
use crate::common::*;
use gatehouse::config::Config;
use serde_json::{json, Value};

/// A change to the config a case makes.
type Edit = fn(&mut Config);

/// A gatehouse (not started) whose config `edit` makes, for its command line.
fn configured(edit: impl FnOnce(&mut Config)) -> Gatehouse {
    Gatehouse::new().with_config(edit).build()
}

#[test]
fn check_config_refuses_a_route_hidden_under_an_owned_prefix() {
    let up = Upstream::start();
    let cases: [(&str, Edit, &str); 6] = [
        ("/api/auth/things/", |_| {}, "/api/auth/ (the user API)"),
        ("/api/token/", |_| {}, "/api/token/ (the user API)"),
        ("/_gatehouse/x/", |_| {}, "/_gatehouse/ (forward-auth)"),
        (
            "/accounts/app/",
            |c| c.web.enabled = true,
            "/accounts/ (the pages ([web]))",
        ),
        (
            "/admin/users/",
            |_| {},
            "/admin/ (the admin console ([console]))",
        ),
        (
            "/gh/auth/",
            |c| c.api.prefix = "/gh/".into(),
            "/gh/auth/ (the user API)",
        ),
    ];
    for (prefix, edit, owner) in cases {
        let addr = up.addr;
        let g = configured(move |c| {
            edit(c);
            c.routes = vec![route("/", &[addr]), route(prefix, &[addr])];
        });
        let run = g.cli(&["check-config"], &[]);
        assert!(!run.succeeded(), "a route at {prefix} was accepted");
        run.assert_says(
            &format!("routes[1] ({prefix}) is under {owner}"),
            "the refusal names the route and what hides it",
        );
    }
    // Moved away, the same paths are ordinary routes; the pages' prefix is the routes' own
    // while the pages are off.
    let addr = up.addr;
    let g = configured(move |c| {
        c.api.prefix = "/gh/".into();
        c.web.enabled = false;
        c.console.enabled = false;
        c.routes = vec![
            route("/", &[addr]),
            route("/api/auth/things/", &[addr]),
            route("/accounts/app/", &[addr]),
        ];
    });
    g.cli(&["check-config"], &[])
        .assert_ok("routes outside every owned prefix")
        .assert_says(
            "answered by gatehouse itself, never routed: /gh/auth/ (the user API), /gh/token/ (the user API), /_gatehouse/ (forward-auth)",
            "check-config lists what gatehouse answers itself",
        );
}

#[test]
fn check_config_refuses_unusable_or_overlapping_prefixes() {
    let cases: [(Edit, &str); 4] = [
        (
            |c| c.api.prefix = "/api".into(),
            "api.prefix = \"/api\": must start and end with '/'",
        ),
        (
            |c| c.web.prefix = "/a b/".into(),
            "web.prefix = \"/a b/\": may hold only letters",
        ),
        (
            |c| {
                c.web.enabled = true;
                c.web.prefix = "/api/auth/pages/".into();
            },
            "web.prefix = \"/api/auth/pages/\" overlaps /api/auth/ (the user API)",
        ),
        (
            |c| {
                c.web.enabled = true;
                c.web.prefix = "/".into();
            },
            "web.prefix = \"/\" overlaps /api/auth/ (the user API)",
        ),
    ];
    for (edit, message) in cases {
        let run = configured(edit).cli(&["check-config"], &[]);
        assert!(!run.succeeded(), "accepted: {message}");
        run.assert_says(message, "the refusal names the key and what to fix");
    }
}

#[test]
fn a_moved_api_prefix_moves_every_endpoint_and_frees_the_old_paths() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.api.prefix = "/gh/v1/".into();
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    let http = g.http();
    http.post(
        "/gh/v1/auth/register/",
        json!({"username": "mover", "email": "mover@example.com", "password": PASSWORD}),
        None,
    )
    .expect_status(201);
    let r = http.post(
        "/gh/v1/token/",
        json!({"username": "mover", "password": PASSWORD}),
        None,
    );
    r.expect_status(200);
    let (access, refresh) = r.tokens();
    assert_eq!(
        http.get("/gh/v1/auth/profile/", Some(&access)).json["username"],
        "mover"
    );
    http.post("/gh/v1/token/refresh/", json!({ "refresh": refresh }), None)
        .expect_status(200);
    // A missing slash is redirected under the new prefix; an unknown path there is 404.
    let r = http.get("/gh/v1/auth/profile", None);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/gh/v1/auth/profile/")
    );
    http.get("/gh/v1/auth/nothing/", None)
        .expect(404, json!({"detail": "Not found."}));
    assert_eq!(
        up.count(),
        0,
        "a path under the API's prefix reached the upstream"
    );
    // The seed's paths are now the routes' like any other path.
    http.get("/api/auth/profile/", Some(&access))
        .expect_status(200);
    assert_eq!(up.count(), 1);
    assert_eq!(up.last().uri, "/api/auth/profile/");
    // The schema documents where the API is.
    let schema: Value = http.get("/gh/v1/schema/", None).json;
    let paths = schema["paths"].as_object().expect("paths");
    assert!(
        paths.contains_key("/gh/v1/auth/register/"),
        "{:?}",
        paths.keys()
    );
    assert!(!paths.keys().any(|p| p.starts_with("/api/")));
    // And `routes explain` agrees with the proxy.
    let explained = g.cli(&["routes", "explain", "/gh/v1/token/"], &[]);
    explained
        .assert_ok("routes explain")
        .assert_says("the user API (token)", "the moved endpoint is the API's");
    g.cli(&["routes", "explain", "/api/token/"], &[])
        .assert_ok("routes explain")
        .assert_says("route: / ->", "the old path goes to the route");
}

#[test]
fn the_pages_prefix_is_answered_by_gatehouse_only_when_the_pages_are_on() {
    let up = Upstream::start();
    let off = Gatehouse::new()
        .with_config(|c| {
            c.web.enabled = false;
            c.console.enabled = false;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    off.http().get("/accounts/login/", None).expect_status(200);
    assert_eq!(
        up.count(),
        1,
        "with the pages off, their prefix is the route's"
    );

    let on = Gatehouse::new()
        .with_config(|c| {
            c.web.enabled = true;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    for (method, path, status) in [
        ("GET", "/accounts/login/", 200),
        ("HEAD", "/accounts/login/", 200),
        ("GET", "/accounts/nowhere/", 404),
        ("POST", "/accounts/nowhere/", 404),
    ] {
        // The harness holds the answer to the pages' framing: an HTML document with the
        // pages' Content-Security-Policy.
        let r = on.http().call(method, path, None, None);
        assert_eq!(r.status, status, "{method} {path}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        for (name, value) in [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(r.header(name).as_deref(), Some(value), "{method} {name}");
        }
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        if status == 404 && method != "HEAD" {
            assert!(r.text.contains("<h1>Page not found</h1>"), "{}", r.text);
        }
    }
    assert_eq!(up.count(), 1, "a page request reached the upstream");
    on.cli(&["routes", "explain", "/accounts/login/"], &[])
        .assert_ok("routes explain")
        .assert_says("the pages ([web] prefix", "explain names the pages");
}
