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
}

impl App {
    /// Opens the configured store and builds the app on it.
    pub fn open(config: Config) -> Result<App, String> {
        let store = crate::store::open(&config).map_err(|e| e.to_string())?;
        App::with_store(config, store)
    }

    pub fn with_store(config: Config, store: Arc<dyn UserStore>) -> Result<App, String> {
        let env_secret = std::env::var(crate::config::env::JWT_SECRET_VAR).ok();
        let mut keys = Keys::load(&config.jwt, &config.server.data_dir, env_secret.as_deref())?;
        if config.routes.iter().any(|r| r.identity_assertion) {
            keys = keys.with_assertion_key(&config.server.data_dir)?;
        }
        let tokens = Arc::new(
            Tokens::with_keys(
                keys,
                config.jwt.access_lifetime_seconds,
                config.jwt.refresh_lifetime_seconds,
            )
            .accepting_unversioned(config.jwt.accept_unversioned_tokens),
        );
        let passwords = Passwords::new(&config.passwords)?;
        let cache = Arc::new(UserCache::new(
            config.cache.capacity,
            Duration::from_secs(config.cache.ttl_seconds),
        ));
        let throttle = Throttle::new(&config.throttle);
        let authenticator =
            Authenticator::new(Arc::clone(&tokens), Arc::clone(&cache), Arc::clone(&store));
        let asserter = tokens
            .assertion_key()
            .map(|key| Asserter::new(key.clone(), &config.proxy.assertion_issuer));
        let mailer = Arc::new(crate::mail::Mailer::new(
            &config,
            tokens.derived_key(crate::mail::tokens::MailTokens::KEY_LABEL),
        )?);
        Ok(App {
            mailer,
            throttle,
            config,
            store,
            tokens,
            passwords,
            cache,
            authenticator,
            asserter,
        })
    }

    /// A fresh (access, refresh) pair; the refresh token starts a new family.
    pub fn issue_pair(&self, user: &User) -> Result<(String, String), SignError> {
        let access =
            self.tokens
                .issue(TokenType::Access, user.id, user.token_version, None, None)?;
        let refresh =
            self.tokens
                .issue(TokenType::Refresh, user.id, user.token_version, None, None)?;
        Ok((access.token, refresh.token))
    }
}
