//! Who a request is, once its credential is checked: the `Identity` the credential step
//! returns (who, and how they proved it) and the identity headers' values made from it. A
//! leaf: it names no cache, store or token, so all of those can name it.

use std::sync::Arc;

/// How the caller proved who they are: the credential kind that let them in (SPEC §15,
/// §19), sent upstream as `X-User-Auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An access token in `Authorization: Bearer`.
    Jwt,
    /// The browser session cookie (SPEC §15): unsafe requests need the CSRF checks.
    Session,
    /// An API key (SPEC §19): the identity is narrowed to what the key grants.
    ApiKey,
}

impl Via {
    /// The value of `X-User-Auth`.
    pub fn name(self) -> &'static str {
        match self {
            Via::Jwt => "jwt",
            Via::Session => "session",
            Via::ApiKey => "apikey",
        }
    }

    /// `name` as a header value, without formatting.
    pub fn header_value(self) -> http::HeaderValue {
        http::HeaderValue::from_static(self.name())
    }
}

/// The caller, as the user's current state says (never stale claims), and how they got in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: u64,
    pub username: Arc<str>,
    pub is_staff: bool,
    /// Group names, sorted, each once.
    pub groups: Arc<[String]>,
    /// The same identity as the values of the identity headers, made once per cached state.
    pub values: Arc<IdentityValues>,
    /// The credential that proved it.
    pub via: Via,
    /// A second factor was part of the sign-in behind the credential (SPEC §17): the access
    /// token's `amr`, the session's method.
    pub mfa: bool,
    /// Which sign-in the credential belongs to: the session's id hash, or the access
    /// token's refresh family (`None` for tokens minted without one). "This device".
    pub sign_in: Option<Arc<str>>,
    /// An API key's `routes`: the path prefixes it may reach (empty: every route).
    pub routes: Arc<[String]>,
    /// The API key's id, when one proved it: a rate limit `by = "credential"` counts per key.
    pub key_id: Option<Arc<str>>,
}

impl Identity {
    /// Whether the credential may reach `path` (an API key with `routes` only those prefixes).
    pub fn reaches(&self, path: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|p| under_prefix(path, p))
    }
}

/// Whether `path` is `prefix` or below it (`/ci` covers `/ci` and `/ci/x`, not `/cix`; a
/// prefix ending in `/` covers what starts with it).
fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// What the identity headers carry, ready to send: made when a user's state is cached, so a
/// request clones them (a reference count) instead of formatting and validating them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityValues {
    pub user_id: http::HeaderValue,
    /// `None`: the name cannot be a header value (a control character in an imported name);
    /// such a user is not forwarded.
    pub username: Option<http::HeaderValue>,
    pub is_staff: http::HeaderValue,
    /// `groups_value` of the groups (empty for none); `None` as for the username.
    pub groups: Option<http::HeaderValue>,
}

impl IdentityValues {
    pub fn new(user_id: u64, username: &str, is_staff: bool, groups: &[String]) -> IdentityValues {
        IdentityValues {
            user_id: http::HeaderValue::from(user_id),
            username: http::HeaderValue::from_str(username).ok(),
            is_staff: http::HeaderValue::from_static(if is_staff { "true" } else { "false" }),
            groups: http::HeaderValue::from_str(&groups_value(groups)).ok(),
        }
    }
}

/// The value of the groups identity header: the names (already sorted) joined by commas, each
/// with `%`, `,` and control characters percent-encoded, so that a name cannot split in two
/// or make the header invalid. Empty for a user in no group.
pub fn groups_value(groups: &[String]) -> String {
    let mut out = String::new();
    for (i, name) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for c in name.chars() {
            if c == '%' || c == ',' || c.is_ascii_control() {
                out.push_str(&format!("%{:02X}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reaches_only_its_prefixes() {
        assert!(under_prefix("/ci", "/ci"));
        assert!(under_prefix("/ci/build", "/ci"));
        assert!(!under_prefix("/cix", "/ci"));
        assert!(under_prefix("/ci/x", "/ci/"));
        assert!(!under_prefix("/ci", "/ci/"));
        assert!(!under_prefix("/other", "/ci"));
        assert_eq!(
            [Via::Jwt, Via::Session, Via::ApiKey].map(Via::name),
            ["jwt", "session", "apikey"]
        );
    }

    #[test]
    fn group_names_join_without_ambiguity() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(groups_value(&[]), "");
        assert_eq!(groups_value(&names(&["billing", "ops"])), "billing,ops");
        assert_eq!(
            groups_value(&names(&["a,b", "100%", "line\nbreak", "Équipe dev"])),
            "a%2Cb,100%25,line%0Abreak,Équipe dev"
        );
        // Always a valid header value.
        let all: String = (0u8..=127).map(char::from).collect();
        let value = groups_value(&[all]);
        assert!(http::HeaderValue::from_str(&value).is_ok(), "{value:?}");
    }
}
