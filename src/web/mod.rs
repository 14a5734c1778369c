//! The pages people open in a browser (SPEC §15), under `[web] prefix`, rendered on the
//! server as HTML `Response`s with the pages' security headers. The sign-in pages, sessions
//! and CSRF arrive with issue 22; until then every path here answers the not-found page.

use crate::response::Response;

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

/// Answers a request for a page. `head_only`: a HEAD request.
pub fn handle(head_only: bool) -> Response {
    let mut resp = not_found();
    resp.head_only = head_only;
    resp
}

/// The not-found page.
pub fn not_found() -> Response {
    page(
        404,
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Not found</title></head>\n<body><main><h1>Not found</h1><p>There is no page at this address.</p><p><a href=\"/\">Go to the start page</a></p></main></body>\n</html>\n"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_html_with_the_security_headers() {
        let resp = handle(false);
        assert_eq!(resp.status, 404);
        assert_eq!(resp.framing().content_type, Some(crate::response::HTML));
        assert_eq!(resp.header("X-Frame-Options"), Some("DENY"));
        assert!(resp
            .header("Content-Security-Policy")
            .is_some_and(|v| v.contains("frame-ancestors 'none'")));
        assert!(std::str::from_utf8(&resp.body).is_ok_and(|b| b.contains("<h1>Not found</h1>")));
        assert!(!handle(true).framing().sends_body);
    }
}
