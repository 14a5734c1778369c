//! Reading the `Cookie` header and writing `Set-Cookie` (SPEC §15): one cookie's value, the
//! header to forward without the session cookie, and the attributes gatehouse's cookies carry.
//! No I/O; bounded work on whatever a client sends.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use std::fmt::Write as _;

/// The most bytes of `Cookie` headers `get` reads (the usual total limit of a server).
pub const MAX_COOKIE_HEADER_BYTES: usize = 8 * 1024;
/// Values longer than this are ignored (browsers keep a cookie to about 4 KiB).
pub const MAX_VALUE_BYTES: usize = 4096;
/// How a cleared cookie's `Expires` reads, for clients that ignore `Max-Age` (as Django's
/// `delete_cookie`).
const EPOCH: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// The value of cookie `name` across all `Cookie` headers (HTTP/2 may send several); the first
/// occurrence wins. Robust to garbage, empty pairs, huge or thousands of cookies (never panics,
/// bounded work: stops after 8 KiB of headers in total, ignores values over 4096 bytes). A
/// value in double quotes comes back without them; one that is not UTF-8 is ignored.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut budget = MAX_COOKIE_HEADER_BYTES;
    for value in headers.get_all(COOKIE) {
        let bytes = value.as_bytes();
        let whole = bytes.len() <= budget;
        let readable = if whole {
            bytes
        } else {
            // Only the pairs that end within the budget: the cut one may be a truncated value.
            let cut = &bytes[..budget];
            cut.iter()
                .rposition(|&b| b == b';')
                .map_or(&cut[..0], |i| &cut[..i])
        };
        for pair in readable.split(|&b| b == b';') {
            let Some((n, v)) = split_pair(pair) else {
                continue;
            };
            if n == name.as_bytes() && v.len() <= MAX_VALUE_BYTES {
                if let Ok(v) = std::str::from_utf8(unquote(v)) {
                    return Some(v);
                }
            }
        }
        if !whole {
            return None;
        }
        budget -= bytes.len();
    }
    None
}

/// `name=value` with the optional whitespace around both trimmed; `None` without an `=`.
fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = pair.iter().position(|&b| b == b'=')?;
    Some((trim(&pair[..eq]), trim(&pair[eq + 1..])))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 6265's `cookie-value` may sit in double quotes.
fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// The `Cookie` header to forward without cookie `name`, every occurrence of it (`None`:
/// nothing left, drop the header). Other cookies pass byte-for-byte; several `Cookie` headers
/// become one, joined with `"; "` (RFC 9113 §8.2.3). A single header with nothing removed is
/// returned as it came.
pub fn without(headers: &HeaderMap, name: &str) -> Option<HeaderValue> {
    let values: Vec<&HeaderValue> = headers.get_all(COOKIE).iter().collect();
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut removed = false;
    for value in &values {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = trim(pair);
            if pair.is_empty() {
                continue;
            }
            if split_pair(pair).is_some_and(|(n, _)| n == name.as_bytes()) {
                removed = true;
            } else {
                kept.push(pair);
            }
        }
    }
    if let [only] = values.as_slice() {
        if !removed {
            return Some((*only).clone());
        }
    }
    if kept.is_empty() {
        return None;
    }
    // The bytes come from header values and "; " is valid, so this cannot fail.
    HeaderValue::from_bytes(&kept.join(&b"; "[..])).ok()
}

/// A cookie's `SameSite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

/// A cookie gatehouse sets; `Path=/` always. `name` and `value` are gatehouse's own (token
/// characters), never a client's. No `Debug`: the value is a session id or a secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SetCookie<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub http_only: bool,
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<&'a str>,
    /// Seconds; `None`: a session cookie, gone when the browser closes.
    pub max_age: Option<u64>,
}

impl SetCookie<'_> {
    /// The `Set-Cookie` value.
    pub fn header(&self) -> String {
        self.render(self.value, self.max_age.map(|s| (s, None)), "/")
    }

    /// [`header`](Self::header) with `Path={path}` instead of `/`: a cookie only the pages
    /// under `path` need (`path` is gatehouse's own, such as the pages' prefix).
    pub fn header_at(&self, path: &str) -> String {
        self.render(self.value, self.max_age.map(|s| (s, None)), path)
    }

    /// The `Set-Cookie` value that removes the cookie: empty, `Max-Age=0` (and an `Expires` in
    /// 1970), with the same `Path`, `Domain`, `Secure`, so that the browser (and a `__Host-`
    /// prefix's rules) take it for the same cookie.
    pub fn clear(&self) -> String {
        self.render("", Some((0, Some(EPOCH))), "/")
    }

    /// [`clear`](Self::clear) for a cookie set by [`header_at`](Self::header_at) `path`.
    pub fn clear_at(&self, path: &str) -> String {
        self.render("", Some((0, Some(EPOCH))), path)
    }

    fn render(&self, value: &str, max_age: Option<(u64, Option<&str>)>, path: &str) -> String {
        let mut out = format!("{}={}; Path={path}", self.name, value);
        if let Some(domain) = self.domain.filter(|d| !d.is_empty()) {
            let _ = write!(out, "; Domain={domain}");
        }
        if let Some((seconds, expires)) = max_age {
            if let Some(expires) = expires {
                let _ = write!(out, "; Expires={expires}");
            }
            let _ = write!(out, "; Max-Age={seconds}");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if self.secure {
            out.push_str("; Secure");
        }
        let _ = write!(out, "; SameSite={}", self.same_site.as_str());
        out
    }
}

/// Django's CSRF cookie (`CSRF_COOKIE_NAME`).
pub const CSRF_COOKIE: &str = "csrftoken";
/// Django's `CSRF_COOKIE_AGE`: a year.
const CSRF_COOKIE_AGE: u64 = 31_449_600;

/// The session cookie carrying `value` (SPEC §15): HttpOnly, SameSite=Lax, Path=/, Secure
/// unless `cookie_secure = false`, Domain with `cookie_domain`, Max-Age only with
/// remember-me.
pub fn session_cookie(web: &crate::config::WebConfig, value: &str, remember: bool) -> String {
    let name = web.cookie_name();
    SetCookie {
        name: &name,
        value,
        http_only: true,
        secure: web.cookie_secure,
        same_site: SameSite::Lax,
        domain: web.cookie_domain(),
        max_age: (remember && web.remember_me_days > 0)
            .then(|| web.remember_me_days.saturating_mul(86_400)),
    }
    .header()
}

/// The session cookie removed (sign-out).
pub fn clear_session_cookie(web: &crate::config::WebConfig) -> String {
    let name = web.cookie_name();
    SetCookie {
        name: &name,
        value: "",
        http_only: true,
        secure: web.cookie_secure,
        same_site: SameSite::Lax,
        domain: web.cookie_domain(),
        max_age: None,
    }
    .clear()
}

/// Django's CSRF cookie holding `secret`: readable by the page's own code (not HttpOnly),
/// SameSite=Lax, a year.
pub fn csrf_cookie(web: &crate::config::WebConfig, secret: &str) -> String {
    SetCookie {
        name: CSRF_COOKIE,
        value: secret,
        http_only: false,
        secure: web.cookie_secure,
        same_site: SameSite::Lax,
        domain: web.cookie_domain(),
        max_age: Some(CSRF_COOKIE_AGE),
    }
    .header()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                COOKIE,
                HeaderValue::from_bytes(v).unwrap_or_else(|e| panic!("{v:?}: {e}")),
            );
        }
        h
    }

    #[test]
    fn get_finds_a_cookie_among_others() {
        let h = cookies(&[b"a=1; csrftoken=abc; sid=xyz"]);
        assert_eq!(get(&h, "csrftoken"), Some("abc"));
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "sid"), Some("xyz"));
        assert_eq!(get(&h, "SID"), None);
        assert_eq!(get(&h, "missing"), None);
        assert_eq!(get(&HeaderMap::new(), "a"), None);
    }

    #[test]
    fn get_reads_every_header_and_the_first_occurrence_wins() {
        let h = cookies(&[b"x=1", b"sid=first; sid=second", b"sid=third; y=2"]);
        assert_eq!(get(&h, "sid"), Some("first"));
        assert_eq!(get(&h, "y"), Some("2"));
    }

    #[test]
    fn get_survives_garbage() {
        let h = cookies(&[
            b";;; =; ==; novalue; ;a=; b = 2 ;\tc=\"q\"; d=\"; e=x=y; \xff=1; f=\xff; g=ok",
        ]);
        assert_eq!(get(&h, "a"), Some(""));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "c"), Some("q"));
        assert_eq!(get(&h, "d"), Some("\""));
        assert_eq!(get(&h, "e"), Some("x=y"));
        assert_eq!(get(&h, "f"), None);
        assert_eq!(get(&h, "g"), Some("ok"));
        assert_eq!(get(&h, "novalue"), None);
        assert_eq!(get(&h, ""), Some(""));
    }

    #[test]
    fn get_ignores_huge_values_and_stops_after_8_kib() {
        let huge = format!("sid={}; sid=small; late=1", "v".repeat(MAX_VALUE_BYTES + 1));
        assert_eq!(get(&cookies(&[huge.as_bytes()]), "sid"), Some("small"));
        assert_eq!(get(&cookies(&[huge.as_bytes()]), "late"), Some("1"));
        let at_limit = format!("sid={}", "v".repeat(MAX_VALUE_BYTES));
        assert_eq!(
            get(&cookies(&[at_limit.as_bytes()]), "sid").map(str::len),
            Some(MAX_VALUE_BYTES)
        );
        // Thousands of cookies: the ones past 8 KiB are not read, the first ones are.
        let many: String = (0..5000).map(|i| format!("c{i}=v{i}; ")).collect();
        let many = format!("{many}target=1");
        let h = cookies(&[many.as_bytes()]);
        assert_eq!(get(&h, "c0"), Some("v0"));
        assert_eq!(get(&h, "target"), None);
        // A pair cut by the limit is not read as a shorter value.
        let filler = format!("f={}; ", "x".repeat(MAX_COOKIE_HEADER_BYTES - 12));
        let h = cookies(&[format!("{filler}sid=abcdefgh").as_bytes()]);
        assert_eq!(get(&h, "sid"), None);
        // The limit counts across headers.
        let h = cookies(&[
            format!("f={}", "x".repeat(MAX_COOKIE_HEADER_BYTES - 2)).as_bytes(),
            b"sid=1",
        ]);
        assert_eq!(get(&h, "sid"), None);
        let h = cookies(&[b"a=1", b"sid=1"]);
        assert_eq!(get(&h, "sid"), Some("1"));
        // Many headers.
        let parts: Vec<String> = (0..3000).map(|i| format!("k{i}=v")).collect();
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        let h = cookies(&refs);
        assert_eq!(get(&h, "k1"), Some("v"));
        assert_eq!(get(&h, "k2999"), None);
    }

    #[test]
    fn without_removes_every_occurrence_and_keeps_the_rest_byte_for_byte() {
        let h = cookies(&[b"a=1; __Host-s=secret; b=\"x y\"; __Host-s=again;c=\xe9"]);
        let out = without(&h, "__Host-s").unwrap_or_else(|| panic!("cookies left"));
        assert_eq!(out.as_bytes(), b"a=1; b=\"x y\"; c=\xe9");
        // Nothing to remove: the header as it came.
        let h = cookies(&[b"a=1;b=2;;  "]);
        assert_eq!(
            without(&h, "s").map(|v| v.as_bytes().to_vec()),
            Some(b"a=1;b=2;;  ".to_vec())
        );
        // Only the session cookie: drop the header.
        assert_eq!(without(&cookies(&[b"s=1"]), "s"), None);
        assert_eq!(without(&cookies(&[b" s=1 ; ; s=2"]), "s"), None);
        assert_eq!(without(&HeaderMap::new(), "s"), None);
        // Several headers become one.
        let h = cookies(&[b"a=1", b"s=2", b"b=3"]);
        assert_eq!(
            without(&h, "s").map(|v| v.as_bytes().to_vec()),
            Some(b"a=1; b=3".to_vec())
        );
        let h = cookies(&[b"a=1", b"b=3"]);
        assert_eq!(
            without(&h, "s").map(|v| v.as_bytes().to_vec()),
            Some(b"a=1; b=3".to_vec())
        );
        // A name that merely contains the cookie's is kept; a bare word is kept.
        let h = cookies(&[b"xs=1; s2=2; s; s=3"]);
        assert_eq!(
            without(&h, "s").map(|v| v.as_bytes().to_vec()),
            Some(b"xs=1; s2=2; s".to_vec())
        );
    }

    #[test]
    fn without_handles_thousands_of_cookies() {
        let many: String = (0..20_000).map(|i| format!("c{i}=v; s=x; ")).collect();
        let h = cookies(&[many.as_bytes()]);
        let out = without(&h, "s").unwrap_or_else(|| panic!("cookies left"));
        assert!(!out.as_bytes().windows(4).any(|w| w == b" s=x"));
        assert_eq!(
            out.as_bytes().iter().filter(|&&b| b == b';').count(),
            19_999
        );
    }

    fn session() -> SetCookie<'static> {
        SetCookie {
            name: "__Host-gatehouse_session",
            value: "abc",
            http_only: true,
            secure: true,
            same_site: SameSite::Lax,
            domain: None,
            max_age: None,
        }
    }

    #[test]
    fn set_cookie_headers() {
        assert_eq!(
            session().header(),
            "__Host-gatehouse_session=abc; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        let remembered = SetCookie {
            name: "__Secure-gatehouse_session",
            domain: Some(".example.com"),
            max_age: Some(86_400),
            ..session()
        };
        assert_eq!(
            remembered.header(),
            "__Secure-gatehouse_session=abc; Path=/; Domain=.example.com; Max-Age=86400; HttpOnly; Secure; SameSite=Lax"
        );
        let csrf = SetCookie {
            name: "csrftoken",
            value: "t",
            http_only: false,
            secure: false,
            same_site: SameSite::Strict,
            ..session()
        };
        assert_eq!(csrf.header(), "csrftoken=t; Path=/; SameSite=Strict");
        assert_eq!(
            SetCookie {
                domain: Some(""),
                ..csrf
            }
            .header(),
            "csrftoken=t; Path=/; SameSite=Strict"
        );
    }

    #[test]
    fn clearing_keeps_the_attributes_that_name_the_cookie() {
        assert_eq!(
            session().clear(),
            "__Host-gatehouse_session=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        );
        let shared = SetCookie {
            domain: Some(".example.com"),
            max_age: Some(5),
            ..session()
        };
        assert_eq!(
            shared.clear(),
            "__Host-gatehouse_session=; Path=/; Domain=.example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        );
    }
}
