//! The shared state every request uses, built once before Pingora's services start (each
//! service has its own runtime, so this lives in an `Arc`).

use crate::auth::cache::UserCache;
use crate::auth::keys::Keys;
use crate::auth::passwords::Passwords;
use crate::auth::secret;
use crate::auth::throttle::Throttle;
use crate::auth::tokens::{TokenType, Tokens};
use crate::config::Config;
use crate::store::{SledStore, StoreError, User, UserStore};
use std::path::PathBuf;
use std::time::Duration;

pub struct App {
    pub config: Config,
    pub store: Box<dyn UserStore>,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub cache: UserCache,
    pub throttle: Throttle,
}

/// Where sled keeps its files inside the data directory (the secret sits beside it).
pub fn store_dir(config: &Config) -> PathBuf {
    config.server.data_dir.join("db")
}

/// Opens the store alone (command-line tools).
pub fn open_store(config: &Config) -> Result<SledStore, StoreError> {
    let dir = &config.server.data_dir;
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| {
        StoreError::Io(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })?;
    // It holds the user store and the signing secret: the owner's alone. An existing
    // directory keeps the permissions its operator chose.
    #[cfg(unix)]
    if created {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            StoreError::Io(format!(
                "cannot restrict data directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    SledStore::open(
        &store_dir(config),
        config.store.cache_capacity_mib * 1024 * 1024,
    )
}

impl App {
    pub fn open(config: Config) -> Result<App, String> {
        let store = open_store(&config).map_err(|e| e.to_string())?;
        App::with_store(config, store)
    }

    pub fn with_store(config: Config, store: SledStore) -> Result<App, String> {
        let env_secret = std::env::var(secret::ENV_VAR).ok();
        let keys = Keys::load(&config.jwt, &config.server.data_dir, env_secret.as_deref())?;
        let tokens = Tokens::with_keys(
            keys,
            config.jwt.access_lifetime_seconds,
            config.jwt.refresh_lifetime_seconds,
        )
        .accepting_unversioned(config.jwt.accept_unversioned_tokens);
        let passwords = Passwords::new(&config.passwords)?;
        let cache = UserCache::new(
            config.cache.capacity,
            Duration::from_secs(config.cache.ttl_seconds.max(1)),
        );
        let throttle = Throttle::new(&config.throttle);
        Ok(App {
            throttle,
            config,
            store: Box::new(store),
            tokens,
            passwords,
            cache,
        })
    }

    /// A fresh (access, refresh) pair; the refresh token starts a new family.
    pub fn issue_pair(&self, user: &User) -> (String, String) {
        let access = self
            .tokens
            .issue(TokenType::Access, user.id, user.token_version, None, None);
        let refresh =
            self.tokens
                .issue(TokenType::Refresh, user.id, user.token_version, None, None);
        (access.token, refresh.token)
    }
}
