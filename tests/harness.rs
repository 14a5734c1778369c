//! The harness's framing checks catch what they are there to catch: each scenario here points
//! the harness's clients at a fake server that writes one badly framed answer, and expects the
//! check to fail naming the request. Without these, a check that never fires would look the
//! same as a server that never misframes.
mod common;

use common::client::Http;
use common::framing::Listener;
use common::raw::{connect, exchange_on};
use std::io::{Read, Write};
use std::net::TcpListener;

/// A server on loopback that answers every connection with `response`, then closes it.
fn fake_server(response: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
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

#[test]
fn a_well_framed_answer_passes() {
    let port = fake_server(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         WWW-Authenticate: Bearer realm=\"api\"\r\nConnection: close\r\n\r\n{}",
    );
    client(port)
        .get("/x", None)
        .expect(401, serde_json::json!({}));
    assert_eq!(raw(port, GET).status, 401);
}

#[test]
fn an_upstream_answer_without_content_length_passes() {
    let port = fake_server(
        "HTTP/1.1 200 OK\r\nX-Upstream-Port: 1\r\nContent-Type: text/plain\r\n\
         Connection: close\r\n\r\nstreamed",
    );
    assert_eq!(client(port).get("/x", None).text, "streamed");
}

#[test]
#[should_panic(expected = "GET /x -> 200: badly framed answer:\n  no Content-Length")]
fn a_chunked_gatehouse_answer_is_caught() {
    let port = fake_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    );
    client(port).get("/x", None);
}

#[test]
#[should_panic(expected = "Content-Length 5, but the body ended after 2 bytes")]
fn a_body_shorter_than_its_content_length_is_caught() {
    let port = fake_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{}",
    );
    raw(port, GET);
}

#[test]
#[should_panic(expected = "2 bytes after the framed body")]
fn a_body_longer_than_its_content_length_is_caught() {
    let port = fake_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}{}",
    );
    raw(port, GET);
}

#[test]
#[should_panic(expected = "2 bytes after the framed body")]
fn a_body_on_a_head_answer_is_caught() {
    let port = fake_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    raw(
        port,
        "HEAD /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
}

#[test]
#[should_panic(expected = "not application/json")]
fn a_non_json_content_type_is_caught() {
    let port = fake_server(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n{}",
    );
    client(port).get("/x", None);
}

#[test]
#[should_panic(expected = "the body is not JSON")]
fn a_body_that_is_not_json_is_caught() {
    let port = fake_server(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\noops",
    );
    client(port).get("/x", None);
}

#[test]
#[should_panic(expected = "a 401 with WWW-Authenticate []")]
fn a_401_without_www_authenticate_is_caught() {
    let port = fake_server(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    client(port).get("/x", None);
}

#[test]
#[should_panic(expected = "Content-Length 9, but the body has 8 bytes")]
fn a_wrong_content_length_on_an_upstream_answer_is_caught() {
    // Announcing more than it sends and then closing: the raw reader sees the short body.
    let port = fake_server(
        "HTTP/1.1 200 OK\r\nX-Upstream-Port: 1\r\nContent-Length: 9\r\nConnection: close\r\n\r\nstreamed",
    );
    raw(port, GET);
}
