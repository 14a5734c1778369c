//! Who is calling: tokens (JWT), passwords (argon2 pool and Django's policy), the user-state
//! cache, refresh-token families, the signing secret, and `authenticate`, the one check that
//! both the user API and the proxy run on an `Authorization` header.

pub mod cache;
pub mod django_hash;
pub mod families;
pub mod keys;
pub mod passwords;
pub mod policy;
pub mod secret;
pub mod throttle;
pub mod tokens;

use crate::error::ApiError;
use crate::metrics::AUTH_DECISIONS;
use crate::store::UserStore;
use cache::UserCache;
use std::sync::Arc;
use tokens::{TokenError, TokenType, Tokens};

/// The caller, as the user's current state says (never stale claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: u64,
    pub username: Arc<str>,
    pub is_staff: bool,
}

/// Counts a final auth decision (after permission checks) in the metrics.
pub fn record_decision(outcome: &Result<Option<Identity>, ApiError>) {
    let (verdict, reason) = match outcome {
        Ok(Some(_)) => ("allow", "valid_token"),
        Ok(None) => ("allow", "anonymous"),
        Err(e) => ("deny", deny_reason(e)),
    };
    AUTH_DECISIONS.with_label_values(&[verdict, reason]).inc();
}

/// simplejwt's JWTAuthentication over every `Authorization` value of a request: `Ok(None)`
/// means anonymous (no header, or a scheme other than `Bearer`).
pub fn authenticate(
    authorization: &[&[u8]],
    tokens: &Tokens,
    cache: &UserCache,
    store: &dyn UserStore,
) -> Result<Option<Identity>, ApiError> {
    let value = match authorization {
        [] => return Ok(None),
        [one] => *one,
        // Two Authorization headers: which one a backend would read is anyone's guess.
        _ => return Err(ApiError::BadAuthorizationHeader),
    };
    let parts: Vec<&[u8]> = value
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        [] => Ok(None),
        [scheme, ..] if *scheme != b"Bearer" => Ok(None),
        [_, token] => {
            let token = std::str::from_utf8(token)
                .map_err(|_| ApiError::InvalidAccessToken(TokenError::Invalid.message()))?;
            let claims = tokens
                .verify(token, Some(TokenType::Access))
                .map_err(|e| match e {
                    TokenError::NoUserId => ApiError::NoUserId,
                    other => ApiError::InvalidAccessToken(other.message()),
                })?;
            let state = cache
                .get(claims.user_id, store)
                .map_err(|_| ApiError::Overloaded(crate::error::STORE_UNAVAILABLE))?
                .ok_or(ApiError::UserNotFound)?;
            if !state.is_active {
                return Err(ApiError::UserInactive);
            }
            if state.token_version != claims.version {
                return Err(ApiError::InvalidAccessToken(TokenError::Invalid.message()));
            }
            Ok(Some(Identity {
                user_id: claims.user_id,
                username: state.username,
                is_staff: state.is_staff,
            }))
        }
        _ => Err(ApiError::BadAuthorizationHeader),
    }
}

/// A bounded label for the auth-decision metric.
fn deny_reason(e: &ApiError) -> &'static str {
    match e {
        ApiError::BadAuthorizationHeader => "bad_authorization_header",
        ApiError::InvalidAccessToken(m) if *m == TokenError::Expired.message() => "token_expired",
        ApiError::InvalidAccessToken(_) | ApiError::NoUserId => "token_invalid",
        ApiError::UserNotFound => "user_not_found",
        ApiError::UserInactive => "user_inactive",
        ApiError::NotAuthenticated => "no_credentials",
        ApiError::PermissionDenied => "not_staff",
        _ => "unavailable",
    }
}
