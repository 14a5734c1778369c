//! The harness's framing checks catch what they are there to catch: each scenario here points
//! the harness's clients at a fake server that writes one badly framed answer, and expects the
//! check to fail naming the request. Without these, a check that never fires would look the
//! same as a server that never misframes.
use crate::common;

use common::client::Http;
use common::framing::Listener;
use common::raw::{connect, exchange_on};
use std::io::{Read, Write};

/// A server on loopback that answers every connection with `response`, then closes it.
fn fake_server(response: impl Into<String>) -> u16 {
    let response = response.into();
    let listener = common::process::listener();
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match s.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = s.write_all(response.as_bytes());
        }
    });
    port
}

fn client(port: u16) -> Http {
    Http::new(format!("http://127.0.0.1:{port}"), Listener::Public, false)
}

fn raw(port: u16, request: &str) -> common::Raw {
    exchange_on(&mut connect(port), Listener::Public, request)
}

const GET: &str = "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
const HEAD: &str = "HEAD /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// How an answer is read: by the HTTP client (`GET /x`) or raw, with this request.
enum Via {
    Client,
    Raw(&'static str),
}

/// The panic message reading `response` via `via` gives, if it panics.
fn failure(response: String, via: &Via) -> Option<String> {
    let port = fake_server(response);
    let read = || match via {
        Via::Client => drop(client(port).get("/x", None)),
        Via::Raw(request) => drop(raw(port, request)),
    };
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).err()?;
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
    Some(message.unwrap_or_default())
}

#[test]
fn well_framed_answers_pass() {
    let port = fake_server(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         WWW-Authenticate: Bearer realm=\"api\"\r\nConnection: close\r\n\r\n{}",
    );
    client(port)
        .get("/x", None)
        .expect(401, serde_json::json!({}));
    assert_eq!(raw(port, GET).status, 401);
    // An upstream's answer may be streamed without a Content-Length.
    let port = fake_server(
        "HTTP/1.1 200 OK\r\nX-Upstream-Port: 1\r\nContent-Type: text/plain\r\n\
         Connection: close\r\n\r\nstreamed",
    );
    assert_eq!(client(port).get("/x", None).text, "streamed");
}

#[test]
fn every_misframing_is_caught_and_named() {
    let json = "Content-Type: application/json";
    let cases: Vec<(&str, String, Via, &str)> = vec![
        (
            "a chunked answer of gatehouse's",
            format!("HTTP/1.1 200 OK\r\n{json}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"),
            Via::Client,
            "GET /x -> 200: badly framed answer:\n  no Content-Length",
        ),
        (
            "a body shorter than its Content-Length",
            format!("HTTP/1.1 200 OK\r\n{json}\r\nContent-Length: 5\r\n\r\n{{}}"),
            Via::Raw(GET),
            "Content-Length 5, but the body ended after 2 bytes",
        ),
        (
            "a body longer than its Content-Length",
            format!("HTTP/1.1 200 OK\r\n{json}\r\nContent-Length: 2\r\n\r\n{{}}{{}}"),
            Via::Raw(GET),
            "2 bytes after the framed body",
        ),
        (
            "a body on a HEAD answer",
            format!("HTTP/1.1 200 OK\r\n{json}\r\nContent-Length: 2\r\n\r\n{{}}"),
            Via::Raw(HEAD),
            "2 bytes after the framed body",
        ),
        (
            "a body on a 204",
            "HTTP/1.1 204 No Content\r\n\r\n{}".into(),
            Via::Raw(GET),
            "2 bytes after the framed body",
        ),
        (
            "HTML from gatehouse",
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n{}".into(),
            Via::Client,
            "Content-Type \"text/html\", not application/json",
        ),
        (
            "a body that is not JSON",
            format!("HTTP/1.1 502 Bad Gateway\r\n{json}\r\nContent-Length: 4\r\n\r\noops"),
            Via::Client,
            "the body is not JSON",
        ),
        (
            "a 401 without WWW-Authenticate",
            format!("HTTP/1.1 401 Unauthorized\r\n{json}\r\nContent-Length: 2\r\n\r\n{{}}"),
            Via::Client,
            "a 401 with WWW-Authenticate [], not \"Bearer realm=\\\"api\\\"\"",
        ),
        (
            "an upstream's answer shorter than its Content-Length",
            "HTTP/1.1 200 OK\r\nX-Upstream-Port: 1\r\nContent-Length: 9\r\nConnection: close\r\n\r\nstreamed".into(),
            Via::Raw(GET),
            "Content-Length 9, but the body has 8 bytes",
        ),
    ];
    let mut missed = Vec::new();
    for (label, response, via, expected) in cases {
        match failure(response, &via) {
            Some(message) if message.contains(expected) => {}
            other => missed.push(format!("{label}: expected {expected:?}, got {other:?}")),
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// `make test` runs the tests the Makefile names in TESTS_ALONE one at a time, after the others
/// (they measure time): each name must still be a test here, or a renamed one would silently
/// run among the others again.
#[test]
fn the_tests_the_makefile_runs_alone_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let makefile = std::fs::read_to_string(root.join("Makefile")).expect("read the Makefile");
    let (_, list) = makefile
        .split_once("TESTS_ALONE =")
        .expect("TESTS_ALONE in the Makefile");
    let mut names = Vec::new();
    for line in list.lines() {
        let line = line.trim_end();
        names.extend(line.trim_end_matches('\\').split_whitespace());
        if !line.ends_with('\\') {
            break;
        }
    }
    assert!(!names.is_empty(), "no names in TESTS_ALONE");
    for name in names {
        let (module, test) = name
            .split_once("::")
            .unwrap_or_else(|| panic!("{name}: not module::test"));
        let file = root.join("tests/it").join(format!("{module}.rs"));
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{name}: {}: {e}", file.display()));
        assert!(
            source.contains(&format!("#[test]\nfn {test}(")),
            "{name}: no such test in {}",
            file.display()
        );
    }
}
