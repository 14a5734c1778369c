//! Raw HTTP/1.1 on a socket: what an HTTP client would refuse to send (duplicate headers, odd
//! letter case, a body cut short). Answers are read by their framing, so keep-alive requests
//! do not hang, and held to the same framing rules as the client's (`framing.rs`).

use super::framing::{self, Answer, Listener};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One answer read off a socket (status 0: the connection closed without one).
#[derive(Debug)]
pub struct Raw {
    /// The request line.
    pub request: String,
    pub status: u16,
    /// Names lower-case, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Every value of `name` (any letter case) among header lines as read off the wire.
pub fn values_of(lines: &[(String, String)], name: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

impl Raw {
    pub fn header_values(&self, name: &str) -> Vec<String> {
        values_of(&self.headers, name)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A new connection to `port` with a 10 s read timeout.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s
}

/// Reads up to and including the blank line after the headers ("" if the peer closed).
pub fn read_head(s: &mut TcpStream) -> String {
    read_until(s, b"\r\n\r\n")
}

fn read_until(s: &mut TcpStream, end: &[u8]) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(end) {
        match s.read(&mut byte) {
            Ok(1) => out.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Status and headers (names lower-case) of a response head.
pub fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// Writes `request` on `s` and reads one answer, checked unless it is a 101 (the connection
/// is the upstream's from then on) or there was none.
#[track_caller]
pub fn exchange_on(s: &mut TcpStream, listener: Listener, request: &str) -> Raw {
    let request_line = request.split("\r\n").next().unwrap_or_default().to_string();
    let mut raw = Raw {
        request: request_line,
        status: 0,
        headers: Vec::new(),
        body: Vec::new(),
    };
    if s.write_all(request.as_bytes()).is_err() {
        return raw;
    }
    let head = read_head(s);
    (raw.status, raw.headers) = parse_head(&head);
    let method = raw.request.split(' ').next().unwrap_or_default();
    let head_request = method == "HEAD";
    if raw.status == 0 || raw.status == 101 {
        return raw;
    }
    let mut found = Vec::new();
    let bodiless = head_request || raw.status == 204 || raw.status == 304 || raw.status < 200;
    let length = raw
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = raw
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    match (bodiless, length) {
        (true, _) => {}
        (false, Some(len)) => {
            let mut body = vec![0u8; len];
            let mut got = 0;
            while got < len {
                match s.read(&mut body[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            if got < len {
                found.push(format!(
                    "Content-Length {len}, but the body ended after {got} bytes"
                ));
            }
            body.truncate(got);
            raw.body = body;
        }
        (false, None) if chunked => raw.body = read_chunked(s),
        (false, None) => {
            if raw.header(super::upstream::MARK).is_some() {
                let _ = s.read_to_end(&mut raw.body);
            }
        }
    }
    // Without Content-Length or chunks a body runs to the close: the check says so.
    let closing = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let request_closes = request
        .to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n");
    if (length.is_some() || chunked || bodiless)
        && (closing(raw.header("connection")) || request_closes)
    {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        if !rest.is_empty() {
            found.push(format!(
                "{} bytes after the framed body: {:?}",
                rest.len(),
                String::from_utf8_lossy(&rest)
            ));
        }
    }
    let header = |name: &str| raw.header_values(name);
    let answer = Answer {
        request: &raw.request,
        head: head_request,
        status: raw.status,
        header: &header,
        body: &raw.body,
    };
    framing::check(listener, &answer, found);
    raw
}

fn read_chunked(s: &mut TcpStream) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = read_until(s, b"\r\n");
        let size =
            usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            read_until(s, b"\r\n");
            return body;
        }
        let mut chunk = vec![0u8; size];
        if s.read_exact(&mut chunk).is_err() {
            return body;
        }
        body.extend_from_slice(&chunk);
        read_until(s, b"\r\n");
    }
}
