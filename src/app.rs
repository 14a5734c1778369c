//! The shared services every request uses, built once before Pingora's services start (each
//! service has its own runtime, so this lives in an `Arc`). The store comes in opened: the
//! app never knows which backend it is.

use crate::auth::assertion::Asserter;
use crate::auth::cache::UserCache;
use crate::auth::keys::Keys;
use crate::auth::passwords::Passwords;
use crate::auth::throttle::Throttle;
use crate::auth::tokens::{SignError, TokenType, Tokens};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::store::{User, UserStore};
use std::sync::Arc;
use std::time::Duration;

/// Names of the keys a shared store keeps for every replica.
const SHARED_JWT_SECRET: &str = "jwt_secret";
const SHARED_ASSERTION_KEY: &str = "assertion_key";

pub struct App {
    pub config: Config,
    pub store: Arc<dyn UserStore>,
    pub tokens: Arc<Tokens>,
    pub passwords: Passwords,
    pub cache: Arc<UserCache>,
    pub throttle: Throttle,
    pub authenticator: Authenticator,
    /// Signs identity assertions (when a route asks for them or the keys are asymmetric).
    pub asserter: Option<Asserter>,
    /// Which mails changes cause, the send caps and the link tokens (SPEC §10).
    pub mailer: Arc<crate::mail::Mailer>,
    /// The bound on audit events that change nothing (SPEC §16).
    pub unaccompanied: crate::audit::Unaccompanied,
    /// Seals second-factor secrets and hashes recovery codes (SPEC §17).
    pub second_factor: crate::auth::totp::SecretBox,
    /// Every route's rate-limit buckets (SPEC §20), kept across reloads.
    pub limiter: crate::limits::Limiter,
}

impl App {
    /// Opens the configured store and builds the app on it.
    pub fn open(config: Config) -> Result<App, String> {
        let store = crate::store::open(&config).map_err(|e| e.to_string())?;
        App::with_store(config, store)
    }

    pub fn with_store(config: Config, store: Arc<dyn UserStore>) -> Result<App, String> {
        let mut env_secret = std::env::var(crate::config::env::JWT_SECRET_VAR).ok();
        if env_secret.is_none() && config.jwt.secret_file.is_empty() {
            // Several replicas: the secret generated once and kept by the store, never one of
            // this process's own.
            let generated = crate::auth::secret::generate_hex().into_bytes();
            if let Some(kept) = store
                .shared_key(SHARED_JWT_SECRET, generated)
                .map_err(|e| format!("the shared JWT secret: {e}"))?
            {
                env_secret = Some(
                    String::from_utf8(kept)
                        .map_err(|_| "the shared JWT secret is not text".to_string())?,
                );
            }
        }
        let mut keys = Keys::load(&config.jwt, &config.server.data_dir, env_secret.as_deref())?;
        if config.routes.iter().any(|r| r.identity_assertion) {
            let generated = crate::auth::keys::generate_assertion_pem()?;
            keys = match store
                .shared_key(SHARED_ASSERTION_KEY, generated)
                .map_err(|e| format!("the shared assertion key: {e}"))?
            {
                Some(pem) => keys.with_assertion_pem(&pem)?,
                None => keys.with_assertion_key(&config.server.data_dir)?,
            };
        }
        let mail_material = keys.material.clone();
        let tokens = Arc::new(
            Tokens::with_keys(
                keys,
                config.jwt.access_lifetime_seconds,
                config.jwt.refresh_lifetime_seconds,
            )
            .accepting_unversioned(config.jwt.accept_unversioned_tokens),
        );
        let passwords = Passwords::new(&config.passwords)?;
        let cache = Arc::new(
            UserCache::new(
                config.cache.capacity,
                Duration::from_secs(config.cache.ttl_seconds),
            )
            .with_freshness(Duration::from_millis(config.store.freshness_ms)),
        );
        if let Some(feed) = store.changes() {
            follow_changes(&cache, feed)?;
        }
        let throttle = Throttle::new(&config.throttle).shared_by(Arc::clone(&store));
        let mut authenticator =
            Authenticator::new(Arc::clone(&tokens), Arc::clone(&cache), Arc::clone(&store))
                .with_key_header(config.apikeys.header.clone())
                .with_verified_cache(config.jwt.verified_cache);
        if config.web.enabled {
            let idle = config.web.idle_seconds();
            authenticator = authenticator.with_sessions(crate::auth::credentials::SessionCookie {
                name: config.web.cookie_name(),
                idle,
                cache: crate::auth::sessions::SessionCache::new(config.cache.capacity, idle),
            });
        }
        let asserter = tokens
            .assertion_key()
            .map(|key| Asserter::new(key.clone(), &config.proxy.assertion_issuer));
        // Link tokens from the material the JWT keys were made from: with a shared store, the
        // secret every replica uses.
        let mailer = Arc::new(
            crate::mail::Mailer::new(&config, &mail_material)?.shared_by(Arc::clone(&store)),
        );
        Ok(App {
            // From the same shared material as the mail links: every replica opens every
            // replica's secrets.
            second_factor: crate::auth::totp::SecretBox::new(&mail_material),
            mailer,
            unaccompanied: crate::audit::Unaccompanied::new(&config.audit),
            throttle,
            limiter: crate::limits::Limiter::new(&config, Arc::clone(&store)),
            config,
            store,
            tokens,
            passwords,
            cache,
            authenticator,
            asserter,
        })
    }

    /// A fresh (access, refresh) pair; the refresh token starts a new family, which the
    /// access token names.
    pub fn issue_pair(&self, user: &User) -> Result<(String, String), SignError> {
        self.issue_pair_in(user, &crate::ids::new_id(), false)
    }

    /// A fresh pair whose refresh token is the root of family `family` (its jti); `mfa`: the
    /// sign-in used a second factor, which both tokens say (`amr`) and refreshes keep.
    pub fn issue_pair_in(
        &self,
        user: &User,
        family: &str,
        mfa: bool,
    ) -> Result<(String, String), SignError> {
        let refresh = self.tokens.issue(
            TokenType::Refresh,
            user.id,
            user.token_version,
            mfa,
            None,
            Some(family),
        )?;
        let access = self.tokens.issue(
            TokenType::Access,
            user.id,
            user.token_version,
            mfa,
            Some(&refresh.jti),
            None,
        )?;
        Ok((access.token, refresh.token))
    }
}

/// Applies the store's change feed to the cache on a thread of its own (no Pingora runtime
/// is running yet); memory stops answering without a fresh proof from now on.
fn follow_changes(cache: &Arc<UserCache>, feed: crate::store::ChangeFeed) -> Result<(), String> {
    cache.gate_on_feed();
    let cache = Arc::clone(cache);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the cache feed's runtime: {e}"))?;
    std::thread::Builder::new()
        .name("gatehouse-cache-feed".into())
        .spawn(move || runtime.block_on(cache.follow(feed)))
        .map(|_| ())
        .map_err(|e| format!("cannot start the cache feed: {e}"))
}
