//! A response gatehouse writes itself (API answers, gateway errors): status, headers and a JSON
//! body. It always carries `Content-Type` and `Content-Length`, so keep-alive clients never hang.

use bytes::Bytes;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Extra headers besides Content-Type and Content-Length.
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// HEAD: headers describe the body, but none is sent.
    pub omit_body: bool,
}

impl Response {
    pub fn json(status: u16, body: &Value) -> Response {
        // Serializing a Value cannot fail; an empty object is the harmless fallback.
        let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::from(bytes),
            omit_body: false,
        }
    }

    /// A body that is already JSON text.
    pub fn raw_json(status: u16, body: &'static str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::from_static(body.as_bytes()),
            omit_body: false,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}
