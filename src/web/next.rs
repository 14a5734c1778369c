//! Where to send a person after sign-in (SPEC §15, "next is safe or ignored"): the `next`
//! value's open-redirect rules and the sign-in URL that carries it. No I/O.
//!
//! Stricter than Django's `url_has_allowed_host_and_scheme`: no backslash, control character
//! or whitespace anywhere, no user-info, and a value a second percent-decoding would turn into
//! a scheme-relative URL (`/%2F/evil.test`) is refused too.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The longest `next` considered; longer ones are ignored.
pub const MAX_NEXT_BYTES: usize = 2048;
/// How many rounds of percent-decoding a relative target is followed through before it is
/// judged; one that still changes after them is refused.
const DECODE_ROUNDS: usize = 4;

/// What an absolute `next` may name.
#[derive(Debug, Clone, Copy)]
pub struct NextRules<'a> {
    /// `[web] allowed_redirect_hosts`: `"app.example.com"`, or `".example.com"` for it and its
    /// subdomains. Hosts only, no ports.
    pub allowed_hosts: &'a [String],
    /// `[web] cookie_domain`, when set: it and its subdomains are allowed.
    pub cookie_domain: Option<&'a str>,
}

/// `Some(target)` when `next` (already percent-decoded once, as a query value) is safe: a path
/// starting with one `/` (not `//`, not `/\`, no control characters or whitespace, no backslash
/// anywhere), or an `https` URL (`http` only for localhost/127.0.0.1) whose host is in
/// `allowed_hosts` or under `cookie_domain`. Everything else: `None` (the caller uses the
/// prefix). The target comes back with non-ASCII characters percent-encoded, ready for a
/// `Location` header.
pub fn safe_next(next: &str, rules: &NextRules) -> Option<String> {
    if next.is_empty() || next.len() > MAX_NEXT_BYTES {
        return None;
    }
    if next
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || is_invisible(c))
    {
        return None;
    }
    let safe = if next.starts_with('/') {
        safe_path(next)
    } else {
        safe_absolute(next, rules)
    };
    safe.then(|| encode_non_ascii(next))
}

/// Characters browsers may drop or render as nothing (format characters: zero-width spaces,
/// bidirectional overrides, the BOM), which could hide what a target really is.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A local path: one leading `/`, and no later decoding makes it start `//` or `/\` (or hides
/// either behind characters browsers strip).
fn safe_path(path: &str) -> bool {
    if !single_slash(path) {
        return false;
    }
    let mut current = path.to_string();
    for _ in 0..DECODE_ROUNDS {
        let decoded = percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == current {
            return true;
        }
        let stripped: String = decoded
            .chars()
            .filter(|c| !(c.is_control() || c.is_whitespace() || is_invisible(*c)))
            .collect();
        if !single_slash(&stripped) {
            return false;
        }
        current = decoded;
    }
    false
}

/// Starts with `/` and the next character is neither `/` nor `\`.
fn single_slash(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/') && !matches!(chars.next(), Some('/' | '\\'))
}

/// `https://host[:port][/...|?...|#...]` (or `http` for localhost) with an allowed host, no
/// user-info, and a port of digits only.
fn safe_absolute(url: &str, rules: &NextRules) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if let Some(port) = port {
        let ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !ok || port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535) {
            return false;
        }
    }
    // Letters, digits, dots and hyphens only: no user-info (`@`), no brackets, no `%`.
    let well_formed = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !host.contains("..");
    if !well_formed {
        return false;
    }
    let host = host.to_ascii_lowercase();
    let scheme_ok = match scheme.as_str() {
        "https" => true,
        "http" => host == "localhost" || host == "127.0.0.1",
        _ => false,
    };
    scheme_ok && host_allowed(&host, rules)
}

/// `host` (lowercase) is named by `allowed_hosts` or under `cookie_domain`.
fn host_allowed(host: &str, rules: &NextRules) -> bool {
    let matches = |pattern: &str, subdomains: bool| {
        let pattern = pattern.to_ascii_lowercase();
        let bare = pattern.trim_start_matches('.');
        !bare.is_empty()
            && (host == bare
                || (subdomains
                    && host.len() > bare.len()
                    && host.ends_with(bare)
                    && host.as_bytes()[host.len() - bare.len() - 1] == b'.'))
    };
    rules
        .allowed_hosts
        .iter()
        .any(|h| matches(h, h.starts_with('.')))
        || rules.cookie_domain.is_some_and(|d| matches(d, true))
}

/// `s` with every non-ASCII character percent-encoded as UTF-8.
fn encode_non_ascii(s: &str) -> String {
    utf8_percent_encode(s, percent_encoding::CONTROLS).to_string()
}

/// What Django's `redirect_to_login` leaves unencoded in `next` (`urlencode(safe="/")`):
/// letters, digits, `-._~` and `/`.
const NEXT_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `{prefix}login/?next=<percent-encoded target>`, absolute when `base` (e.g.
/// `"https://auth.example.com"`) is given.
pub fn login_url(base: Option<&str>, prefix: &str, next: &str) -> String {
    page_url(base, prefix, LOGIN_PAGE, next)
}

/// The sign-in page, below the prefix.
pub const LOGIN_PAGE: &str = "login/";
/// The second-factor page (SPEC §17): the code of a pending sign-in, or a step-up.
pub const SECOND_FACTOR_PAGE: &str = "login/code/";

/// `{prefix}{page}?next=<percent-encoded target>`, absolute when `base` is given.
pub fn page_url(base: Option<&str>, prefix: &str, page: &str, next: &str) -> String {
    let base = base.map_or("", |b| b.trim_end_matches('/'));
    let next = utf8_percent_encode(next, NEXT_VALUE);
    format!("{base}{prefix}{page}?next={next}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "app.example.com".to_string(),
            ".partner.test".to_string(),
            "localhost".to_string(),
        ]
    }

    fn safe(next: &str) -> Option<String> {
        let hosts = allowed();
        safe_next(
            next,
            &NextRules {
                allowed_hosts: &hosts,
                cookie_domain: Some(".example.org"),
            },
        )
    }

    #[test]
    fn local_paths_pass_as_they_are() {
        for ok in [
            "/",
            "/accounts/",
            "/app/page?x=1&y=%2F#frag",
            "/a//b",
            "/a/%2F%2Fb",
            "/search?q=a%20b",
            "/%7Euser/",
            "/.well-known/x",
        ] {
            assert_eq!(safe(ok).as_deref(), Some(ok), "{ok}");
        }
    }

    #[test]
    fn the_open_redirect_matrix_is_refused() {
        for bad in [
            "",
            "//evil.test",
            "//evil.test/path",
            "///evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "\\/evil.test",
            "/a\\b",
            "https://evil.test",
            "https://evil.test/",
            "http://evil.test",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:x",
            "evil.test",
            "evil.test/path",
            "https:evil.test",
            "https:/evil.test",
            "https:///evil.test",
            "/%2F/evil.test",
            "/%2f/evil.test",
            "/%5Cevil.test",
            "/%5cevil.test",
            "/%252F/evil.test",
            "/%25252F/evil.test",
            "/%2525252525252F/evil.test",
            "/%09/evil.test",
            "/\t/evil.test",
            "/\n/evil.test",
            "/\r\n/evil.test",
            "/a\0b",
            "/a b",
            "/\u{200B}/evil.test",
            "/\u{202E}moc.evil",
            "/\u{3000}x",
            "\t/x",
            "https://evil.test@app.example.com",
            "https://app.example.com@evil.test",
            "https://user:pass@app.example.com/",
            "https://app.example.com.evil.test/",
            "https://app.example.com.evil.test",
            "https://evilapp.example.com/",
            "https://app.example.com:99999/",
            "https://app.example.com:/",
            "https://app.example.com:0/",
            "https://app.example.com:x/",
            "https://app.example.com./",
            "https://[::1]/",
            "https://app%2Eexample.com/",
            "https://partner.test.evil.test/",
            "https://example.org.evil.test/",
            "ftp://app.example.com/",
            "http://app.example.com/",
        ] {
            assert_eq!(safe(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn allowed_hosts_subdomains_and_the_cookie_domain() {
        for ok in [
            "https://app.example.com",
            "https://APP.example.com/x?y#z",
            "HTTPS://app.example.com/",
            "https://app.example.com:8443/",
            "https://partner.test/",
            "https://a.b.partner.test/",
            "https://example.org/",
            "https://shop.example.org/cart",
            "http://localhost:3000/",
        ] {
            assert_eq!(safe(ok).as_deref(), Some(ok), "{ok}");
        }
        // http only for localhost, and localhost only when allowed.
        assert_eq!(safe("http://127.0.0.1/"), None);
        let hosts = vec!["127.0.0.1".to_string()];
        let rules = NextRules {
            allowed_hosts: &hosts,
            cookie_domain: None,
        };
        assert!(safe_next("http://127.0.0.1:8080/x", &rules).is_some());
        assert!(safe_next("https://app.example.com/", &rules).is_none());
        // No hosts and no cookie domain: only paths.
        let rules = NextRules {
            allowed_hosts: &[],
            cookie_domain: None,
        };
        assert!(safe_next("https://app.example.com/", &rules).is_none());
        assert!(safe_next("/x", &rules).is_some());
        // An empty or bare-dot entry allows nothing.
        let hosts = vec![String::new(), ".".to_string()];
        let rules = NextRules {
            allowed_hosts: &hosts,
            cookie_domain: Some(""),
        };
        assert!(safe_next("https://x.test/", &rules).is_none());
    }

    #[test]
    fn long_values_are_ignored() {
        let at_cap = format!("/{}", "a".repeat(MAX_NEXT_BYTES - 1));
        assert!(safe(&at_cap).is_some());
        let over = format!("/{}", "a".repeat(MAX_NEXT_BYTES));
        assert_eq!(safe(&over), None);
        assert_eq!(safe(&"/%".repeat(100_000)), None);
    }

    #[test]
    fn non_ascii_comes_back_encoded() {
        assert_eq!(safe("/café/").as_deref(), Some("/caf%C3%A9/"));
        assert_eq!(
            safe("https://app.example.com/ü").as_deref(),
            Some("https://app.example.com/%C3%BC")
        );
        assert_eq!(safe("https://äpp.example.com/"), None);
    }

    #[test]
    fn login_url_encodes_next_as_django_does() {
        assert_eq!(
            login_url(None, "/accounts/", "/app/?a=1&b=2"),
            "/accounts/login/?next=/app/%3Fa%3D1%26b%3D2"
        );
        assert_eq!(
            login_url(Some("https://auth.example.com"), "/accounts/", "/x y#z"),
            "https://auth.example.com/accounts/login/?next=/x%20y%23z"
        );
        assert_eq!(
            login_url(
                Some("https://auth.example.com/"),
                "/accounts/",
                "https://app.example.com/p?q=1"
            ),
            "https://auth.example.com/accounts/login/?next=https%3A//app.example.com/p%3Fq%3D1"
        );
        assert_eq!(
            login_url(None, "/accounts/", "/é~-._"),
            "/accounts/login/?next=/%C3%A9~-._"
        );
    }

    #[test]
    fn a_login_url_round_trips_through_one_decoding() {
        let target = "/app/%2Fx?a=b&c=%26";
        let url = login_url(None, "/accounts/", target);
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let next: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(next, vec![("next".to_string(), target.to_string())]);
        assert!(safe(&next[0].1).is_some());
    }
}
