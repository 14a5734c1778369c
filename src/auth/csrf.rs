//! Django's CSRF protection as plain functions (SPEC §15): the Origin/Referer check, the
//! `csrftoken` cookie's secret, masked tokens and Django 5's refusal reasons, word for word.
//! No I/O: the caller hands in what one request carries and renders the `Refused` it gets back.
//!
//! Follows `django/middleware/csrf.py` (`CsrfViewMiddleware.process_view`, `_check_referer`,
//! `_origin_verified`, `_check_token`) and, for parsing `Origin`/`Referer`, Python's
//! `urllib.parse.urlsplit`, so that a refusal reads as Django's would.

use rand::rngs::OsRng;
use rand::Rng;
use std::fmt;
use subtle::ConstantTimeEq;

/// The cookie holding the unmasked secret (Django's `CSRF_COOKIE_NAME`).
pub const COOKIE: &str = crate::cookies::CSRF_COOKIE;
/// The form field of a POSTed token.
pub const FORM_FIELD: &str = "csrfmiddlewaretoken";
/// The header of a token (Django's `CSRF_HEADER_NAME`, `HTTP_X_CSRFTOKEN`).
pub const HEADER: &str = "x-csrftoken";

/// Django's `CSRF_ALLOWED_CHARS`: a secret's and a token's alphabet, in Django's order (the
/// masking arithmetic depends on it).
const CHARS: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Django's `CSRF_SECRET_LENGTH`.
const SECRET_LENGTH: usize = 32;
/// Django's `CSRF_TOKEN_LENGTH`: a mask and the masked secret.
const TOKEN_LENGTH: usize = 2 * SECRET_LENGTH;

// Django's reasons (`django/middleware/csrf.py`), verbatim.
const REASON_BAD_ORIGIN: &str = "Origin checking failed - {} does not match any trusted origins.";
const REASON_NO_REFERER: &str = "Referer checking failed - no Referer.";
const REASON_BAD_REFERER: &str = "Referer checking failed - {} does not match any trusted origins.";
const REASON_NO_CSRF_COOKIE: &str = "CSRF cookie not set.";
const REASON_CSRF_TOKEN_MISSING: &str = "CSRF token missing.";
const REASON_MALFORMED_REFERER: &str = "Referer checking failed - Referer is malformed.";
const REASON_INSECURE_REFERER: &str =
    "Referer checking failed - Referer is insecure while host is secure.";
const REASON_INCORRECT_LENGTH: &str = "has incorrect length";
const REASON_INVALID_CHARACTERS: &str = "has invalid characters";
const REASON_INCORRECT: &str = "incorrect";
/// How Django names the header in a reason: `HttpHeaders.parse_header_name`, `repr`-quoted.
const HEADER_SOURCE: &str = "the 'X-Csrftoken' HTTP header";
/// How Django names the form field in a reason.
const FORM_SOURCE: &str = "POST";
/// DRF's prefix of a refusal's `detail` (`SessionAuthentication.enforce_csrf`).
const JSON_PREFIX: &str = "CSRF Failed: ";

/// What a CSRF decision needs from one request. No `Debug`: it carries the cookie and tokens,
/// which are never logged.
#[derive(Clone, Copy)]
pub struct CsrfInput<'a> {
    pub method: &'a http::Method,
    /// The request came over HTTPS (as the client sees it).
    pub secure: bool,
    /// `"http://localhost:8080"`: the request's `scheme://host[:port]`, the host as the client
    /// sent it (Django's `request.get_host()`).
    pub own_origin: &'a str,
    pub origin: Option<&'a str>,
    pub referer: Option<&'a str>,
    /// The `csrftoken` cookie's value.
    pub cookie: Option<&'a str>,
    pub form_token: Option<&'a str>,
    pub header_token: Option<&'a str>,
}

/// A refusal; `Display` is Django's reason, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(reason: impl Into<String>) -> Refused {
    Refused(reason.into())
}

/// Django's full check (pages and the user API when authenticated by the session cookie):
/// safe methods pass; then `Origin` (if present) or, over HTTPS, `Referer`; then the cookie;
/// then the token (the form field for POST, else the header); its format; the comparison.
pub fn check(input: &CsrfInput, trusted_origins: &[String]) -> Result<(), Refused> {
    if is_safe(input.method) {
        return Ok(());
    }
    check_origin(input, trusted_origins)?;
    check_token(input)
}

/// Only the Origin/Referer part (cookie-authenticated unsafe requests on proxied routes).
/// Safe methods pass.
pub fn check_origin(input: &CsrfInput, trusted_origins: &[String]) -> Result<(), Refused> {
    if is_safe(input.method) {
        return Ok(());
    }
    if let Some(origin) = input.origin {
        if origin_verified(origin, input.own_origin, trusted_origins) {
            return Ok(());
        }
        return Err(refuse(REASON_BAD_ORIGIN.replacen("{}", origin, 1)));
    }
    if input.secure {
        return check_referer(input.referer, input.own_origin, trusted_origins);
    }
    Ok(())
}

/// RFC 9110's safe methods, which Django never checks.
fn is_safe(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    )
}

/// Django's `_origin_verified`: our own origin, an exact trusted origin, or a subdomain of a
/// wildcard one (`https://*.example.com`) with the same scheme.
fn origin_verified(origin: &str, own_origin: &str, trusted: &[String]) -> bool {
    if origin == own_origin {
        return true;
    }
    if trusted.iter().any(|t| !t.contains('*') && t == origin) {
        return true;
    }
    let Ok(parsed) = urlsplit(origin) else {
        return false;
    };
    trusted
        .iter()
        .filter(|t| t.contains('*'))
        .filter_map(|t| urlsplit(t).ok())
        .filter(|t| t.scheme == parsed.scheme)
        .any(|t| is_same_domain(&parsed.netloc, t.netloc.trim_start_matches('*')))
}

/// Django's `_check_referer`, with no `CSRF_COOKIE_DOMAIN`: the Referer must be an `https`
/// URL whose netloc is a trusted origin's or our own host.
fn check_referer(
    referer: Option<&str>,
    own_origin: &str,
    trusted: &[String],
) -> Result<(), Refused> {
    let Some(referer) = referer else {
        return Err(refuse(REASON_NO_REFERER));
    };
    let parsed = urlsplit(referer).map_err(|()| refuse(REASON_MALFORMED_REFERER))?;
    if parsed.scheme.is_empty() || parsed.netloc.is_empty() {
        return Err(refuse(REASON_MALFORMED_REFERER));
    }
    if parsed.scheme != "https" {
        return Err(refuse(REASON_INSECURE_REFERER));
    }
    let trusted_hosts = trusted
        .iter()
        .filter_map(|t| urlsplit(t).ok())
        .map(|t| t.netloc.trim_start_matches('*').to_string());
    if trusted_hosts
        .into_iter()
        .any(|host| is_same_domain(&parsed.netloc, &host))
    {
        return Ok(());
    }
    if is_same_domain(&parsed.netloc, own_host(own_origin)) {
        return Ok(());
    }
    Err(refuse(REASON_BAD_REFERER.replacen(
        "{}",
        &parsed.geturl(),
        1,
    )))
}

/// `host[:port]` of `scheme://host[:port]` (Django's `request.get_host()`).
fn own_host(own_origin: &str) -> &str {
    own_origin
        .split_once("://")
        .map_or(own_origin, |(_, host)| host)
}

/// Django's `is_same_domain`: `pattern` (lowercased) equals `host`, or starts with a dot and
/// `host` is that domain or under it. `host` is compared as it is, as Django does.
fn is_same_domain(host: &str, pattern: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let pattern = pattern.to_lowercase();
    match pattern.strip_prefix('.') {
        Some(bare) => host.ends_with(&pattern) || host == bare,
        None => pattern == host,
    }
}

/// Django's `_check_token`: the cookie's secret, then the request's token.
fn check_token(input: &CsrfInput) -> Result<(), Refused> {
    let secret = match input.cookie {
        None => return Err(refuse(REASON_NO_CSRF_COOKIE)),
        Some(value) => {
            check_format(value).map_err(|why| refuse(format!("CSRF cookie {why}.")))?;
            unmask_if_masked(value)
        }
    };
    let form = match input.form_token {
        Some(token) if *input.method == http::Method::POST && !token.is_empty() => Some(token),
        _ => None,
    };
    let (token, source) = match (form, input.header_token) {
        (Some(token), _) => (token, FORM_SOURCE),
        (None, Some(token)) => (token, HEADER_SOURCE),
        (None, None) => return Err(refuse(REASON_CSRF_TOKEN_MISSING)),
    };
    let bad = |why: &str| refuse(format!("CSRF token from {source} {why}."));
    check_format(token).map_err(bad)?;
    if !token_matches(token, &secret) {
        return Err(bad(REASON_INCORRECT));
    }
    Ok(())
}

/// Django's `_check_token_format`: 32 or 64 characters (counted as Python counts them, in
/// code points), then only the alphabet.
fn check_format(token: &str) -> Result<(), &'static str> {
    let len = token.chars().count();
    if len != SECRET_LENGTH && len != TOKEN_LENGTH {
        return Err(REASON_INCORRECT_LENGTH);
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(REASON_INVALID_CHARACTERS);
    }
    Ok(())
}

/// A well-formed value (`check_format` passed) as a 32-char secret: a 64-char one unmasked.
fn unmask_if_masked(value: &str) -> String {
    if value.len() == TOKEN_LENGTH {
        unmask(value)
    } else {
        value.to_string()
    }
}

/// Django's `_does_token_match`, in constant time over the secret.
fn token_matches(token: &str, secret: &str) -> bool {
    let token = unmask_if_masked(token);
    bool::from(token.as_bytes().ct_eq(secret.as_bytes()))
}

/// The alphabet index of an alphabet byte.
fn index(b: u8) -> usize {
    match b {
        b'a'..=b'z' => usize::from(b - b'a'),
        b'A'..=b'Z' => usize::from(b - b'A') + 26,
        b'0'..=b'9' => usize::from(b - b'0') + 52,
        // Callers pass well-formed values only; anything else counts as the first letter.
        _ => 0,
    }
}

/// Django's `_unmask_cipher_token` of a well-formed 64-char token.
fn unmask(token: &str) -> String {
    let (mask, cipher) = token.as_bytes().split_at(SECRET_LENGTH);
    cipher
        .iter()
        .zip(mask)
        .map(|(&c, &m)| char::from(CHARS[(index(c) + CHARS.len() - index(m)) % CHARS.len()]))
        .collect()
}

/// A well-formed 32-char secret?
fn is_secret(value: &str) -> bool {
    value.len() == SECRET_LENGTH && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A new secret: 32 characters of the alphabet, each uniform, from the operating system's
/// CSPRNG (Django's `_get_new_csrf_string`).
pub fn new_secret() -> String {
    (0..SECRET_LENGTH)
        .map(|_| char::from(CHARS[OsRng.gen_range(0..CHARS.len())]))
        .collect()
}

/// A token for `secret`: 64 characters, a fresh mask each call so that the page's bytes differ
/// every time (BREACH); Django's `_mask_cipher_secret`. `secret` comes from `new_secret` or
/// `cookie_secret`; anything else gets the token of a fresh secret, which matches nothing.
pub fn mask(secret: &str) -> String {
    let fresh;
    let secret = if is_secret(secret) {
        secret
    } else {
        fresh = new_secret();
        &fresh
    };
    let mask = new_secret();
    let cipher: String = secret
        .bytes()
        .zip(mask.bytes())
        .map(|(s, m)| char::from(CHARS[(index(s) + index(m)) % CHARS.len()]))
        .collect();
    mask + &cipher
}

/// The cookie's secret if it is well formed (32 chars; a legacy 64-char masked cookie, as
/// Django before 4.0 wrote it, is unmasked). `None`: a new secret is due.
pub fn cookie_secret(value: &str) -> Option<String> {
    check_format(value).ok()?;
    Some(unmask_if_masked(value))
}

/// The JSON body of a refusal on JSON paths, as DRF renders it:
/// `{"detail":"CSRF Failed: <reason>"}`.
pub fn json_detail(r: &Refused) -> String {
    serde_json::json!({ "detail": format!("{JSON_PREFIX}{}", r.0) }).to_string()
}

// -------------------------------------------------------------------------------------------
// Python's urlsplit, as far as Django's checks see it
// -------------------------------------------------------------------------------------------

/// The parts of a URL as Python's `urllib.parse.urlparse` splits them.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    scheme: String,
    netloc: String,
    path: String,
    query: String,
    fragment: String,
}

/// Python 3.11's `urlsplit`: leading C0 controls and spaces stripped, tabs and newlines removed,
/// a scheme of letters, digits, `+-.` before the first `:` (lowercased), `//netloc` up to the
/// first `/?#`, then the fragment and the query. `Err` where Python raises `ValueError`
/// (unbalanced or invalid brackets in the netloc). Python's NFKC check of a non-ASCII netloc is
/// not reproduced: header values are ASCII.
fn urlsplit(url: &str) -> Result<Split, ()> {
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = url.as_str();
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let candidate = &rest[..i];
        let starts_with_letter = candidate
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic());
        if starts_with_letter
            && candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            scheme = candidate.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    let mut netloc = String::new();
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = after[..end].to_string();
        rest = &after[end..];
        let (open, close) = (netloc.contains('['), netloc.contains(']'));
        if open != close {
            return Err(());
        }
        if open {
            let inside = netloc
                .split_once('[')
                .map_or("", |(_, r)| r.split_once(']').map_or(r, |(h, _)| h));
            check_bracketed_host(inside)?;
        }
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    Ok(Split {
        scheme,
        netloc,
        path: path.to_string(),
        query: query.to_string(),
        fragment: fragment.to_string(),
    })
}

/// Python's `_check_bracketed_host`: an IPvFuture (`v1.x`) or an IPv6 address (with an optional
/// `%scope`), never IPv4.
fn check_bracketed_host(host: &str) -> Result<(), ()> {
    if let Some(future) = host.strip_prefix('v') {
        let (hex, tail) = future.split_once('.').ok_or(())?;
        let ok = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !tail.is_empty();
        return if ok { Ok(()) } else { Err(()) };
    }
    let addr = match host.split_once('%') {
        Some((addr, scope)) if !scope.is_empty() && !scope.contains('%') => addr,
        Some(_) => return Err(()),
        None => host,
    };
    addr.parse::<std::net::Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| ())
}

impl Split {
    /// Python's `ParseResult.geturl()` for a URL with a scheme and a netloc: empty params,
    /// query and fragment (and their `;`, `?`, `#`) dropped.
    fn geturl(&self) -> String {
        let mut path = self.path.clone();
        // urlparse's params: after the first `;` of the last segment; empty ones vanish.
        let last = path.rfind('/').unwrap_or(0);
        if let Some(semi) = path[last..].find(';').map(|i| last + i) {
            if semi + 1 == path.len() {
                path.truncate(semi);
            }
        }
        if !path.is_empty() && !path.starts_with('/') {
            path.insert(0, '/');
        }
        let mut url = format!("{}://{}{}", self.scheme, self.netloc, path);
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(&self.query);
        }
        if !self.fragment.is_empty() {
            url.push('#');
            url.push_str(&self.fragment);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    // Django's own vectors (tests/csrf_tests/tests.py).
    const SECRET: &str = "lcccccccX2kcccccccY2jcccccccssIC";
    const MASKED_1: &str = "1bcdefghij2bcdefghij3bcdefghij4bcdefghij5bcdefghij6bcdefghijABCD";
    const MASKED_2: &str = "2JgchWvM1tpxT2lfz9aydoXW9yT1DN3NdLiejYxOOlzzV4nhBbYqmqZYbAV3V5Bf";
    const OWN: &str = "https://www.example.com";

    fn post() -> CsrfInput<'static> {
        CsrfInput {
            method: &Method::POST,
            secure: true,
            own_origin: OWN,
            origin: None,
            referer: Some("https://www.example.com/somepage"),
            cookie: Some(SECRET),
            form_token: None,
            header_token: None,
        }
    }

    fn reason(input: &CsrfInput, trusted: &[&str]) -> Option<String> {
        let trusted: Vec<String> = trusted.iter().map(|t| t.to_string()).collect();
        check(input, &trusted).err().map(|r| r.to_string())
    }

    #[test]
    fn unmasking_matches_djangos_vectors() {
        let a = "a".repeat(32);
        let b = "b".repeat(32);
        let c = "c".repeat(32);
        let cases = [
            (SECRET, MASKED_1.to_string()),
            (SECRET, MASKED_2.to_string()),
            (
                &a,
                "vFioG3XOLyGyGsPRFyB9iYUs341ufzIEvFioG3XOLyGyGsPRFyB9iYUs341ufzIE".to_string(),
            ),
            (&a, "a".repeat(64)),
            (&a, "b".repeat(64)),
            (&b, format!("{a}{b}")),
            (&b, format!("{b}{c}")),
            (&c, format!("{a}{c}")),
        ];
        for (secret, masked) in cases {
            assert_eq!(unmask(&masked), secret, "{masked}");
            assert!(token_matches(&masked, secret));
        }
    }

    #[test]
    fn masking_matches_djangos_vectors() {
        for secret in [
            "a".repeat(32).as_str(),
            SECRET,
            "da4SrUiHJYoJ0HYQ0vcgisoIuFOxx4ER",
        ] {
            let masked = mask(secret);
            assert_eq!(masked.len(), TOKEN_LENGTH);
            assert!(masked.bytes().all(|b| CHARS.contains(&b)));
            assert_eq!(unmask(&masked), secret);
        }
    }

    #[test]
    fn new_secrets_are_32_chars_of_the_alphabet_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert!(is_secret(&a) && is_secret(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn mask_round_trips_with_a_fresh_mask_each_call() {
        for _ in 0..50 {
            let secret = new_secret();
            let (t1, t2) = (mask(&secret), mask(&secret));
            assert_eq!(t1.len(), TOKEN_LENGTH);
            assert!(t1.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_ne!(t1, t2);
            assert_eq!(unmask(&t1), secret);
            assert_eq!(unmask(&t2), secret);
            assert!(token_matches(&t1, &secret) && token_matches(&secret, &secret));
            assert!(!token_matches(&t1, &new_secret()));
        }
    }

    #[test]
    fn masking_a_malformed_secret_gives_a_token_that_matches_nothing_it_was_given() {
        for bad in [
            "",
            "short",
            "é",
            &"a".repeat(64),
            "lcccccccXPKbA9oMmQwJ1kM5tA37Zq-w",
        ] {
            let token = mask(bad);
            assert_eq!(token.len(), TOKEN_LENGTH);
            assert!(check_format(&token).is_ok());
            assert_ne!(unmask(&token), bad);
        }
    }

    #[test]
    fn cookie_secret_accepts_32_unmasks_64_and_refuses_the_rest() {
        assert_eq!(cookie_secret(SECRET).as_deref(), Some(SECRET));
        let legacy = mask(SECRET);
        assert_eq!(cookie_secret(&legacy).as_deref(), Some(SECRET));
        for bad in [
            "",
            "x",
            &SECRET[1..],
            &format!("{SECRET}a"),
            "lcccccccXPKbA9oMmQwJ1kM5tA37Zq!w",
        ] {
            assert_eq!(cookie_secret(bad), None, "{bad:?}");
        }
        // 32 code points but not 32 bytes: invalid characters, not a secret.
        assert_eq!(cookie_secret(&format!("é{}", &SECRET[1..])), None);
    }

    #[test]
    fn safe_methods_always_pass() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            let input = CsrfInput {
                method: &m,
                cookie: None,
                referer: None,
                origin: Some("https://evil.test"),
                ..post()
            };
            assert_eq!(check(&input, &[]), Ok(()));
            assert_eq!(check_origin(&input, &[]), Ok(()));
        }
        for m in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::from_bytes(b"PROPFIND").unwrap_or(Method::POST),
        ] {
            let input = CsrfInput {
                method: &m,
                cookie: None,
                ..post()
            };
            assert_eq!(
                reason(&input, &[]).as_deref(),
                Some(REASON_NO_CSRF_COOKIE),
                "{m}"
            );
        }
    }

    #[test]
    fn the_cookie_is_checked_before_the_token() {
        assert_eq!(
            reason(
                &CsrfInput {
                    cookie: None,
                    ..post()
                },
                &[]
            )
            .as_deref(),
            Some("CSRF cookie not set.")
        );
        assert_eq!(
            reason(
                &CsrfInput {
                    cookie: Some(""),
                    ..post()
                },
                &[]
            )
            .as_deref(),
            Some("CSRF cookie has incorrect length.")
        );
        assert_eq!(
            reason(
                &CsrfInput {
                    cookie: Some(&"a".repeat(31)),
                    ..post()
                },
                &[]
            )
            .as_deref(),
            Some("CSRF cookie has incorrect length.")
        );
        assert_eq!(
            reason(
                &CsrfInput {
                    cookie: Some(&"@".repeat(32)),
                    ..post()
                },
                &[]
            )
            .as_deref(),
            Some("CSRF cookie has invalid characters.")
        );
        assert_eq!(reason(&post(), &[]).as_deref(), Some("CSRF token missing."));
    }

    #[test]
    fn tokens_from_the_form_or_the_header_with_djangos_reasons() {
        let masked = mask(SECRET);
        let (stars, a64, a32, a33, dashes) = (
            "*".repeat(64),
            "a".repeat(64),
            "a".repeat(32),
            "a".repeat(33),
            "-".repeat(32),
        );
        let other = mask(&new_secret());
        let cases: Vec<(Option<&str>, Option<&str>, Option<&str>)> = vec![
            (Some(&masked), None, None),
            (Some(SECRET), None, None),
            (None, Some(&masked), None),
            (None, Some(SECRET), None),
            // An empty form field falls back to the header.
            (Some(""), Some(&masked), None),
            (Some(""), None, Some("CSRF token missing.")),
            (
                Some("abc"),
                None,
                Some("CSRF token from POST has incorrect length."),
            ),
            (
                Some(&stars),
                None,
                Some("CSRF token from POST has invalid characters."),
            ),
            (Some(&a64), None, Some("CSRF token from POST incorrect.")),
            (
                Some(&a32),
                Some(&masked),
                Some("CSRF token from POST incorrect."),
            ),
            (
                None,
                Some(""),
                Some("CSRF token from the 'X-Csrftoken' HTTP header has incorrect length."),
            ),
            (
                None,
                Some(&a33),
                Some("CSRF token from the 'X-Csrftoken' HTTP header has incorrect length."),
            ),
            (
                None,
                Some(&dashes),
                Some("CSRF token from the 'X-Csrftoken' HTTP header has invalid characters."),
            ),
            (
                None,
                Some(&a32),
                Some("CSRF token from the 'X-Csrftoken' HTTP header incorrect."),
            ),
            (
                None,
                Some(&other),
                Some("CSRF token from the 'X-Csrftoken' HTTP header incorrect."),
            ),
        ];
        for (form, header, want) in cases {
            let input = CsrfInput {
                form_token: form,
                header_token: header,
                ..post()
            };
            assert_eq!(
                reason(&input, &[]).as_deref(),
                want,
                "form {form:?} header {header:?}"
            );
        }
    }

    #[test]
    fn only_post_reads_the_form_field() {
        let masked = mask(SECRET);
        let put = CsrfInput {
            method: &Method::PUT,
            form_token: Some(&masked),
            ..post()
        };
        assert_eq!(reason(&put, &[]).as_deref(), Some("CSRF token missing."));
        let put = CsrfInput {
            header_token: Some(&masked),
            ..put
        };
        assert_eq!(reason(&put, &[]), None);
    }

    #[test]
    fn a_legacy_masked_cookie_still_works() {
        let cookie = mask(SECRET);
        let input = CsrfInput {
            cookie: Some(&cookie),
            header_token: Some(SECRET),
            ..post()
        };
        assert_eq!(reason(&input, &[]), None);
    }

    #[test]
    fn origin_must_be_ours_or_trusted() {
        let token = mask(SECRET);
        let with = |origin: &'static str| CsrfInput {
            origin: Some(origin),
            referer: None,
            header_token: Some(token.as_str()),
            ..post()
        };
        assert_eq!(reason(&with(OWN), &[]), None);
        for (origin, trusted, ok) in [
            ("https://evil.test", vec![], false),
            ("http://www.example.com", vec![], false),
            ("https://www.example.com:443", vec![], false),
            ("HTTPS://www.example.com", vec![], false),
            ("null", vec![], false),
            (
                "https://app.example.org",
                vec!["https://app.example.org"],
                true,
            ),
            (
                "https://app.example.org",
                vec!["http://app.example.org"],
                false,
            ),
            ("https://a.example.org", vec!["https://*.example.org"], true),
            ("https://example.org", vec!["https://*.example.org"], true),
            (
                "https://a.b.example.org:8443",
                vec!["https://*.example.org"],
                false,
            ),
            (
                "https://a.b.example.org:8443",
                vec!["https://*.example.org:8443"],
                true,
            ),
            ("http://a.example.org", vec!["https://*.example.org"], false),
            (
                "https://evilexample.org",
                vec!["https://*.example.org"],
                false,
            ),
            (
                "https://a.example.org.evil.test",
                vec!["https://*.example.org"],
                false,
            ),
            ("https://[", vec!["https://*.example.org"], false),
        ] {
            let got = reason(&with(origin), &trusted);
            if ok {
                assert_eq!(got, None, "{origin} {trusted:?}");
            } else {
                assert_eq!(
                    got,
                    Some(format!(
                        "Origin checking failed - {origin} does not match any trusted origins."
                    )),
                    "{origin} {trusted:?}"
                );
            }
        }
    }

    #[test]
    fn a_good_origin_skips_the_referer_and_plain_http_needs_neither() {
        let token = mask(SECRET);
        let input = CsrfInput {
            origin: Some(OWN),
            referer: None,
            header_token: Some(&token),
            ..post()
        };
        assert_eq!(reason(&input, &[]), None);
        let http = CsrfInput {
            secure: false,
            own_origin: "http://localhost:8080",
            origin: None,
            referer: None,
            header_token: Some(&token),
            ..post()
        };
        assert_eq!(reason(&http, &[]), None);
        assert_eq!(check_origin(&http, &[]), Ok(()));
    }

    #[test]
    fn referer_over_https_with_djangos_reasons() {
        let token = mask(SECRET);
        let bad =
            |r: &str| format!("Referer checking failed - {r} does not match any trusted origins.");
        for (referer, trusted, want) in [
            (None, vec![], Some(REASON_NO_REFERER.to_string())),
            (Some(""), vec![], Some(REASON_MALFORMED_REFERER.to_string())),
            (
                Some("//www.example.com/"),
                vec![],
                Some(REASON_MALFORMED_REFERER.to_string()),
            ),
            (
                Some("https://"),
                vec![],
                Some(REASON_MALFORMED_REFERER.to_string()),
            ),
            (
                Some("https:///path"),
                vec![],
                Some(REASON_MALFORMED_REFERER.to_string()),
            ),
            (
                Some("https://[::1"),
                vec![],
                Some(REASON_MALFORMED_REFERER.to_string()),
            ),
            (
                Some("https://[1.2.3.4]/"),
                vec![],
                Some(REASON_MALFORMED_REFERER.to_string()),
            ),
            (
                Some("http://www.example.com/"),
                vec![],
                Some(REASON_INSECURE_REFERER.to_string()),
            ),
            (
                Some("ftp://www.example.com/"),
                vec![],
                Some(REASON_INSECURE_REFERER.to_string()),
            ),
            (Some("https://www.example.com/somepage"), vec![], None),
            (Some("HTTPS://www.example.com"), vec![], None),
            (
                Some("https://www.example.com:443/"),
                vec![],
                Some(bad("https://www.example.com:443/")),
            ),
            (
                Some("https://WWW.example.com/"),
                vec![],
                Some(bad("https://WWW.example.com/")),
            ),
            (
                Some("https://evil.test/a?"),
                vec![],
                Some(bad("https://evil.test/a")),
            ),
            (
                Some("HTTPS://evil.test/a;?q#"),
                vec![],
                Some(bad("https://evil.test/a?q")),
            ),
            (
                Some("https://evil.test/a;b;?q#f"),
                vec![],
                Some(bad("https://evil.test/a;b;?q#f")),
            ),
            (
                Some(" \thttps://evil.test/a\tb"),
                vec![],
                Some(bad("https://evil.test/ab")),
            ),
            (
                Some("https://[::1]:8443/"),
                vec![],
                Some(bad("https://[::1]:8443/")),
            ),
            (
                Some("https://a.example.org/"),
                vec!["https://*.example.org"],
                None,
            ),
            (
                Some("https://a.example.org/"),
                vec!["http://*.example.org"],
                None,
            ),
            (
                Some("https://example.org/"),
                vec!["https://*.example.org"],
                None,
            ),
            (
                Some("https://a.example.org/"),
                vec!["https://example.org"],
                Some(bad("https://a.example.org/")),
            ),
            (
                Some("https://user@www.example.com/"),
                vec![],
                Some(bad("https://user@www.example.com/")),
            ),
        ] {
            let input = CsrfInput {
                referer,
                header_token: Some(&token),
                ..post()
            };
            assert_eq!(reason(&input, &trusted), want, "{referer:?} {trusted:?}");
        }
    }

    #[test]
    fn own_host_and_same_domain_as_django() {
        assert_eq!(own_host("https://a.test:8443"), "a.test:8443");
        assert_eq!(own_host("weird"), "weird");
        assert!(is_same_domain("example.com", "example.com"));
        assert!(is_same_domain("a.example.com", ".example.com"));
        assert!(is_same_domain("example.com", ".EXAMPLE.com"));
        assert!(!is_same_domain("Example.com", "example.com"));
        assert!(!is_same_domain("example.com", ""));
        assert!(!is_same_domain("badexample.com", ".example.com"));
    }

    #[test]
    fn urlsplit_as_python() {
        let s = urlsplit("HtTp://u@h:1/p;x?q#f").unwrap_or_else(|()| panic!("parses"));
        assert_eq!(
            s,
            Split {
                scheme: "http".into(),
                netloc: "u@h:1".into(),
                path: "/p;x".into(),
                query: "q".into(),
                fragment: "f".into()
            }
        );
        let s = urlsplit("example.com:443/p").unwrap_or_else(|()| panic!("parses"));
        assert_eq!(
            (s.scheme.as_str(), s.netloc.as_str(), s.path.as_str()),
            ("example.com", "", "443/p")
        );
        let s = urlsplit("1http://x").unwrap_or_else(|()| panic!("parses"));
        assert_eq!((s.scheme.as_str(), s.path.as_str()), ("", "1http://x"));
        assert!(urlsplit("https://[v1.x]/").is_ok());
        assert!(urlsplit("https://[fe80::1%25eth0]/").is_ok());
        assert!(urlsplit("https://[v.x]/").is_err());
        assert!(urlsplit("https://a]/").is_err());
    }

    #[test]
    fn json_detail_is_drfs() {
        let r =
            Refused("Origin checking failed - \"x\" does not match any trusted origins.".into());
        assert_eq!(
            json_detail(&r),
            r#"{"detail":"CSRF Failed: Origin checking failed - \"x\" does not match any trusted origins."}"#
        );
        assert_eq!(
            json_detail(&Refused(REASON_NO_CSRF_COOKIE.into())),
            r#"{"detail":"CSRF Failed: CSRF cookie not set."}"#
        );
    }
}
