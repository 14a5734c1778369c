use crate::common;

// Paths at the edge (§13 of the spec): a path whose meaning depends on who decodes it (an
// encoded slash or backslash, a raw backslash, a double encoding) is refused with 400 JSON and
// never forwarded; with `escaped_paths = "forward"` it is passed on as it came.

use common::upstream::Upstream;
use common::*;
use gatehouse::config::{Config, EscapedPaths};
use serde_json::{json, Value};

const REFUSED: &[&str] = &[
    "/public/..%2fsvc/x",
    "/public/..%2Fsvc/x",
    "/public/%2e%2e%2fsvc/x",
    "/public/..%5csvc/x",
    "/public/..%5Csvc/x",
    "/public/..\\svc/x",
    "/public/%252e%252e/svc/x",
    "/public/%252f",
    "/public/%255c",
];

fn status_and_body(answer: &Raw) -> (u16, Value) {
    (answer.status, answer.json())
}

/// Raw, so that no client library re-spells the path.
fn get(g: &Gatehouse, path: &str) -> Raw {
    g.raw(&format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ))
}

fn routes(up: &Upstream) -> impl FnOnce(&mut Config) {
    let addr = up.addr;
    move |c| c.routes = vec![public_route("/public/", &[addr]), route("/svc/", &[addr])]
}

#[test]
fn escaped_paths_are_refused_and_never_forwarded() {
    let up = Upstream::start();
    let g = Gatehouse::new().with_config(routes(&up)).start();
    for path in REFUSED {
        let answer = get(&g, path);
        let (status, body) = status_and_body(&answer);
        assert_eq!(status, 400, "{path}: {answer:?}");
        assert_eq!(
            body,
            json!({"detail": "The request path holds an encoded slash, backslash or dot, or a backslash: refused."}),
            "{path}"
        );
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/json"),
            "{path}"
        );
    }
    assert_eq!(
        up.count(),
        0,
        "nothing reached the upstream: {:?}",
        up.requests()
    );
    // A plain public path and a single-encoded dot segment (resolved before routing) pass.
    let (status, _) = status_and_body(&get(&g, "/public/page"));
    assert_eq!(status, 200);
    let (status, _) = status_and_body(&get(&g, "/public/%2e%2e/public/again"));
    assert_eq!(status, 200);
    assert_eq!(up.last().uri, "/public/again");
    // The user API is behind the same rule.
    let (status, _) = status_and_body(&get(&g, "/api/auth%2fprofile/"));
    assert_eq!(status, 400);
}

#[test]
fn forward_mode_passes_escaped_paths_on_as_they_came() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(routes(&up))
        .with_config(|c| c.proxy.escaped_paths = EscapedPaths::Forward)
        .start();
    for path in ["/public/a%2Fb", "/public/a%5Cb", "/public/%252e"] {
        let answer = get(&g, path);
        let (status, _) = status_and_body(&answer);
        assert_eq!(status, 200, "{path}: {answer:?}");
        assert_eq!(up.last().uri, *path, "forwarded unchanged");
    }
}

#[test]
fn heads_the_engine_cannot_parse_get_a_400_and_a_closed_connection_never_a_hang() {
    // SECURITY.md "Request heads the engine refuses": Pingora answers these before any hook.
    let up = Upstream::start();
    let g = Gatehouse::new().with_config(routes(&up)).start();
    let started = std::time::Instant::now();
    let answer = g.raw("GET /public/x HTTP/1.1\r\nHost: x\r\nX-Bad: a\u{1}b\r\n\r\n");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "answered and closed at once"
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(up.count(), 0, "nothing forwarded");
    // The next connection is served normally.
    let (status, _) = status_and_body(&get(&g, "/public/page"));
    assert_eq!(status, 200);
}
