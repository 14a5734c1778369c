//! simplejwt's JWTAuthentication as a plain decision: an `Authorization` value in, the caller's
//! current identity or an `AuthError` out. It knows no HTTP; `error.rs` renders the refusals.

use super::cache::{UserCache, UserState};
use super::tokens::{TokenError, TokenType, Tokens};
use crate::metrics;
use crate::store::UserStore;
use std::sync::Arc;

/// The caller, as the user's current state says (never stale claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: u64,
    pub username: Arc<str>,
    pub is_staff: bool,
    /// Group names, sorted, each once.
    pub groups: Arc<[String]>,
    /// The same identity as the values of the identity headers, made once per cached state.
    pub values: Arc<IdentityValues>,
}

impl Identity {
    /// User `id` as its current state describes it.
    pub fn of(id: u64, state: UserState) -> Identity {
        Identity {
            user_id: id,
            username: state.username,
            is_staff: state.is_staff,
            groups: state.groups,
            values: state.values,
        }
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

/// Why a request is not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header, or a scheme other than `Bearer`.
    NoCredentials,
    /// Two `Authorization` headers, or a value that is not two space-separated parts.
    BadHeader,
    /// The access token itself is refused.
    Token(TokenError),
    UserNotFound,
    UserInactive,
    /// Authenticated, but staff is required.
    NotStaff,
    /// The store could not say who the user is.
    Unavailable,
}

impl AuthError {
    /// The bounded label of the auth-decision metric.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::NoCredentials => "no_credentials",
            AuthError::BadHeader => "bad_authorization_header",
            AuthError::Token(TokenError::Expired) => "token_expired",
            AuthError::Token(_) => "token_invalid",
            AuthError::UserNotFound => "user_not_found",
            AuthError::UserInactive => "user_inactive",
            AuthError::NotStaff => "not_staff",
            AuthError::Unavailable => "unavailable",
        }
    }
}

/// Who may pass: the route's or the endpoint's requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anonymous callers pass; a credential that is sent must still be valid.
    Anyone,
    Authenticated,
    Staff,
}

/// The request's one `Authorization` value (`None`: none sent). Two are refused: which one a
/// backend would read is anyone's guess.
pub fn single_value<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<&'a [u8]>, AuthError> {
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::BadHeader);
    }
    Ok(first)
}

/// Whether the caller `outcome` names meets `need`. `Ok(None)`: an anonymous caller that
/// `need` lets through.
pub fn require(
    outcome: Result<Identity, AuthError>,
    need: Requirement,
) -> Result<Option<Identity>, AuthError> {
    match (outcome, need) {
        (Err(AuthError::NoCredentials), Requirement::Anyone) => Ok(None),
        (Err(e), _) => Err(e),
        (Ok(who), Requirement::Staff) if !who.is_staff => Err(AuthError::NotStaff),
        (Ok(who), _) => Ok(Some(who)),
    }
}

pub struct Authenticator {
    tokens: Arc<Tokens>,
    cache: Arc<UserCache>,
    store: Arc<dyn UserStore>,
}

impl Authenticator {
    pub fn new(tokens: Arc<Tokens>, cache: Arc<UserCache>, store: Arc<dyn UserStore>) -> Self {
        Authenticator {
            tokens,
            cache,
            store,
        }
    }

    /// Authenticates, applies `need`, and counts the decision. `Ok(None)`: an anonymous caller
    /// that `need` lets through.
    pub async fn check(
        &self,
        authorization: Result<Option<&[u8]>, AuthError>,
        need: Requirement,
    ) -> Result<Option<Identity>, AuthError> {
        let outcome = match authorization {
            Ok(value) => self.authenticate(value).await,
            Err(e) => Err(e),
        };
        let decided = require(outcome, need);
        match &decided {
            Ok(Some(_)) => metrics::AUTH_ALLOW_TOKEN.inc(),
            Ok(None) => metrics::AUTH_ALLOW_ANONYMOUS.inc(),
            Err(e) => metrics::AUTH_DECISIONS
                .with_label_values(&["deny", e.reason()])
                .inc(),
        }
        decided
    }

    /// The caller behind one `Authorization` value, from the user's current state.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Identity, AuthError> {
        let token = bearer_token(authorization)?;
        let token =
            std::str::from_utf8(token).map_err(|_| AuthError::Token(TokenError::Invalid))?;
        let claims = self
            .tokens
            .verify(token, Some(TokenType::Access))
            .map_err(AuthError::Token)?;
        let state = self
            .cache
            .get(claims.user_id, self.store.as_ref())
            .await
            .map_err(|e| {
                log::warn!(
                    "auth: the store could not load user {}: {e}",
                    claims.user_id
                );
                AuthError::Unavailable
            })?
            .ok_or(AuthError::UserNotFound)?;
        if !state.is_active {
            return Err(AuthError::UserInactive);
        }
        if state.token_version != claims.version {
            return Err(AuthError::Token(TokenError::Invalid));
        }
        Ok(Identity::of(claims.user_id, state))
    }
}

/// The token of `Bearer <token>`; a missing header or another scheme is no credential at all.
fn bearer_token(authorization: Option<&[u8]>) -> Result<&[u8], AuthError> {
    let value = authorization.ok_or(AuthError::NoCredentials)?;
    let mut parts = value
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Err(AuthError::NoCredentials),
        (Some(scheme), _, _) if scheme != b"Bearer" => Err(AuthError::NoCredentials),
        (Some(_), Some(token), None) => Ok(token),
        _ => Err(AuthError::BadHeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_token(None), Err(AuthError::NoCredentials));
        assert_eq!(bearer_token(Some(b"")), Err(AuthError::NoCredentials));
        assert_eq!(
            bearer_token(Some(b"Basic abc")),
            Err(AuthError::NoCredentials)
        );
        assert_eq!(bearer_token(Some(b"Bearer")), Err(AuthError::BadHeader));
        assert_eq!(bearer_token(Some(b"Bearer a b")), Err(AuthError::BadHeader));
        assert_eq!(bearer_token(Some(b"Bearer  tok ")), Ok(&b"tok"[..]));
    }

    #[test]
    fn two_values_are_refused() {
        let one: [&[u8]; 1] = [b"Bearer x"];
        assert_eq!(single_value(one.into_iter()), Ok(Some(&b"Bearer x"[..])));
        let two: [&[u8]; 2] = [b"Bearer x", b"Bearer y"];
        assert_eq!(single_value(two.into_iter()), Err(AuthError::BadHeader));
        assert_eq!(single_value(std::iter::empty()), Ok(None));
    }

    #[test]
    fn reasons_are_distinct_labels() {
        let all = [
            AuthError::NoCredentials,
            AuthError::BadHeader,
            AuthError::Token(TokenError::Expired),
            AuthError::Token(TokenError::Invalid),
            AuthError::UserNotFound,
            AuthError::UserInactive,
            AuthError::NotStaff,
            AuthError::Unavailable,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
