//! The credential step: the one place that reads what a request carries to say who sent it
//! (the bearer token of `Authorization`, else the session cookie; API keys join here),
//! and turns it into the caller's current `Identity` through the user-state cache. The proxy,
//! forward-auth and the user API all call `Authenticator::check`; nothing else reads
//! `Authorization`. It knows no Pingora; `error.rs` renders the refusals.

use super::cache::UserCache;
use super::identity::{Identity, Via};
use super::sessions::{self, SessionCache};
use super::tokens::{TokenError, TokenType, Tokens};
use crate::metrics;
use crate::store::UserStore;
use http::HeaderMap;
use std::sync::Arc;

/// The header the bearer token comes in; forwarded upstream only with
/// `proxy.forward_authorization`.
pub const AUTHORIZATION: http::HeaderName = http::header::AUTHORIZATION;

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
    /// Every refusal, one of each reason (the metrics' label lists are checked against it).
    pub const ALL: [AuthError; 8] = [
        AuthError::NoCredentials,
        AuthError::BadHeader,
        AuthError::Token(TokenError::Expired),
        AuthError::Token(TokenError::Invalid),
        AuthError::UserNotFound,
        AuthError::UserInactive,
        AuthError::NotStaff,
        AuthError::Unavailable,
    ];

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
fn single_value<'a>(
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

/// The browser session cookie, when the pages are on (SPEC §15).
pub struct SessionCookie {
    /// The cookie's name as sent (`WebConfig::cookie_name`).
    pub name: String,
    /// Seconds of inactivity that end a session.
    pub idle: u64,
    pub cache: SessionCache,
}

pub struct Authenticator {
    tokens: Arc<Tokens>,
    cache: Arc<UserCache>,
    store: Arc<dyn UserStore>,
    session: Option<SessionCookie>,
}

impl Authenticator {
    pub fn new(tokens: Arc<Tokens>, cache: Arc<UserCache>, store: Arc<dyn UserStore>) -> Self {
        Authenticator {
            tokens,
            cache,
            store,
            session: None,
        }
    }

    /// Accepts the session cookie as well (after `Authorization`, which decides first).
    pub fn with_sessions(mut self, cookie: SessionCookie) -> Self {
        self.session = Some(cookie);
        self
    }

    /// The session cookie's settings, when sessions are on.
    pub fn session_cookie(&self) -> Option<&SessionCookie> {
        self.session.as_ref()
    }

    /// Who sent a request with these headers, checked against `need` and counted.
    /// `Ok(None)`: an anonymous caller that `need` lets through.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        need: Requirement,
    ) -> Result<Option<Identity>, AuthError> {
        let cookie = self.session.as_ref().map(|s| s.name.as_str());
        let outcome = match presented(headers, cookie) {
            Ok(credential) => self.identify(credential).await,
            Err(e) => Err(e),
        };
        let decided = require(outcome, need);
        match &decided {
            Ok(Some(who)) if who.via == Via::Session => metrics::AUTH_ALLOW_SESSION.inc(),
            Ok(Some(_)) => metrics::AUTH_ALLOW_TOKEN.inc(),
            Ok(None) => metrics::AUTH_ALLOW_ANONYMOUS.inc(),
            Err(e) => metrics::AUTH_DECISIONS
                .with_label_values(&["deny", e.reason()])
                .inc(),
        }
        decided
    }

    /// The caller behind a presented credential, from the user's current state.
    async fn identify(&self, credential: Presented<'_>) -> Result<Identity, AuthError> {
        let token = match credential {
            Presented::Nothing => return Err(AuthError::NoCredentials),
            Presented::Session(value) => return self.session_identity(value).await,
            Presented::Bearer(token) => token,
        };
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
        // "Sign out this device": the access tokens of an ended family die with it.
        if claims
            .family
            .as_ref()
            .is_some_and(|fam| state.ended.iter().any(|e| e == fam))
        {
            return Err(AuthError::Token(TokenError::Invalid));
        }
        let family = claims.family.map(Arc::from);
        Ok(state.identity(claims.user_id, Via::Jwt, claims.mfa, family))
    }

    /// The caller behind a session cookie. A cookie that names no live session is no
    /// credential at all (browsers keep stale cookies): anonymous where that is allowed, the
    /// sign-in page or a 401 elsewhere.
    async fn session_identity(&self, value: &str) -> Result<Identity, AuthError> {
        let Some(cookie) = &self.session else {
            return Err(AuthError::NoCredentials);
        };
        let Some(hash) = sessions::id_hash(value) else {
            metrics::SESSIONS_REFUSED.inc();
            return Err(AuthError::NoCredentials);
        };
        let unavailable = |e: crate::store::StoreError| {
            log::warn!("auth: the store could not load a session: {e}");
            AuthError::Unavailable
        };
        let now = crate::clock::now();
        let session = cookie
            .cache
            .get(&hash, now, self.store.as_ref())
            .await
            .map_err(unavailable)?;
        let Some(session) = session else {
            metrics::SESSIONS_REFUSED.inc();
            return Err(AuthError::NoCredentials);
        };
        let state = self
            .cache
            .get(session.user_id, self.store.as_ref())
            .await
            .map_err(unavailable)?
            .ok_or(AuthError::NoCredentials)?;
        match sessions::decide(&session, &state, now, cookie.idle) {
            Ok(()) => {
                let mfa = session.method == crate::store::METHOD_PASSWORD_OTP;
                Ok(state.identity(session.user_id, Via::Session, mfa, Some(Arc::from(hash))))
            }
            Err(_) => {
                metrics::SESSIONS_REFUSED.inc();
                Err(AuthError::NoCredentials)
            }
        }
    }
}

/// A credential as the request presents it, read off the headers without any cache or store
/// read: what is malformed is refused here, before anything costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented<'a> {
    Nothing,
    Bearer(&'a [u8]),
    /// The session cookie's value (only when no `Authorization` was sent).
    Session(&'a str),
}

/// Refuses a request that carries two `Authorization` headers, whoever the route lets in:
/// the upstream might read the other one.
pub fn refuse_ambiguous(headers: &HeaderMap) -> Result<(), AuthError> {
    single_value(headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes())).map(|_| ())
}

/// The credential `headers` carry: the one `Authorization` value if it is a bearer token,
/// else the session cookie named `cookie` (when sessions are on).
fn presented<'a>(headers: &'a HeaderMap, cookie: Option<&str>) -> Result<Presented<'a>, AuthError> {
    let authorization = single_value(headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes()))?;
    match bearer_token(authorization) {
        Ok(token) => Ok(Presented::Bearer(token)),
        Err(AuthError::NoCredentials) => Ok(cookie
            .and_then(|name| crate::cookies::get(headers, name))
            .map_or(Presented::Nothing, Presented::Session)),
        Err(e) => Err(e),
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
    fn the_request_presents_at_most_one_credential() {
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(
                    AUTHORIZATION,
                    http::HeaderValue::from_str(v).expect("value"),
                );
            }
            h
        };
        assert_eq!(presented(&headers(&[]), None), Ok(Presented::Nothing));
        assert_eq!(
            presented(&headers(&["Basic abc"]), None),
            Ok(Presented::Nothing)
        );
        assert_eq!(
            presented(&headers(&["Bearer tok"]), None),
            Ok(Presented::Bearer(&b"tok"[..]))
        );
        assert_eq!(
            presented(&headers(&["Bearer a", "Bearer b"]), None),
            Err(AuthError::BadHeader)
        );
        assert_eq!(
            presented(&headers(&["Bearer a b"]), None),
            Err(AuthError::BadHeader)
        );
        assert_eq!(refuse_ambiguous(&headers(&["x"])), Ok(()));
        assert_eq!(
            refuse_ambiguous(&headers(&["x", "y"])),
            Err(AuthError::BadHeader)
        );
    }

    #[test]
    fn reasons_are_distinct_labels() {
        let labels: std::collections::HashSet<_> =
            AuthError::ALL.iter().map(|e| e.reason()).collect();
        assert_eq!(labels.len(), AuthError::ALL.len());
    }
}
