//! The credential step: the one place that reads what a request carries to say who sent it
//! (`Authorization`: a bearer token or API key, or Basic with a key as the password; the
//! API-key header; else the session cookie), and turns it into the caller's current
//! `Identity` through the user-state cache. The proxy, forward-auth and the user API all call
//! `Authenticator::check`; nothing else reads `Authorization`. It knows no Pingora;
//! `error.rs` renders the refusals.

use super::apikey;
use super::cache::{UserCache, UserState};
use super::identity::{Identity, IdentityValues, Via};
use super::sessions::{self, SessionCache};
use super::tokens::{TokenError, Tokens};
use super::verified::VerifiedTokens;
use crate::config::CredentialKind;
use crate::metrics;
use crate::store::{ApiKey, UseBatch, UserStore};
use http::{HeaderMap, HeaderName};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

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

/// The credential kinds a check takes (a route's `accept`, SPEC §19). A credential of
/// another kind is treated as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    pub jwt: bool,
    pub session: bool,
    pub apikey: bool,
    /// A key where keys are not taken is refused as an invalid token would be (the user
    /// API: a key can never change passwords or make keys), rather than ignored.
    pub refuse_keys: bool,
}

impl Accept {
    /// Every kind (a route's default).
    pub const ALL: Accept = Accept {
        jwt: true,
        session: true,
        apikey: true,
        refuse_keys: false,
    };
    /// The user API: tokens and sessions; a key is an invalid token.
    pub const USER_API: Accept = Accept {
        jwt: true,
        session: true,
        apikey: false,
        refuse_keys: true,
    };

    /// A route's `accept` list.
    pub fn of(kinds: &[CredentialKind]) -> Accept {
        Accept {
            jwt: kinds.contains(&CredentialKind::Jwt),
            session: kinds.contains(&CredentialKind::Session),
            apikey: kinds.contains(&CredentialKind::Apikey),
            refuse_keys: false,
        }
    }

    /// The kinds taken, by their configuration names.
    pub fn names(&self) -> Vec<&'static str> {
        CredentialKind::ALL
            .into_iter()
            .filter(|k| match k {
                CredentialKind::Jwt => self.jwt,
                CredentialKind::Session => self.session,
                CredentialKind::Apikey => self.apikey,
            })
            .map(CredentialKind::name)
            .collect()
    }
}

/// What became of a presented API key (`gatehouse_apikey_checks_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    Allowed,
    /// Not a key's shape, or a wrong checksum: refused before any cache or store read.
    Malformed,
    /// Well-formed, but no key has that hash.
    Unknown,
    Revoked,
    Expired,
    /// The owner is deactivated or gone.
    OwnerInactive,
    /// The store could not say.
    Unavailable,
}

impl KeyCheck {
    pub fn label(self) -> &'static str {
        match self {
            KeyCheck::Allowed => "allowed",
            KeyCheck::Malformed => "malformed",
            KeyCheck::Unknown => "unknown",
            KeyCheck::Revoked => "revoked",
            KeyCheck::Expired => "expired",
            KeyCheck::OwnerInactive => "owner_inactive",
            KeyCheck::Unavailable => "unavailable",
        }
    }

    /// The refusal the caller gets (a key that is not let in is an invalid token).
    fn refusal(self) -> AuthError {
        match self {
            KeyCheck::OwnerInactive => AuthError::UserInactive,
            KeyCheck::Unavailable => AuthError::Unavailable,
            _ => AuthError::Token(TokenError::Invalid),
        }
    }
}

/// Whether `key` lets its owner (`owner`: their current state, `None`: gone) in at `now`.
pub fn key_verdict(key: &ApiKey, owner: Option<&UserState>, now: u64) -> KeyCheck {
    if key.revoked.is_some() {
        KeyCheck::Revoked
    } else if now >= key.expires_at {
        KeyCheck::Expired
    } else if !owner.is_some_and(|o| o.is_active) {
        KeyCheck::OwnerInactive
    } else {
        KeyCheck::Allowed
    }
}

/// The identity a key grants: its owner, with only the key's groups the owner still holds
/// (a key made without groups is not narrowed by group, as one without routes is not by
/// route), staff only when the key carries it and the owner is staff, and the key's routes.
pub fn narrowed(owner: UserState, user_id: u64, key: &ApiKey) -> Identity {
    let groups: Vec<String> = owner
        .groups
        .iter()
        .filter(|g| key.groups.is_empty() || key.groups.contains(g))
        .cloned()
        .collect();
    let is_staff = key.staff && owner.is_staff;
    let values = IdentityValues::new(user_id, &owner.username, is_staff, &groups);
    let mut who = owner.identity(user_id, Via::ApiKey, false, None);
    who.is_staff = is_staff;
    who.groups = Arc::from(groups);
    who.values = Arc::new(values);
    who.routes = Arc::from(key.routes.as_slice());
    who.key_id = Some(Arc::from(key.id.as_str()));
    who
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
    /// Access tokens verified before, until they expire (`[jwt] verified_cache`).
    verified: VerifiedTokens,
    cache: Arc<UserCache>,
    store: Arc<dyn UserStore>,
    session: Option<SessionCookie>,
    /// The header a key may come in besides `Authorization` (`[apikeys] header`).
    key_header: HeaderName,
    /// Uses of keys waiting for their `last_used` write (`flush_key_uses`).
    key_uses: Mutex<UseBatch>,
}

impl Authenticator {
    pub fn new(tokens: Arc<Tokens>, cache: Arc<UserCache>, store: Arc<dyn UserStore>) -> Self {
        Authenticator {
            tokens,
            verified: VerifiedTokens::new(crate::config::DEFAULT_VERIFIED_CACHE),
            cache,
            store,
            session: None,
            key_header: HeaderName::from_static("x-api-key"),
            key_uses: Mutex::new(UseBatch::default()),
        }
    }

    /// Keeps `slots` verified access tokens (`[jwt] verified_cache`; 0: none).
    pub fn with_verified_cache(mut self, slots: usize) -> Self {
        self.verified = VerifiedTokens::new(slots);
        self
    }

    /// Takes keys in `header` as well as in `Authorization` (`[apikeys] header`).
    pub fn with_key_header(mut self, header: HeaderName) -> Self {
        self.key_header = header;
        self
    }

    /// Writes the keys' uses noted since the last call (`last_used`, at most once a minute
    /// per key); housekeeping calls it. Uses that could not be written are kept for the next.
    pub async fn flush_key_uses(&self) -> Result<usize, crate::store::StoreError> {
        let used = self
            .key_uses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if used.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.store.touch_api_keys(&used).await {
            let mut batch = self.key_uses.lock().unwrap_or_else(|e| e.into_inner());
            batch.restore(used);
            return Err(e);
        }
        Ok(used.len())
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
    /// The user API's check: tokens and sessions, never a key.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        need: Requirement,
    ) -> Result<Option<Identity>, AuthError> {
        self.check_accepting(headers, need, Accept::USER_API).await
    }

    /// `check` taking the credential kinds `accept` takes (a route's `accept`).
    pub async fn check_accepting(
        &self,
        headers: &HeaderMap,
        need: Requirement,
        accept: Accept,
    ) -> Result<Option<Identity>, AuthError> {
        let cookie = self.session.as_ref().map(|s| s.name.as_str());
        let outcome = match presented(headers, cookie, &self.key_header, accept) {
            Ok(credential) => self.identify(credential).await,
            Err(e) => Err(e),
        };
        let decided = require(outcome, need);
        match &decided {
            Ok(Some(who)) if who.via == Via::Session => metrics::AUTH_ALLOW_SESSION.inc(),
            Ok(Some(who)) if who.via == Via::ApiKey => metrics::AUTH_ALLOW_APIKEY.inc(),
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
            Presented::Key(key) => {
                let (check, who) = self.key_identity(&key).await;
                metrics::APIKEY_CHECKS
                    .with_label_values(&[check.label()])
                    .inc();
                return who.ok_or_else(|| check.refusal());
            }
            Presented::Bearer(token) => token,
        };
        let token =
            std::str::from_utf8(token).map_err(|_| AuthError::Token(TokenError::Invalid))?;
        let claims = self
            .verified
            .access(&self.tokens, token)
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
        let family = claims.family.as_deref().map(Arc::from);
        Ok(state.identity(claims.user_id, Via::Jwt, claims.mfa, family))
    }

    /// The caller behind a presented API key, and what became of it. A malformed key is
    /// refused here, before any cache or store read.
    async fn key_identity(&self, key: &str) -> (KeyCheck, Option<Identity>) {
        let Ok(hash) = apikey::parse(key) else {
            return (KeyCheck::Malformed, None);
        };
        let unavailable = |e: crate::store::StoreError| {
            log::warn!("auth: the store could not load an API key or its owner: {e}");
            (KeyCheck::Unavailable, None)
        };
        let record = match self.cache.api_key(&hash, self.store.as_ref()).await {
            Ok(Some(record)) => record,
            Ok(None) => return (KeyCheck::Unknown, None),
            Err(e) => return unavailable(e),
        };
        let now = crate::clock::now();
        // Revoked or expired: refused without reading the owner.
        if record.revoked.is_some() || now >= record.expires_at {
            return (key_verdict(&record, None, now), None);
        }
        let owner = match self.cache.get(record.user_id, self.store.as_ref()).await {
            Ok(owner) => owner,
            Err(e) => return unavailable(e),
        };
        match (key_verdict(&record, owner.as_ref(), now), owner) {
            (KeyCheck::Allowed, Some(owner)) => {
                self.key_uses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .note(&record, now);
                let who = narrowed(owner, record.user_id, &record);
                (KeyCheck::Allowed, Some(who))
            }
            (KeyCheck::Allowed, None) => (KeyCheck::OwnerInactive, None),
            (refused, _) => (refused, None),
        }
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
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presented<'a> {
    Nothing,
    Bearer(&'a [u8]),
    /// An API key (not yet parsed): `Bearer gk_...`, Basic's password, the key header.
    Key(Cow<'a, str>),
    /// The session cookie's value (only when no other credential was sent).
    Session(&'a str),
}

/// Refuses a request that carries two `Authorization` headers, whoever the route lets in:
/// the upstream might read the other one.
pub fn refuse_ambiguous(headers: &HeaderMap) -> Result<(), AuthError> {
    single_value(headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes())).map(|_| ())
}

/// The credential `headers` carry, of the kinds `accept` takes: the one `Authorization`
/// value (a bearer token, a key as the bearer token or as Basic's password), else the one
/// key header (`key_header`), else the session cookie named `cookie` (when sessions are on).
/// A credential of a kind not taken is treated as absent (or, with `refuse_keys`, a key is an
/// invalid token).
fn presented<'a>(
    headers: &'a HeaderMap,
    cookie: Option<&str>,
    key_header: &HeaderName,
    accept: Accept,
) -> Result<Presented<'a>, AuthError> {
    let authorization = single_value(headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes()))?;
    let from_authorization = match bearer_token(authorization) {
        Ok(token) if token.starts_with(apikey::KEY_PREFIX.as_bytes()) => {
            Some(Presented::Key(String::from_utf8_lossy(token)))
        }
        Ok(token) => Some(Presented::Bearer(token)),
        Err(AuthError::NoCredentials) => basic_password(authorization)
            .filter(|p| apikey::looks_like_key(p))
            .map(|p| Presented::Key(Cow::Owned(p))),
        Err(e) => return Err(e),
    };
    let from_header = || -> Result<Option<Presented<'a>>, AuthError> {
        let value = single_value(headers.get_all(key_header).iter().map(|v| v.as_bytes()))?;
        Ok(value.map(|v| Presented::Key(String::from_utf8_lossy(v))))
    };
    let credential = match from_authorization {
        Some(c) => Some(c),
        None => from_header()?,
    };
    match credential {
        Some(Presented::Key(_)) if !accept.apikey && accept.refuse_keys => {
            return Err(AuthError::Token(TokenError::Invalid))
        }
        Some(c @ Presented::Key(_)) if accept.apikey => return Ok(c),
        Some(c @ Presented::Bearer(_)) if accept.jwt => return Ok(c),
        _ => {}
    }
    Ok(cookie
        .filter(|_| accept.session)
        .and_then(|name| crate::cookies::get(headers, name))
        .map_or(Presented::Nothing, Presented::Session))
}

/// The password of `Basic <base64(user:password)>` (any user name); `None` for anything else.
fn basic_password(authorization: Option<&[u8]>) -> Option<String> {
    use base64::Engine;
    let value = authorization?;
    let mut parts = value
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    let (Some(scheme), Some(encoded), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !scheme.eq_ignore_ascii_case(b"Basic") || encoded.len() > BASIC_MAX {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_, password) = decoded.split_once(':')?;
    Some(password.to_string())
}

/// The longest Basic credential decoded (base64 of a user name and a key, with room).
const BASIC_MAX: usize = 1024;

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

    fn headers_of(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn key_header() -> HeaderName {
        HeaderName::from_static("x-api-key")
    }

    fn route_sees(pairs: &[(&str, &str)], accept: Accept) -> Result<Presented<'static>, AuthError> {
        let h = headers_of(pairs);
        presented(&h, Some("sid"), &key_header(), accept).map(|p| match p {
            Presented::Nothing => Presented::Nothing,
            Presented::Bearer(t) => Presented::Bearer(Vec::leak(t.to_vec())),
            Presented::Key(k) => Presented::Key(Cow::Owned(k.into_owned())),
            Presented::Session(s) => Presented::Session(String::leak(s.to_string())),
        })
    }

    #[test]
    fn the_request_presents_at_most_one_credential() {
        let headers = |values: &[&str]| {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("authorization", *v)).collect();
            headers_of(&pairs)
        };
        fn user_api(h: &HeaderMap) -> Result<Presented<'_>, AuthError> {
            presented(h, None, &key_header(), Accept::USER_API)
        }
        assert_eq!(user_api(&headers(&[])), Ok(Presented::Nothing));
        assert_eq!(user_api(&headers(&["Basic abc"])), Ok(Presented::Nothing));
        assert_eq!(
            user_api(&headers(&["Bearer tok"])),
            Ok(Presented::Bearer(&b"tok"[..]))
        );
        assert_eq!(
            user_api(&headers(&["Bearer a", "Bearer b"])),
            Err(AuthError::BadHeader)
        );
        assert_eq!(
            user_api(&headers(&["Bearer a b"])),
            Err(AuthError::BadHeader)
        );
        assert_eq!(refuse_ambiguous(&headers(&["x"])), Ok(()));
        assert_eq!(
            refuse_ambiguous(&headers(&["x", "y"])),
            Err(AuthError::BadHeader)
        );
    }

    #[test]
    fn a_key_comes_three_ways() {
        use base64::Engine;
        let key = |k: &str| Ok(Presented::Key(Cow::Owned(k.to_string())));
        let all = Accept::ALL;
        assert_eq!(
            route_sees(&[("authorization", "Bearer gk_abc")], all),
            key("gk_abc")
        );
        assert_eq!(route_sees(&[("x-api-key", "gk_abc")], all), key("gk_abc"));
        // Whatever is in the key header is a key (and a JWT there is a malformed one).
        assert_eq!(route_sees(&[("x-api-key", "eyJ.x.y")], all), key("eyJ.x.y"));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ci:gk_abc")
        );
        assert_eq!(route_sees(&[("authorization", &basic)], all), key("gk_abc"));
        // Basic with a password that is not a key is no credential of ours.
        let other = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode("ci:hunter2")
        );
        assert_eq!(
            route_sees(&[("authorization", &other)], all),
            Ok(Presented::Nothing)
        );
        assert_eq!(
            route_sees(&[("authorization", "Basic !!notbase64")], all),
            Ok(Presented::Nothing)
        );
        // Authorization decides before the key header; two key headers are ambiguous.
        assert_eq!(
            route_sees(
                &[("authorization", "Bearer tok"), ("x-api-key", "gk_a")],
                all
            ),
            Ok(Presented::Bearer(&b"tok"[..]))
        );
        assert_eq!(
            route_sees(&[("x-api-key", "gk_a"), ("x-api-key", "gk_b")], all),
            Err(AuthError::BadHeader)
        );
    }

    #[test]
    fn a_kind_the_route_does_not_accept_is_absent() {
        let only = |kinds: &[CredentialKind]| Accept::of(kinds);
        let cookie = ("cookie", "sid=s1");
        let jwt_only = only(&[CredentialKind::Jwt]);
        let key_only = only(&[CredentialKind::Apikey]);
        let session_only = only(&[CredentialKind::Session]);
        assert_eq!(
            route_sees(&[("x-api-key", "gk_a")], jwt_only),
            Ok(Presented::Nothing)
        );
        assert_eq!(
            route_sees(&[("authorization", "Bearer gk_a"), cookie], jwt_only),
            Ok(Presented::Nothing),
            "neither the key nor the cookie"
        );
        assert_eq!(
            route_sees(&[("authorization", "Bearer tok"), cookie], key_only),
            Ok(Presented::Nothing)
        );
        assert_eq!(
            route_sees(&[("authorization", "Bearer gk_a"), cookie], session_only),
            Ok(Presented::Session("s1"))
        );
        assert_eq!(
            route_sees(&[("authorization", "Bearer tok")], jwt_only),
            Ok(Presented::Bearer(&b"tok"[..]))
        );
        // The user API: a key is an invalid token, however it comes.
        for pairs in [[("authorization", "Bearer gk_a")], [("x-api-key", "gk_a")]] {
            assert_eq!(
                route_sees(&pairs, Accept::USER_API),
                Err(AuthError::Token(TokenError::Invalid))
            );
        }
        assert_eq!(Accept::ALL.names(), ["jwt", "session", "apikey"]);
        assert_eq!(Accept::of(&CredentialKind::ALL), Accept::ALL);
        assert_eq!(key_only.names(), ["apikey"]);
    }

    fn owner(active: bool, staff: bool, groups: &[&str]) -> UserState {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        UserState {
            is_active: active,
            token_version: 0,
            username: Arc::from("alice"),
            is_staff: staff,
            values: Arc::new(IdentityValues::new(7, "alice", staff, &groups)),
            groups: Arc::from(groups),
            ended: Arc::from(Vec::new()),
        }
    }

    fn api_key(groups: &[&str], staff: bool) -> ApiKey {
        ApiKey {
            id: "k".into(),
            user_id: 7,
            name: "ci".into(),
            sha256: "00".into(),
            prefix: "gk_abcde".into(),
            created: 0,
            expires_at: 1_000,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            routes: vec!["/ci".into()],
            staff,
            last_used: None,
            revoked: None,
        }
    }

    #[test]
    fn a_key_is_let_in_while_live_and_its_owner_active() {
        let k = api_key(&[], false);
        let active = owner(true, false, &[]);
        assert_eq!(key_verdict(&k, Some(&active), 999), KeyCheck::Allowed);
        assert_eq!(key_verdict(&k, Some(&active), 1_000), KeyCheck::Expired);
        assert_eq!(
            key_verdict(&k, Some(&owner(false, false, &[])), 10),
            KeyCheck::OwnerInactive
        );
        assert_eq!(key_verdict(&k, None, 10), KeyCheck::OwnerInactive);
        let revoked = ApiKey {
            revoked: Some(5),
            ..k
        };
        assert_eq!(key_verdict(&revoked, Some(&active), 10), KeyCheck::Revoked);
        let labels: std::collections::HashSet<_> = [
            KeyCheck::Allowed,
            KeyCheck::Malformed,
            KeyCheck::Unknown,
            KeyCheck::Revoked,
            KeyCheck::Expired,
            KeyCheck::OwnerInactive,
            KeyCheck::Unavailable,
        ]
        .map(KeyCheck::label)
        .into_iter()
        .collect();
        assert_eq!(labels.len(), crate::metrics::APIKEY_RESULTS.len());
        assert!(labels
            .iter()
            .all(|l| crate::metrics::APIKEY_RESULTS.contains(l)));
    }

    #[test]
    fn a_key_grants_only_what_it_carries_and_the_owner_still_holds() {
        // The key names "ops", which the owner has since lost.
        let k = api_key(&["billing", "ops"], true);
        let who = narrowed(owner(true, false, &["billing", "dev"]), 7, &k);
        assert_eq!(&*who.groups, ["billing".to_string()]);
        assert!(!who.is_staff, "staff only for a staff owner");
        assert_eq!(who.via, Via::ApiKey);
        assert_eq!(
            who.values.groups.as_ref().map(|v| v.as_bytes()),
            Some(&b"billing"[..])
        );
        assert_eq!(who.values.is_staff, "false");
        assert!(who.reaches("/ci/x") && !who.reaches("/admin"));
        assert!(!who.mfa);
        let staff = narrowed(owner(true, true, &[]), 7, &k);
        assert!(staff.is_staff && staff.groups.is_empty());
        // Made without groups: not narrowed by group (as without routes, by route).
        let plain = narrowed(owner(true, true, &["billing"]), 7, &api_key(&[], false));
        assert!(!plain.is_staff);
        assert_eq!(&*plain.groups, ["billing".to_string()]);
    }

    #[test]
    fn reasons_are_distinct_labels() {
        let labels: std::collections::HashSet<_> =
            AuthError::ALL.iter().map(|e| e.reason()).collect();
        assert_eq!(labels.len(), AuthError::ALL.len());
    }
}
