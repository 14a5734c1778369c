//! A response gatehouse writes itself (API answers, pages, gateway errors): status, headers,
//! a body and its content type (JSON for the API and errors, HTML for pages, chosen by
//! whoever makes the answer), and the framing that follows from them, decided here so that
//! keep-alive clients never hang: `Content-Length` always, except on 204 (no body exists); a
//! HEAD answer says what the GET would (RFC 9110 9.3.2) and sends no body. A body made while
//! it is sent ([`BodyStream`], the console's CSV export) goes chunked instead of with a length.

use bytes::Bytes;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub const JSON: &str = "application/json";
pub const HTML: &str = "text/html; charset=utf-8";
pub const CSV: &str = "text/csv; charset=utf-8";

/// One piece of a streamed body, or why the rest cannot be made (the body then ends
/// unfinished, so the client sees a broken transfer rather than a short file passing for
/// whole).
pub type Chunk = Result<Bytes, String>;

/// A body made while it is sent: chunks from a producer task through a small bounded channel,
/// so memory holds a few chunks whatever the body's length, and a slow client slows the
/// producer. Cloning shares the one receiver; whoever writes the response takes it.
#[derive(Clone)]
pub struct BodyStream(Arc<Mutex<Option<mpsc::Receiver<Chunk>>>>);

impl BodyStream {
    /// A stream and the sender its producer writes to, holding at most `depth` chunks.
    pub fn channel(depth: usize) -> (mpsc::Sender<Chunk>, BodyStream) {
        let (tx, rx) = mpsc::channel(depth.max(1));
        (tx, BodyStream(Arc::new(Mutex::new(Some(rx)))))
    }

    /// The receiver, once (`None` after, or if a writer panicked holding it).
    pub fn take(&self) -> Option<mpsc::Receiver<Chunk>> {
        self.0.lock().ok()?.take()
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream")
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Extra headers besides the framing ones (names from code, or from the config).
    pub headers: Vec<(Cow<'static, str>, String)>,
    pub body: Bytes,
    /// What the body is (`JSON`, `HTML`); sent only with a body to describe.
    pub content_type: &'static str,
    /// A HEAD request: the headers describe the body, but none is sent.
    pub head_only: bool,
    /// The body is made while it is sent (`body` is then empty and unused).
    pub stream: Option<BodyStream>,
}

/// The framing header fields of a response, and whether a body follows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub content_type: Option<&'static str>,
    pub content_length: Option<usize>,
    /// `Transfer-Encoding: chunked` (a streamed body, whose length nobody knows yet).
    pub chunked: bool,
    pub sends_body: bool,
}

impl Response {
    pub fn json(status: u16, body: &Value) -> Response {
        // `to_vec` writes straight into a Vec with 128 bytes reserved; `Display` (`to_string`)
        // goes through `fmt::Formatter` in ~40 small writes and grows the String from empty:
        // ~3.9k more instructions for a profile answer (benches/README.md). Serializing a
        // `Value` into memory cannot fail (its keys are strings, a Vec takes every write), so
        // the `Display` fallback is never taken.
        let bytes = serde_json::to_vec(body).unwrap_or_else(|_| body.to_string().into_bytes());
        Response::json_text(status, Bytes::from(bytes))
    }

    /// A body that is already JSON text.
    pub fn json_text(status: u16, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            content_type: JSON,
            head_only: false,
            stream: None,
        }
    }

    /// A body of `content_type` made while it is sent, from `stream`.
    pub fn streamed(status: u16, content_type: &'static str, stream: BodyStream) -> Response {
        Response {
            content_type,
            stream: Some(stream),
            ..Response::json_text(status, Bytes::new())
        }
    }

    /// A page: HTML text, already rendered (and escaped) by the pages' templates.
    pub fn html(status: u16, body: impl Into<Bytes>) -> Response {
        Response {
            content_type: HTML,
            ..Response::json_text(status, body)
        }
    }

    /// A redirect to `location` (no body).
    pub fn redirect(status: u16, location: String) -> Response {
        Response::json_text(status, Bytes::new()).with_header("Location", location)
    }

    /// No content at all (204).
    pub fn no_content() -> Response {
        Response::json_text(204, Bytes::new())
    }

    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Response {
        self.add_header(name, value);
        self
    }

    pub fn add_header(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What the head must say about the body: a 204 has none (RFC 9110 forbids the length
    /// there); a HEAD answer describes the body it does not send.
    pub fn framing(&self) -> Framing {
        if self.status == 204 {
            return Framing {
                content_type: None,
                content_length: None,
                chunked: false,
                sends_body: false,
            };
        }
        if self.stream.is_some() {
            // A HEAD answer does not say chunked: no body follows it at all.
            return Framing {
                content_type: Some(self.content_type),
                content_length: None,
                chunked: !self.head_only,
                sends_body: !self.head_only,
            };
        }
        Framing {
            // An empty body is no document: it goes without a type.
            content_type: (self.head_only || !self.body.is_empty()).then_some(self.content_type),
            content_length: Some(self.body.len()),
            chunked: false,
            sends_body: !self.head_only && !self.body.is_empty(),
        }
    }

    /// The body as JSON (`Null` if it is not JSON): for tests and logs.
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn framing_follows_status_and_method() {
        let ok = Response::json(200, &json!({"a": 1}));
        assert_eq!(
            ok.framing(),
            Framing {
                content_type: Some(JSON),
                content_length: Some(7),
                chunked: false,
                sends_body: true
            }
        );
        let mut head = ok.clone();
        head.head_only = true;
        assert_eq!(head.framing().content_length, Some(7));
        assert!(!head.framing().sends_body);
        assert_eq!(head.framing().content_type, Some(JSON));
        let none = Response::no_content().framing();
        assert_eq!((none.content_type, none.content_length), (None, None));
        assert!(!none.sends_body);
        let empty = Response::json_text(200, Bytes::new()).framing();
        assert_eq!(empty.content_length, Some(0));
        assert_eq!(empty.content_type, None);
        assert!(!empty.sends_body);
        let page = Response::html(404, "<p>no</p>").framing();
        assert_eq!(
            (page.content_type, page.content_length, page.sends_body),
            (Some(HTML), Some(9), true)
        );
        let (_tx, stream) = BodyStream::channel(1);
        let mut csv = Response::streamed(200, CSV, stream);
        let f = csv.framing();
        assert_eq!(
            (f.content_type, f.content_length, f.chunked, f.sends_body),
            (Some(CSV), None, true, true)
        );
        csv.head_only = true;
        let f = csv.framing();
        assert_eq!(
            (f.content_length, f.chunked, f.sends_body),
            (None, false, false)
        );
        assert!(csv.stream.as_ref().and_then(BodyStream::take).is_some());
        assert!(
            csv.stream.as_ref().and_then(BodyStream::take).is_none(),
            "taken once"
        );
    }
}
