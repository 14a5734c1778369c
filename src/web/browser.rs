//! Who is asking (SPEC §15): a browser navigating, which gets sent to the sign-in page, or a
//! program, which gets the 401 JSON. No I/O: headers in, a decision out.

use http::header::ACCEPT;
use http::HeaderMap;

/// The header scripts set on `XMLHttpRequest`s (jQuery, Django's old `is_ajax`).
const REQUESTED_WITH: &str = "x-requested-with";
const XML_HTTP_REQUEST: &str = "XMLHttpRequest";
/// The most `Accept` media ranges read; a longer list is judged by its first ones.
const MAX_RANGES: usize = 64;
/// The most bytes of `Accept` headers read.
const MAX_ACCEPT_BYTES: usize = 8 * 1024;

/// A browser navigation: `text/html` is the best match of `Accept` (q-values honoured, `*/*`
/// counts less than text/html) and it is not `X-Requested-With: XMLHttpRequest`.
///
/// `text/html` (or `text/*`) must be named with a q-value above 0 and at least the q-value of
/// every other type named; ties go to HTML (browsers list `application/xhtml+xml` beside it).
/// A bare `*/*` (curl, `fetch`) or no `Accept` at all is not a browser.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let xhr = headers.get_all(REQUESTED_WITH).iter().any(|v| {
        v.as_bytes()
            .eq_ignore_ascii_case(XML_HTTP_REQUEST.as_bytes())
    });
    if xhr {
        return false;
    }
    let mut html: Option<(u8, u16)> = None; // (specificity, q): text/html = 2, text/* = 1
    let mut best_other = 0u16;
    for range in accept_ranges(headers) {
        let specificity = match range.media_type.as_str() {
            "text/html" => 2,
            "text/*" => 1,
            "*/*" => continue,
            _ => {
                best_other = best_other.max(range.q);
                continue;
            }
        };
        // The most specific range naming HTML decides its q-value.
        if html.is_none_or(|(s, _)| specificity > s) {
            html = Some((specificity, range.q));
        }
    }
    html.is_some_and(|(_, q)| q > 0 && q >= best_other)
}

/// One media range of `Accept`, lowercased, with its q-value in thousandths.
#[derive(Debug, PartialEq, Eq)]
struct Range {
    media_type: String,
    q: u16,
}

/// The media ranges of every `Accept` header, in order, bounded; ranges that do not parse
/// (no `/`, a bad q-value) are skipped.
fn accept_ranges(headers: &HeaderMap) -> Vec<Range> {
    let mut budget = MAX_ACCEPT_BYTES;
    let mut out = Vec::new();
    for value in headers.get_all(ACCEPT) {
        let bytes = value.as_bytes();
        let bytes = &bytes[..bytes.len().min(budget)];
        budget -= bytes.len();
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        for item in text.split(',') {
            if out.len() == MAX_RANGES {
                return out;
            }
            if let Some(range) = parse_range(item) {
                out.push(range);
            }
        }
        if budget == 0 {
            break;
        }
    }
    out
}

/// `type/subtype *( ; param )`, q defaulting to 1.
fn parse_range(item: &str) -> Option<Range> {
    let mut parts = item.split(';');
    let media_type = parts.next()?.trim().to_ascii_lowercase();
    let (kind, sub) = media_type.split_once('/')?;
    if kind.is_empty() || sub.is_empty() || sub.contains('/') {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                q = parse_q(value.trim())?;
            }
        }
    }
    Some(Range { media_type, q })
}

/// RFC 9110's qvalue (`0`, `0.5`, `1.000`, at most three decimals) in thousandths.
fn parse_q(value: &str) -> Option<u16> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The redirect status for sending a browser to sign-in: 302 for GET and HEAD, 303 otherwise
/// (so that a form POST turns into a GET of the sign-in page).
pub fn redirect_status(method: &http::Method) -> u16 {
    if *method == http::Method::GET || *method == http::Method::HEAD {
        302
    } else {
        303
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(accept: &[&str], xrw: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in accept {
            h.append(
                ACCEPT,
                HeaderValue::from_str(a).unwrap_or_else(|e| panic!("{a}: {e}")),
            );
        }
        if let Some(x) = xrw {
            h.insert(
                REQUESTED_WITH,
                HeaderValue::from_str(x).unwrap_or_else(|e| panic!("{x}: {e}")),
            );
        }
        h
    }

    const CHROME: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
    const FIREFOX: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    const SAFARI: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    #[test]
    fn browsers_navigating_want_html() {
        for accept in [
            CHROME,
            FIREFOX,
            SAFARI,
            "text/html",
            "TEXT/HTML",
            "text/html;q=0.5",
            "text/*",
            "text/html; charset=utf-8; q=1.0",
            "*/*;q=0.1, text/html;q=0.2",
        ] {
            assert!(wants_html(&headers(&[accept], None)), "{accept}");
        }
        // HTTP/2 may split the list over several headers.
        assert!(wants_html(&headers(
            &["application/xml;q=0.9", "text/html"],
            None
        )));
    }

    #[test]
    fn programs_do_not() {
        for accept in [
            "",
            "*/*",
            "application/json",
            "application/json, text/plain, */*",
            "application/json;q=1, text/html;q=0.9",
            "text/html;q=0",
            "text/html;q=0.000",
            "text/*;q=0.5, application/json",
            "text/html;q=2",
            "text/html;q=0.1234",
            "text/html;q=abc",
            "texthtml",
            "image/*",
        ] {
            assert!(!wants_html(&headers(&[accept], None)), "{accept}");
        }
        assert!(!wants_html(&HeaderMap::new()));
        // The most specific range decides: text/html;q=0 beats text/*.
        assert!(!wants_html(&headers(&["text/*, text/html;q=0"], None)));
        assert!(!wants_html(&headers(&["text/html;q=0, text/*"], None)));
    }

    #[test]
    fn xhr_is_never_a_navigation() {
        assert!(!wants_html(&headers(&[CHROME], Some("XMLHttpRequest"))));
        assert!(!wants_html(&headers(&[CHROME], Some("xmlhttprequest"))));
        assert!(wants_html(&headers(&[CHROME], Some("com.example.app"))));
    }

    #[test]
    fn huge_accept_headers_are_read_boundedly() {
        let long = format!("{}text/html", "application/x-a;q=0.1,".repeat(10_000));
        assert!(!wants_html(&headers(&[&long], None)));
        let many = vec!["image/png"; 1000];
        assert!(!wants_html(&headers(&many, None)));
        let garbage = ";;;,,,/;q=,=;/,/a,a/,a/b/c";
        assert!(!wants_html(&headers(&[garbage], None)));
        assert!(wants_html(&headers(
            &[&format!("{garbage},text/html")],
            None
        )));
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1."), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.8"), Some(800));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0"), Some(0));
        for bad in ["1.001", "2", "-1", "0.1234", "", ".5", "0.x", "01"] {
            assert_eq!(parse_q(bad), None, "{bad}");
        }
    }

    #[test]
    fn redirects_keep_get_and_turn_the_rest_into_get() {
        assert_eq!(redirect_status(&http::Method::GET), 302);
        assert_eq!(redirect_status(&http::Method::HEAD), 302);
        for m in [
            http::Method::POST,
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::PATCH,
            http::Method::OPTIONS,
        ] {
            assert_eq!(redirect_status(&m), 303, "{m}");
        }
    }
}
