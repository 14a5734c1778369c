//! Signed identity for upstreams: the `X-Gatehouse-Assertion` JWT (SPEC §11), signed with an
//! asymmetric key whose public half is in `/.well-known/jwks.json`, so an upstream can verify
//! who is calling with any JOSE library instead of trusting the network. A signature is reused
//! for the same user, route and user state for up to `REUSE`, so the proxy does not pay an
//! asymmetric signature per request.

use super::keys::AssertionKey;
use super::tokens::SignError;
use super::Identity;
use crate::clock::now;
use http::HeaderValue;
use moka::sync::Cache;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The header upstreams read it from (stripped from clients on every route).
pub const HEADER: &str = "x-gatehouse-assertion";
/// How long an assertion is valid.
pub const LIFETIME_SECONDS: u64 = 60;
/// How long one is handed out again for the same user, route and state.
pub const REUSE: Duration = Duration::from_secs(30);
/// Users x routes remembered at most.
const REUSE_CAPACITY: u64 = 100_000;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    username: &'a str,
    is_staff: bool,
    groups: &'a [String],
    iat: u64,
    exp: u64,
    jti: String,
}

struct Signed {
    /// The state it was signed for: another state signs anew.
    identity: Identity,
    value: HeaderValue,
}

pub struct Asserter {
    key: AssertionKey,
    issuer: String,
    reuse: Cache<(u64, Arc<str>), Arc<Signed>>,
}

impl Asserter {
    pub fn new(key: AssertionKey, issuer: &str) -> Asserter {
        Asserter {
            key,
            issuer: issuer.to_string(),
            reuse: Cache::builder()
                .max_capacity(REUSE_CAPACITY)
                .time_to_live(REUSE)
                .build(),
        }
    }

    /// The assertion of `who` for the route whose audience is `audience`.
    pub fn assertion(&self, who: &Identity, audience: &Arc<str>) -> Result<HeaderValue, SignError> {
        let key = (who.user_id, Arc::clone(audience));
        if let Some(signed) = self.reuse.get(&key) {
            if signed.identity == *who {
                return Ok(signed.value.clone());
            }
        }
        let value = self.sign(who, audience)?;
        self.reuse.insert(
            key,
            Arc::new(Signed {
                identity: who.clone(),
                value: value.clone(),
            }),
        );
        Ok(value)
    }

    fn sign(&self, who: &Identity, audience: &str) -> Result<HeaderValue, SignError> {
        let iat = now();
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            sub: who.user_id.to_string(),
            username: &who.username,
            is_staff: who.is_staff,
            groups: &who.groups,
            iat,
            exp: iat + LIFETIME_SECONDS,
            jti: crate::ids::new_id(),
        };
        let mut header = jsonwebtoken::Header::new(self.key.algorithm);
        header.kid = Some(self.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.signing)
            .map_err(|e| SignError(e.to_string()))?;
        HeaderValue::from_str(&token).map_err(|e| SignError(e.to_string()))
    }
}
