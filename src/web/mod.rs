//! The pages people open in a browser (SPEC §15), under `[web] prefix`: `pages` answers a
//! request (`second_factor` the code page of SPEC §17; both on `kit`, what every page
//! handler shares), `render` makes the HTML, and the
//! rules are plain functions of their own: `csrf` (Django's), `next` (where a sign-in may
//! send a browser), `browser` (who is asking).

use crate::response::Response;

pub mod browser;
pub(crate) mod kit;
pub mod next;
pub mod pages;
pub mod render;
pub mod second_factor;

/// The headers every page carries (SPEC §15): no script, no framing, no caching.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
];

/// A page: `body` (already escaped HTML) with the security headers.
pub fn page(status: u16, body: String) -> Response {
    let mut resp = Response::html(status, body);
    for (name, value) in SECURITY_HEADERS {
        resp.add_header(name, value);
    }
    resp
}

#[cfg(test)]
pub(crate) mod html_checks;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_html_with_the_security_headers() {
        let resp = page(404, "<!doctype html><h1>Not found</h1>".into());
        assert_eq!(resp.status, 404);
        assert_eq!(resp.framing().content_type, Some(crate::response::HTML));
        assert_eq!(resp.header("X-Frame-Options"), Some("DENY"));
        assert!(resp
            .header("Content-Security-Policy")
            .is_some_and(|v| v.contains("frame-ancestors 'none'")));
        assert!(std::str::from_utf8(&resp.body).is_ok_and(|b| b.contains("<h1>Not found</h1>")));
        let head = Response {
            head_only: true,
            ..resp
        };
        assert!(!head.framing().sends_body);
    }
}
