//! The one validated `Config` the runtime sees: serde types with every default, the TOML file,
//! `GATEHOUSE_<SECTION>_<KEY>` environment overrides, and `validate()`.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The config file used when neither `-c` nor `GATEHOUSE_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "conf/gatehouse.toml";
/// Environment variables that look like overrides but are not config keys.
const NON_KEY_VARS: &[&str] = &[
    "GATEHOUSE_CONFIG",
    "GATEHOUSE_JWT_SECRET",
    "GATEHOUSE_SUPERUSER_PASSWORD",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub jwt: JwtConfig,
    pub passwords: PasswordConfig,
    pub cache: CacheConfig,
    pub api: ApiConfig,
    pub proxy: ProxyConfig,
    pub log: LogConfig,
    pub throttle: ThrottleConfig,
    pub limits: LimitsConfig,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Failed logins per username per window.
    pub login_failures_per_username: u32,
    /// Failed logins per client address per window.
    pub login_failures_per_address: u32,
    /// Registrations per client address per window.
    pub registrations_per_address: u32,
    pub window_seconds: u64,
    /// Keys remembered at most (memory bound).
    pub max_keys: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            login_failures_per_username: 5,
            login_failures_per_address: 20,
            registrations_per_address: 20,
            window_seconds: 60,
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Access log lines on stdout: "json" or "text".
    pub format: String,
    /// Diagnostic log level on stderr: error, warn, info, debug, trace.
    pub level: String,
    /// One line per request on stdout.
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "json".into(),
            level: "info".into(),
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public listener: the user API and the proxy.
    pub listen: String,
    /// /metrics, /healthz, /readyz.
    pub metrics_listen: String,
    /// sled store and the generated secret.
    pub data_dir: PathBuf,
    /// Pingora worker threads for the public listener.
    pub threads: usize,
    /// SIGTERM: how long in-flight requests get to finish.
    pub grace_period_seconds: u64,
    /// Upper bound on the whole graceful shutdown.
    pub graceful_shutdown_timeout_seconds: u64,
    pub pid_file: String,
    /// Unix socket for Pingora's graceful upgrade (`serve --upgrade`).
    pub upgrade_sock: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9091".into(),
            data_dir: PathBuf::from("./data"),
            threads: 2,
            grace_period_seconds: 25,
            graceful_shutdown_timeout_seconds: 30,
            pid_file: "/tmp/gatehouse.pid".into(),
            upgrade_sock: "/tmp/gatehouse_upgrade.sock".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sled's page cache; sled's own default is 1 GiB.
    pub cache_capacity_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_capacity_mib: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// A file holding the HS256 secret; `GATEHOUSE_JWT_SECRET` wins over it. Empty: generate
    /// one in the data directory on first start.
    pub secret_file: String,
    pub access_lifetime_seconds: u64,
    pub refresh_lifetime_seconds: u64,
    pub rotate_refresh_tokens: bool,
    /// How long the parent of a rotated refresh token may still be replayed (racing clients).
    pub reuse_grace_seconds: u64,
    pub leeway_seconds: u64,
    /// HS256 (secret), or EdDSA / RS256 / ES256 (private_key_file + key_id).
    pub algorithm: String,
    /// PEM private key for the asymmetric algorithms.
    pub private_key_file: String,
    /// The `kid` of the signing key.
    pub key_id: String,
    /// A JWKS file of older public keys still accepted (key rotation).
    pub verification_jwks_file: String,
    /// Accept tokens without gatehouse's version claim, i.e. the ones the Django project's
    /// simplejwt minted with the same key (`GATEHOUSE_JWT_SECRET` = Django's signing key), as
    /// version 0: they work until the user's first revocation, so a switch-over logs nobody
    /// out. Off: they are "Token is invalid".
    pub accept_unversioned_tokens: bool,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            secret_file: String::new(),
            access_lifetime_seconds: 300,
            refresh_lifetime_seconds: 86400,
            rotate_refresh_tokens: false,
            reuse_grace_seconds: 10,
            leeway_seconds: 0,
            algorithm: "HS256".into(),
            private_key_file: String::new(),
            key_id: String::new(),
            verification_jwks_file: String::new(),
            accept_unversioned_tokens: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// argon2id memory in KiB (OWASP: 19 MiB).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashing threads; 0 means one per CPU.
    pub hash_threads: usize,
    /// Hash jobs that may wait; beyond it requests get 503 + Retry-After.
    pub hash_queue: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_threads: 0,
            hash_queue: 256,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// User-state entries kept in memory.
    pub capacity: u64,
    pub ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 100_000,
            ttl_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Request bodies on the user API above this get 413.
    pub max_body_bytes: usize,
    /// Upper bound for `?page_size=` on the admin list.
    pub max_page_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Request header lines (any request); more: 431.
    pub max_header_count: usize,
    /// Total bytes of request header names and values; more: 431.
    pub max_header_bytes: usize,
    /// A client that sends nothing for this long while its body is read is cut off.
    pub client_read_timeout_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_header_count: 100,
            max_header_bytes: 32 * 1024,
            client_read_timeout_seconds: 15,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 64 * 1024,
            max_page_size: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub user_id_header: String,
    pub user_name_header: String,
    pub user_is_staff_header: String,
    /// Send the client's `Authorization` header on to the upstream.
    pub forward_authorization: bool,
    /// Networks whose `X-Forwarded-For` is believed (CIDR); empty: none.
    pub trusted_proxies: Vec<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            user_id_header: "X-User-Id".into(),
            user_name_header: "X-User-Name".into(),
            user_is_staff_header: "X-User-Is-Staff".into(),
            forward_authorization: true,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Required,
    Optional,
    Public,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: String,
    pub upstreams: Vec<String>,
    #[serde(default = "default_auth")]
    pub auth: AuthMode,
    #[serde(default)]
    pub require_staff: bool,
    /// Remove the prefix from the path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// `[routes.cors]`: answer real preflights without a token and add CORS headers.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `"*"` for any (not with credentials).
    pub allowed_origins: Vec<String>,
    #[serde(default = "default_cors_methods")]
    pub allowed_methods: Vec<String>,
    #[serde(default = "default_cors_headers")]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default = "default_cors_max_age")]
    pub max_age_seconds: u64,
}

fn default_cors_methods() -> Vec<String> {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}
fn default_cors_headers() -> Vec<String> {
    ["authorization", "content-type", "x-request-id"]
        .map(String::from)
        .to_vec()
}
fn default_cors_max_age() -> u64 {
    600
}

fn default_auth() -> AuthMode {
    AuthMode::Required
}
fn default_connect_timeout() -> u64 {
    2_000
}
fn default_read_timeout() -> u64 {
    30_000
}

impl Config {
    /// Reads the file (if it exists or was named explicitly), applies the environment, validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| lookup(&env, "GATEHOUSE_CONFIG").map(PathBuf::from));
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // Without a file a first run still works: every key has a default.
            Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                String::new()
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Config::from_toml_and_env(&text, &path.display().to_string(), &env)
    }

    /// The pure part of `load`, for tests: TOML text plus an environment.
    pub fn from_toml_and_env(
        text: &str,
        origin: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.message().to_string(),
        })?;
        apply_env(&mut value, env)?;
        let config: Config =
            Config::deserialize(toml::Value::Table(value)).map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: e.message().to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: addresses, ranges, route shapes. Each message says what to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        for (key, addr) in [
            ("server.listen", &self.server.listen),
            ("server.metrics_listen", &self.server.metrics_listen),
        ] {
            if addr.parse::<SocketAddr>().is_err() {
                return bad(format!("{key} = {addr:?} is not an IP:port address"));
            }
        }
        if self.server.listen == self.server.metrics_listen {
            return bad("server.listen and server.metrics_listen must differ".into());
        }
        if !["json", "text"].contains(&self.log.format.as_str()) {
            return bad(format!(
                "log.format = {:?}: use \"json\" or \"text\"",
                self.log.format
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            return bad(format!(
                "log.level = {:?}: use error, warn, info, debug or trace",
                self.log.level
            ));
        }
        if self.limits.max_header_count < 8 || self.limits.max_header_bytes < 1024 {
            return bad(
                "limits: max_header_count must be >= 8 and max_header_bytes >= 1024".into(),
            );
        }
        if self.throttle.max_keys == 0 {
            return bad("throttle.max_keys must be at least 1".into());
        }
        if self.server.threads == 0 {
            return bad("server.threads must be at least 1".into());
        }
        crate::auth::keys::parse_algorithm(&self.jwt.algorithm).map_err(ConfigError::Invalid)?;
        if self.jwt.algorithm != "HS256"
            && (self.jwt.private_key_file.is_empty() || self.jwt.key_id.is_empty())
        {
            return bad(format!(
                "jwt.algorithm = {:?} needs jwt.private_key_file and jwt.key_id",
                self.jwt.algorithm
            ));
        }
        if self.jwt.access_lifetime_seconds == 0 || self.jwt.refresh_lifetime_seconds == 0 {
            return bad("jwt lifetimes must be at least 1 second".into());
        }
        if self.passwords.argon2_memory_kib < 8 * self.passwords.argon2_parallelism.max(1)
            || self.passwords.argon2_iterations == 0
            || self.passwords.argon2_parallelism == 0
        {
            return bad("passwords.argon2_*: memory must be >= 8 KiB per lane, iterations and parallelism >= 1".into());
        }
        if self.passwords.hash_queue == 0 {
            return bad("passwords.hash_queue must be at least 1".into());
        }
        if self.cache.capacity == 0 {
            return bad("cache.capacity must be at least 1".into());
        }
        if self.api.max_body_bytes == 0 || self.api.max_page_size == 0 {
            return bad("api.max_body_bytes and api.max_page_size must be at least 1".into());
        }
        for (key, name) in [
            ("proxy.user_id_header", &self.proxy.user_id_header),
            ("proxy.user_name_header", &self.proxy.user_name_header),
            (
                "proxy.user_is_staff_header",
                &self.proxy.user_is_staff_header,
            ),
        ] {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return bad(format!("{key} = {name:?} is not a valid header name"));
            }
        }
        for net in &self.proxy.trusted_proxies {
            if crate::gateway::headers::parse_network(net).is_none() {
                return bad(format!(
                    "proxy.trusted_proxies: {net:?} is not an address or CIDR network"
                ));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            if !route.prefix.starts_with('/') {
                return bad(format!(
                    "routes[{i}].prefix = {:?} must start with '/'",
                    route.prefix
                ));
            }
            if route.upstreams.is_empty() {
                return bad(format!(
                    "routes[{i}] ({}) needs at least one upstream",
                    route.prefix
                ));
            }
            for up in &route.upstreams {
                if up.parse::<SocketAddr>().is_err() {
                    return bad(format!(
                        "routes[{i}].upstreams: {up:?} is not an IP:port address"
                    ));
                }
            }
            if let Some(cors) = &route.cors {
                if cors.allow_credentials && cors.allowed_origins.iter().any(|o| o == "*") {
                    return bad(format!(
                        "routes[{i}].cors: allowed_origins = [\"*\"] cannot be combined with allow_credentials"
                    ));
                }
            }
            if self.routes[..i].iter().any(|r| r.prefix == route.prefix) {
                return bad(format!("routes: prefix {:?} appears twice", route.prefix));
            }
        }
        Ok(())
    }

    /// A human-readable summary for `check-config`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "listen {} (API + proxy), metrics {}\n",
            self.server.listen, self.server.metrics_listen
        ));
        out.push_str(&format!(
            "store: sled in {} (page cache {} MiB)\n",
            self.server.data_dir.display(),
            self.store.cache_capacity_mib
        ));
        out.push_str(&format!(
            "tokens: {}, access {} s, refresh {} s, rotation {}\n",
            self.jwt.algorithm,
            self.jwt.access_lifetime_seconds,
            self.jwt.refresh_lifetime_seconds,
            if self.jwt.rotate_refresh_tokens {
                "on"
            } else {
                "off"
            }
        ));
        out.push_str(&format!(
            "passwords: argon2id m={} KiB t={} p={}, queue {}\n",
            self.passwords.argon2_memory_kib,
            self.passwords.argon2_iterations,
            self.passwords.argon2_parallelism,
            self.passwords.hash_queue
        ));
        for r in &self.routes {
            out.push_str(&format!(
                "route {} -> {} (auth {:?}{})\n",
                r.prefix,
                r.upstreams.join(", "),
                r.auth,
                if r.require_staff { ", staff only" } else { "" }
            ));
        }
        out
    }
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `GATEHOUSE_<SECTION>_<KEY>=value` sets `[section] key`. The value takes the type of the
/// key's default; an unknown key of a known section is an error, as in the file. A variable
/// whose section is not ours (`GATEHOUSE_BIN` of some script) is someone else's: ignored.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Config::default())
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("GATEHOUSE_") else {
            continue;
        };
        if NON_KEY_VARS.contains(&var.as_str()) {
            continue;
        }
        let env_err = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let Some(toml::Value::Table(section_defaults)) = defaults.get(&section) else {
            continue;
        };
        let value = match section_defaults.get(&key) {
            Some(toml::Value::Boolean(_)) => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => return Err(env_err(format!("{raw:?} is not true or false"))),
            },
            Some(toml::Value::Integer(_)) => toml::Value::Integer(
                raw.parse()
                    .map_err(|_| env_err(format!("{raw:?} is not an integer")))?,
            ),
            Some(toml::Value::String(_)) => toml::Value::String(raw.clone()),
            Some(toml::Value::Array(_)) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
            _ => return Err(env_err(format!("unknown config key {section}.{key}"))),
        };
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, value);
            }
            _ => return Err(env_err(format!("[{section}] in the file is not a table"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml_and_env("", "t", &[]).expect("defaults are valid");
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.jwt.access_lifetime_seconds, 300);
        assert!(!c.jwt.rotate_refresh_tokens);
        assert!(c.jwt.accept_unversioned_tokens);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml_and_env("[server]\nlisten_addr = \"x\"\n", "t", &[])
            .expect_err("unknown key");
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn env_overrides_with_types() {
        let c = Config::from_toml_and_env(
            "[jwt]\naccess_lifetime_seconds = 60\n",
            "t",
            &env(&[
                ("GATEHOUSE_JWT_ROTATE_REFRESH_TOKENS", "true"),
                ("GATEHOUSE_SERVER_DATA_DIR", "/tmp/x"),
                ("GATEHOUSE_JWT_ACCESS_LIFETIME_SECONDS", "120"),
                ("GATEHOUSE_JWT_SECRET", "not-a-key"),
                ("GATEHOUSE_JWT_ACCEPT_UNVERSIONED_TOKENS", "false"),
            ]),
        )
        .expect("valid");
        assert!(c.jwt.rotate_refresh_tokens);
        assert!(!c.jwt.accept_unversioned_tokens);
        assert_eq!(c.server.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.jwt.access_lifetime_seconds, 120);
    }

    #[test]
    fn env_rejects_unknown_and_mistyped() {
        assert!(
            Config::from_toml_and_env("", "t", &env(&[("GATEHOUSE_SERVER_NOPE", "1")])).is_err()
        );
        // Not a section of ours: another tool's variable.
        assert!(Config::from_toml_and_env("", "t", &env(&[("GATEHOUSE_BIN", "/x")])).is_ok());
        assert!(Config::from_toml_and_env(
            "",
            "t",
            &env(&[("GATEHOUSE_JWT_ACCESS_LIFETIME_SECONDS", "soon")])
        )
        .is_err());
    }

    #[test]
    fn routes_are_validated() {
        let bad = "[[routes]]\nprefix = \"api\"\nupstreams = [\"127.0.0.1:9000\"]\n";
        assert!(Config::from_toml_and_env(bad, "t", &[]).is_err());
        let bad_auth =
            "[[routes]]\nprefix = \"/\"\nupstreams = [\"127.0.0.1:9000\"]\nauth = \"maybe\"\n";
        assert!(Config::from_toml_and_env(bad_auth, "t", &[]).is_err());
        let good =
            "[[routes]]\nprefix = \"/\"\nupstreams = [\"127.0.0.1:9000\"]\nauth = \"public\"\n";
        let c = Config::from_toml_and_env(good, "t", &[]).expect("valid");
        assert_eq!(c.routes[0].auth, AuthMode::Public);
    }
}
