//! The framing every answer is held to, whichever client read it. gatehouse's own answers
//! (the user API, gateway errors, the metrics listener) are JSON with an exact
//! `Content-Length` (an empty one: `Content-Length: 0` and no type), pages are HTML
//! documents with the pages' security headers; an upstream's answer
//! through the proxy keeps a correct `Content-Length`
//! when it has one. `HEAD` answers and 204s carry no body, and their `Content-Length` is not
//! judged here. (The HTTP client never reads a body after a HEAD answer or a 204, so that rule
//! bites on raw reads, which read on to the close.)

use super::bodies::WWW_AUTHENTICATE;
use super::upstream;

/// Which listener answered: the public one (API + proxy) or the metrics listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Public,
    Ops,
}

/// One answer as read off the wire, whatever read it.
pub struct Answer<'a> {
    /// `METHOD path`, for the failure message.
    pub request: &'a str,
    pub head: bool,
    pub status: u16,
    /// Every value of a header (name lower-case).
    pub header: &'a dyn Fn(&str) -> Vec<String>,
    pub body: &'a [u8],
}

/// Panics, naming the request, when `answer` breaks the framing rules; `found` are problems
/// the reader already saw (a body shorter than announced, bytes after it).
#[track_caller]
pub fn check(listener: Listener, answer: &Answer<'_>, found: Vec<String>) {
    let problems = [found, problems(listener, answer)].concat();
    if !problems.is_empty() {
        let header = answer.header;
        panic!(
            "{} -> {}: badly framed answer:\n  {}\nContent-Type {:?}, Content-Length {:?}, body {:?}",
            answer.request,
            answer.status,
            problems.join("\n  "),
            header("content-type"),
            header("content-length"),
            String::from_utf8_lossy(answer.body)
        );
    }
}

fn problems(listener: Listener, a: &Answer<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let header = a.header;
    let lengths = header("content-length");
    if lengths.len() > 1 {
        out.push(format!("{} Content-Length headers", lengths.len()));
    }
    let length = lengths.first().map(|v| v.parse::<usize>());
    let from_upstream = listener == Listener::Public && !header(upstream::MARK).is_empty();
    let content_type = header("content-type")
        .into_iter()
        .next()
        .unwrap_or_default();
    let json = content_type.starts_with("application/json");
    // A page (it carries the pages' Content-Security-Policy) is HTML.
    let page =
        content_type == "text/html; charset=utf-8" && !header("content-security-policy").is_empty();
    // The pages' stylesheet (`{prefix}static/*.css`).
    let stylesheet = content_type == "text/css; charset=utf-8";
    // The console's CSV export: streamed, so chunked, its length unknown when it starts.
    let export = content_type == "text/csv; charset=utf-8"
        && header("transfer-encoding") == ["chunked"]
        && length.is_none();
    // The metrics listener writes Prometheus text on /metrics, JSON everywhere else.
    let typed = json
        || page
        || stylesheet
        || export
        || (listener == Listener::Ops && content_type.starts_with("text/plain"));
    if a.head || a.status == 204 {
        if !a.body.is_empty() {
            out.push(format!("{} bytes of body", a.body.len()));
        }
        if a.head && !from_upstream && !typed {
            out.push(format!(
                "Content-Type {content_type:?}, not application/json"
            ));
        }
        return out;
    }
    match length {
        Some(Ok(n)) if n != a.body.len() => out.push(format!(
            "Content-Length {n}, but the body has {} bytes",
            a.body.len()
        )),
        Some(Err(_)) => out.push("Content-Length is not a number".to_string()),
        None if !from_upstream && !export => out.push("no Content-Length".to_string()),
        _ => {}
    }
    if from_upstream {
        return out;
    }
    // An empty answer (forward-auth's "allowed") says so with `Content-Length: 0` and no type.
    if a.body.is_empty() && content_type.is_empty() && length.is_some() {
        return out;
    }
    if !typed {
        out.push(format!(
            "Content-Type {content_type:?}, not application/json"
        ));
    }
    if json && serde_json::from_slice::<serde_json::Value>(a.body).is_err() {
        out.push("the body is not JSON".to_string());
    }
    if page && !a.body.starts_with(b"<!doctype html>") {
        out.push("the page is not an HTML document".to_string());
    }
    if a.status == 401 && header("www-authenticate") != [WWW_AUTHENTICATE] {
        out.push(format!(
            "a 401 with WWW-Authenticate {:?}, not {WWW_AUTHENTICATE:?}",
            header("www-authenticate")
        ));
    }
    out
}
