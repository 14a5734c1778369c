//! The one validated `Config` the runtime sees: typed sections with every default, read from
//! the TOML file with the `GATEHOUSE_*` overlay (`env.rs`) and checked (`validate.rs`).

pub mod env;
pub mod owned;
pub mod types;
mod validate;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
pub use types::{Algorithm, LogFormat, LogLevel, Network, Upstream};
pub use validate::describe_rate_limit;

/// The config file used when neither `-c` nor `GATEHOUSE_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "conf/gatehouse.toml";

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
    pub web: WebConfig,
    pub proxy: ProxyConfig,
    pub forward_auth: ForwardAuthConfig,
    pub log: LogConfig,
    pub throttle: ThrottleConfig,
    pub limits: LimitsConfig,
    pub routes: Vec<RouteConfig>,
    pub email: EmailConfig,
    pub audit: AuditConfig,
    pub mfa: MfaConfig,
    pub apikeys: ApiKeysConfig,
    pub console: ConsoleConfig,
    pub admin_api: AdminApiConfig,
}

/// The second factor (SPEC §17).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// The name authenticator apps show beside the account; "" = `web.brand_name`.
    pub issuer: String,
    /// Failed codes per user in an hour, on every replica, after which the second step
    /// answers 429 (and the user is mailed).
    pub failures_per_hour: u32,
    /// How long that lock lasts.
    pub lock_minutes: u64,
    /// How long a browser's sign-in waits for its code after the password (single-use).
    pub pending_minutes: u64,
}

impl Default for MfaConfig {
    fn default() -> Self {
        MfaConfig {
            issuer: String::new(),
            failures_per_hour: 10,
            lock_minutes: 60,
            pending_minutes: 5,
        }
    }
}

impl MfaConfig {
    pub fn lock_seconds(&self) -> u64 {
        self.lock_minutes.saturating_mul(60)
    }
    pub fn pending_seconds(&self) -> u64 {
        self.pending_minutes.saturating_mul(60)
    }
}

/// API keys (SPEC §19).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeysConfig {
    /// The longest a key may live: its `expires_at` is at most this many days after it is
    /// made.
    pub max_lifetime_days: u64,
    /// The header a key may come in besides `Authorization` (`X-API-Key: gk_...`).
    #[serde(with = "types::header_name")]
    pub header: http::HeaderName,
}

/// The longest `[apikeys] max_lifetime_days` may be (ten years).
pub const APIKEY_LIFETIME_DAYS_MAX: u64 = 3650;

impl Default for ApiKeysConfig {
    fn default() -> Self {
        ApiKeysConfig {
            max_lifetime_days: 365,
            header: http::HeaderName::from_static("x-api-key"),
        }
    }
}

impl ApiKeysConfig {
    pub fn max_lifetime_seconds(&self) -> u64 {
        self.max_lifetime_days.saturating_mul(86_400)
    }
}

/// The admin console (SPEC §18).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// gatehouse answers `prefix` itself (it needs `[web] enabled`: the console signs in
    /// with the pages' sign-in); off, the paths under it go to the routes.
    pub enabled: bool,
    /// Where the console lives (Django's admin is at `/admin/`).
    pub prefix: String,
    /// A staff user without a second factor is taken to enrolment on the first visit
    /// (OWASP ASVS 4.3.1).
    pub require_mfa: bool,
    /// Destructive actions (deactivate, a staff change, a factor reset, a new email address,
    /// ending another user's sessions) need a sign-in younger than this, else the password
    /// (and code) again.
    pub recent_sign_in_minutes: u64,
    /// `IP:port` of a listener of the console's own (plain HTTP), serving the console and
    /// the pages it signs in with; the public listeners then answer 404 under `prefix`.
    /// `""`: the console is served under the public listeners.
    #[serde(with = "types::optional_socket_addr")]
    pub listen: Option<SocketAddr>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            prefix: "/admin/".into(),
            require_mfa: true,
            recent_sign_in_minutes: 10,
            listen: None,
        }
    }
}

impl ConsoleConfig {
    pub fn recent_sign_in_seconds(&self) -> u64 {
        self.recent_sign_in_minutes.saturating_mul(60)
    }
}

impl Config {
    /// The console answers requests: on, with the pages it signs in through.
    pub fn console_on(&self) -> bool {
        self.console.enabled && self.web.enabled
    }

    /// The console's own listener, when it is on and has one.
    pub fn console_listener(&self) -> Option<SocketAddr> {
        self.console.listen.filter(|_| self.console_on())
    }
}

/// The admin endpoints of the user API (`/api/auth/admin/…`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminApiConfig {
    /// Staff tokens and sessions need a second factor behind them (403 `mfa_required`);
    /// off by default, so the seed's admin clients keep working with password-only tokens.
    pub require_mfa: bool,
}

/// Where the audit log goes besides the store, and how long the store keeps it (SPEC §16).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// One JSON line per event: "stdout", "none", or a file path (appended to).
    pub sink: String,
    /// Events older than this are deleted by a background sweep.
    pub retention_days: u64,
    /// Events that change nothing (a failed sign-in, a refused CSRF check) written per
    /// client address and action per minute; more are counted, not written.
    pub unaccompanied_per_minute: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            sink: AUDIT_SINK_STDOUT.into(),
            retention_days: 365,
            unaccompanied_per_minute: 30,
        }
    }
}

/// `[audit] sink` values that are not a file path.
pub const AUDIT_SINK_STDOUT: &str = "stdout";
pub const AUDIT_SINK_NONE: &str = "none";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Failed logins (wrong passwords and wrong second-factor codes) per username and
    /// client address per window: a stranger's failures lock only the stranger's address.
    pub login_failures_per_username_address: u32,
    /// Failed logins per username from anywhere per `username_window_seconds`: the bound
    /// on an attack spread over many addresses.
    pub login_failures_per_username: u32,
    pub username_window_seconds: u64,
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
            login_failures_per_username_address: 5,
            login_failures_per_username: 100,
            username_window_seconds: 3600,
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
    pub format: LogFormat,
    /// Diagnostic log level on stderr: error, warn, info, debug, trace.
    pub level: LogLevel,
    /// One line per request on stdout.
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Json,
            level: LogLevel::Info,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public listener: the user API and the proxy, plain HTTP; `""` turns it off.
    #[serde(with = "types::optional_socket_addr")]
    pub listen: Option<SocketAddr>,
    /// The same over TLS (HTTP/2 and HTTP/1.1 by ALPN); `""`: none (SPEC §14).
    #[serde(with = "types::optional_socket_addr")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener (re-read on reload).
    pub tls_cert: String,
    /// PEM private key of the TLS listener (never logged; re-read on reload).
    pub tls_key: String,
    /// Plain-HTTP requests get a 308 to the same path on the TLS listener.
    pub redirect_to_https: bool,
    /// > 0: `Strict-Transport-Security: max-age=N` on every answer over TLS.
    pub hsts_max_age_seconds: u64,
    /// /metrics, /healthz, /readyz.
    #[serde(with = "types::socket_addr")]
    pub metrics_listen: SocketAddr,
    /// sled store and the generated secret.
    pub data_dir: PathBuf,
    /// Pingora worker threads for the public listener.
    pub threads: usize,
    /// Let idle worker threads take tasks from busy ones (one work-stealing runtime), or give
    /// each thread its own runtime and its connections for life (benches/README.md, issue 17).
    pub work_stealing: bool,
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
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            tls_listen: None,
            tls_cert: String::new(),
            tls_key: String::new(),
            redirect_to_https: false,
            hsts_max_age_seconds: 0,
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            data_dir: PathBuf::from("./data"),
            threads: 2,
            work_stealing: true,
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
    /// sled (embedded, one process) or postgres (several replicas; the URL comes from
    /// `GATEHOUSE_STORE_URL`, never from the file: it holds a password).
    pub backend: StoreBackend,
    /// postgres: connections in each replica's pool.
    pub pool_size: usize,
    /// postgres: how stale a replica's user-state cache may ever be; past it, decisions read
    /// the database.
    pub freshness_ms: u64,
    /// postgres: how many replicas share the database. Sizes the slices of a shared rate
    /// limit (SPEC §20): each is 1/(15 x replicas) of the bucket, so the slices held unspent
    /// stay under 10 % of it.
    pub replicas: u64,
}

/// Which `UserStore` backend `store::open` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Sled,
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_capacity_mib: 64,
            backend: StoreBackend::Sled,
            pool_size: 16,
            freshness_ms: 500,
            replicas: 2,
        }
    }
}

/// The default slots of the cache of verified access tokens (`[jwt] verified_cache`): with
/// tokens of ~250 bytes, about 1.5 MiB when full.
pub const DEFAULT_VERIFIED_CACHE: usize = 4096;

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
    #[serde(with = "types::as_string")]
    pub algorithm: Algorithm,
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
    /// Slots of the cache of verified access tokens (a repeated token is not verified again
    /// until it expires; user state is still checked per request). 0: off.
    pub verified_cache: usize,
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
            algorithm: Algorithm::HS256,
            private_key_file: String::new(),
            key_id: String::new(),
            verification_jwks_file: String::new(),
            accept_unversioned_tokens: true,
            verified_cache: DEFAULT_VERIFIED_CACHE,
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
    /// Where the user API lives: `{prefix}token/`, `{prefix}auth/...`, `{prefix}schema/`
    /// (the seed's paths with the default `/api/`).
    pub prefix: String,
    /// Request bodies on the user API above this get 413.
    pub max_body_bytes: usize,
    /// Upper bound for `?page_size=` on the admin list.
    pub max_page_size: usize,
}

/// The pages people open in a browser and their sessions (SPEC §15).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// gatehouse answers `prefix` itself; off, the paths under it go to the routes as any
    /// other path, and no session cookie is accepted anywhere.
    pub enabled: bool,
    /// Where the pages live (Django's `LOGIN_URL` is `/accounts/login/`).
    pub prefix: String,
    /// How people reach gatehouse ("https://auth.example.com"); empty: from the request.
    pub public_url: String,
    /// Shown on every page.
    pub brand_name: String,
    /// A stylesheet of the operator's, served after the built-in one.
    pub css_file: String,
    /// The sign-up page.
    pub registration: bool,
    /// The session cookie's name; its `__Host-`/`__Secure-` prefix follows `cookie_secure`
    /// and `cookie_domain` (`WebConfig::cookie_name`).
    pub session_cookie: String,
    /// ".example.com": one sign-in for every subdomain.
    pub cookie_domain: String,
    pub cookie_secure: bool,
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
    /// More than 0 offers "remember me", which replaces the absolute limit.
    pub remember_me_days: u64,
    /// Hosts an absolute `?next=` may name ("app.example.com", or ".example.com").
    pub allowed_redirect_hosts: Vec<String>,
    /// Extra origins for CSRF (Django's `CSRF_TRUSTED_ORIGINS`).
    pub trusted_origins: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            prefix: "/accounts/".into(),
            public_url: String::new(),
            brand_name: "gatehouse".into(),
            css_file: String::new(),
            registration: true,
            session_cookie: "__Host-gatehouse_session".into(),
            cookie_domain: String::new(),
            cookie_secure: true,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            remember_me_days: 0,
            allowed_redirect_hosts: Vec::new(),
            trusted_origins: Vec::new(),
        }
    }
}

impl Config {
    /// The links the reset and verification mails carry (SPEC §10, §15): the configured
    /// ones, or, while they are the built-in examples and the pages are on, the pages'.
    pub fn mail_links(&self) -> (String, String) {
        let e = &self.email;
        let example = EmailConfig::default();
        let web = &self.web;
        let base = web
            .enabled
            .then(|| web.link_base(self.server.listen))
            .flatten();
        let pick = |configured: &String, example: &String, page: &str| match &base {
            Some(base) if configured == example => {
                format!("{base}{}{page}{{uid}}/{{token}}/", web.prefix)
            }
            _ => configured.clone(),
        };
        (
            pick(
                &e.password_reset_url,
                &example.password_reset_url,
                "password/reset/confirm/",
            ),
            pick(
                &e.verify_email_url,
                &example.verify_email_url,
                "email/verify/",
            ),
        )
    }
}

impl WebConfig {
    /// The session cookie's name as sent: `__Host-` (secure, no domain), `__Secure-` (secure
    /// with a domain) or no prefix (not secure), whatever prefix the configured name had.
    pub fn cookie_name(&self) -> String {
        let bare = self
            .session_cookie
            .strip_prefix("__Host-")
            .or_else(|| self.session_cookie.strip_prefix("__Secure-"))
            .unwrap_or(&self.session_cookie);
        match (self.cookie_secure, self.cookie_domain.is_empty()) {
            (true, true) => format!("__Host-{bare}"),
            (true, false) => format!("__Secure-{bare}"),
            (false, _) => bare.to_string(),
        }
    }

    pub fn cookie_domain(&self) -> Option<&str> {
        Some(self.cookie_domain.as_str()).filter(|d| !d.is_empty())
    }

    pub fn public_url(&self) -> Option<&str> {
        Some(self.public_url.trim_end_matches('/')).filter(|u| !u.is_empty())
    }

    /// The origin the browser addressed ("scheme://host[:port]"): `public_url` when set,
    /// else the request's own scheme and `Host` (what Django's CSRF check compares `Origin`
    /// with).
    pub fn own_origin(&self, secure: bool, headers: &http::HeaderMap) -> String {
        if let Some(public) = self.public_url() {
            return public.to_string();
        }
        Self::host_origin(secure, headers)
    }

    /// The origin the request's `Host` names (the console's own listener has no
    /// `public_url`: it is reached at its own address).
    pub fn host_origin(secure: bool, headers: &http::HeaderMap) -> String {
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let scheme = if secure { "https" } else { "http" };
        format!("{scheme}://{host}")
    }

    /// The pages' address for mail links: `public_url`, else the plain listener's.
    fn link_base(&self, listen: Option<std::net::SocketAddr>) -> Option<String> {
        self.public_url()
            .map(str::to_string)
            .or_else(|| listen.map(|a| format!("http://{a}")))
    }

    /// Seconds of inactivity that end a session.
    pub fn idle_seconds(&self) -> u64 {
        self.session_idle_minutes.saturating_mul(60)
    }

    /// How long a session may last: remember-me's days, else the absolute limit.
    pub fn lifetime_seconds(&self, remember: bool) -> u64 {
        if remember && self.remember_me_days > 0 {
            self.remember_me_days.saturating_mul(86_400)
        } else {
            self.session_absolute_hours.saturating_mul(3_600)
        }
    }
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
    /// Rate-limit buckets kept in memory, all routes together (SPEC §20); idle ones go first,
    /// so a flood of new addresses never grows memory past this.
    pub rate_limit_buckets: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_header_count: 100,
            max_header_bytes: 32 * 1024,
            client_read_timeout_seconds: 15,
            rate_limit_buckets: 100_000,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            prefix: "/api/".into(),
            max_body_bytes: 64 * 1024,
            max_page_size: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    #[serde(with = "types::header_name")]
    pub user_id_header: http::HeaderName,
    #[serde(with = "types::header_name")]
    pub user_name_header: http::HeaderName,
    #[serde(with = "types::header_name")]
    pub user_is_staff_header: http::HeaderName,
    /// The user's group names, sorted, comma-separated (empty for a user in no group).
    #[serde(with = "types::header_name")]
    pub user_groups_header: http::HeaderName,
    /// Send the client's `Authorization` header on to the upstream.
    pub forward_authorization: bool,
    /// Networks whose `X-Forwarded-For` is believed (CIDR); empty: none.
    #[serde(with = "types::as_strings")]
    pub trusted_proxies: Vec<Network>,
    /// Paths with an encoded slash, backslash or dot (or a raw backslash): refused with 400
    /// ("reject"), or passed on as they are ("forward", for upstreams that need them).
    pub escaped_paths: EscapedPaths,
    /// The `iss` of identity assertions.
    pub assertion_issuer: String,
}

/// `[forward_auth]`: gatehouse as the authentication service of an ingress in front of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// Answer `/_gatehouse/auth` and `/_gatehouse/ext_authz/...`; off: they are 404.
    pub enabled: bool,
    /// Who may ask (the ingress); anyone else gets 404.
    #[serde(with = "types::as_strings")]
    pub allowed_peers: Vec<Network>,
}

impl Default for ForwardAuthConfig {
    fn default() -> Self {
        ForwardAuthConfig {
            enabled: false,
            allowed_peers: ["127.0.0.1/32", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

/// `[email]` (SPEC §10): how mail leaves, the links it carries, and the templates. The SMTP
/// URL (it holds a password) comes only from `GATEHOUSE_EMAIL_SMTP_URL`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// console (each mail on stdout, as Django's console backend) | smtp | none.
    pub backend: MailBackend,
    /// The console backend's shape: a framed "text" block, or one "json" line per mail.
    pub console_format: ConsoleFormat,
    /// The sender address (`From:`), optionally with a name: `Gatehouse <noreply@x.org>`.
    pub from: String,
    /// The application's page that POSTs `{uid, token, new_password}` to
    /// `/api/auth/password/reset/confirm/`; `{uid}` and `{token}` are filled in.
    pub password_reset_url: String,
    /// The application's page that POSTs `{uid, token}` to `/api/auth/email/verify/`.
    pub verify_email_url: String,
    /// How long a reset or verification link works.
    pub token_lifetime_seconds: u64,
    /// Send a verification mail on register (and to the new address of a profile update).
    pub verify_on_register: bool,
    /// Unverified users cannot log in (the wrong-credentials 401).
    pub require_verified_email: bool,
    /// Reset and verification mails to one address per hour; more are dropped (still 204).
    pub max_per_address_per_hour: u32,
    /// Reset and verification mails per hour in all; more are dropped (still 204).
    pub max_per_hour: u32,
    /// Reset and resend answers never come sooner than this, known address or not.
    pub answer_floor_ms: u64,
    /// One SMTP exchange (connect, TLS, send) is given this long.
    pub smtp_timeout_seconds: u64,
    /// A mail that could not be sent is retried with exponential backoff for this long.
    pub retry_for_seconds: u64,
    pub templates: MailTemplates,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            backend: MailBackend::Console,
            console_format: ConsoleFormat::Text,
            from: "noreply@example.com".into(),
            password_reset_url: "http://localhost:3000/password-reset/{uid}/{token}".into(),
            verify_email_url: "http://localhost:3000/verify-email/{uid}/{token}".into(),
            token_lifetime_seconds: 3600,
            verify_on_register: false,
            require_verified_email: false,
            max_per_address_per_hour: 3,
            max_per_hour: 1000,
            answer_floor_ms: 250,
            smtp_timeout_seconds: 10,
            retry_for_seconds: 24 * 3600,
            templates: MailTemplates::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailBackend {
    Console,
    Smtp,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleFormat {
    Text,
    Json,
}

/// `[email.templates]`: subject and body of each mail. Placeholders: `{username}`, `{email}`,
/// `{first_name}`, `{last_name}`, and `{link}` in the reset and verification mails,
/// `{new_email}` in the email-changed notice, `{api_key}` (its name and prefix, never the key)
/// and `{account}` in the API-key notice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailTemplates {
    pub password_changed_subject: String,
    pub password_changed_body: String,
    pub email_changed_subject: String,
    pub email_changed_body: String,
    pub password_reset_subject: String,
    pub password_reset_body: String,
    pub verify_email_subject: String,
    pub verify_email_body: String,
    pub mfa_enabled_subject: String,
    pub mfa_enabled_body: String,
    pub mfa_disabled_subject: String,
    pub mfa_disabled_body: String,
    pub recovery_codes_renewed_subject: String,
    pub recovery_codes_renewed_body: String,
    pub mfa_replay_refused_subject: String,
    pub mfa_replay_refused_body: String,
    pub mfa_locked_subject: String,
    pub mfa_locked_body: String,
    pub apikey_created_subject: String,
    pub apikey_created_body: String,
}

impl Default for MailTemplates {
    fn default() -> Self {
        MailTemplates {
            // The seed's notice, word for word.
            password_changed_subject: "Password Changed".into(),
            password_changed_body: "Your password was changed successfully.".into(),
            email_changed_subject: "Email Changed".into(),
            email_changed_body: "Hello {username},\n\nthe email address of your account was changed to {new_email}. If you did not do this, reset your password and contact support.".into(),
            password_reset_subject: "Password Reset".into(),
            password_reset_body: "Hello {username},\n\nsomeone asked to reset the password of your account. To choose a new one, open:\n\n{link}\n\nIf it was not you, ignore this mail: your password stays as it is.".into(),
            verify_email_subject: "Verify your email address".into(),
            verify_email_body: "Hello {username},\n\nplease confirm that this is your email address by opening:\n\n{link}".into(),
            mfa_enabled_subject: "Two-factor authentication turned on".into(),
            mfa_enabled_body: "Hello {username},\n\ntwo-factor authentication was turned on for your account: signing in now needs a code from your authenticator app, or one of your recovery codes. If you did not do this, reset your password and contact support.".into(),
            mfa_disabled_subject: "Two-factor authentication turned off".into(),
            mfa_disabled_body: "Hello {username},\n\ntwo-factor authentication was turned off for your account, and every session and device was signed out. If you did not do this, reset your password and contact support.".into(),
            recovery_codes_renewed_subject: "New recovery codes".into(),
            recovery_codes_renewed_body: "Hello {username},\n\na new set of recovery codes was made for your account; the old ones no longer work. If you did not do this, reset your password and contact support.".into(),
            mfa_replay_refused_subject: "A used sign-in code was tried again".into(),
            mfa_replay_refused_body: "Hello {username},\n\nsomeone tried to sign in to your account with your password and a two-factor code that had just been used. It was refused. If it was not you, someone knows your password and saw a code: change your password now.".into(),
            mfa_locked_subject: "Two-factor sign-in locked".into(),
            mfa_locked_body: "Hello {username},\n\ntoo many wrong two-factor codes were entered for your account, so its second sign-in step is locked for a while. If it was not you, someone knows your password: change it now.".into(),
            apikey_created_subject: "New API key".into(),
            apikey_created_body: "Hello {username},\n\na new API key, {api_key}, was made for the account {account}. It works until it expires or is revoked. If you did not expect it, revoke it and change your password.".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscapedPaths {
    Reject,
    Forward,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            user_id_header: http::HeaderName::from_static("x-user-id"),
            user_name_header: http::HeaderName::from_static("x-user-name"),
            user_is_staff_header: http::HeaderName::from_static("x-user-is-staff"),
            user_groups_header: http::HeaderName::from_static("x-user-groups"),
            forward_authorization: true,
            trusted_proxies: Vec::new(),
            escaped_paths: EscapedPaths::Reject,
            assertion_issuer: "gatehouse".into(),
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
    /// `host:port` / `http://host:port` (plain) or `https://host:port` (TLS, verified).
    #[serde(with = "types::as_strings")]
    pub upstreams: Vec<Upstream>,
    /// PEM roots this route's TLS upstreams are verified against; empty: the system roots.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream_ca: String,
    /// mTLS to the upstreams: a PEM certificate chain (with `upstream_client_key`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream_client_cert: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream_client_key: String,
    #[serde(default = "default_auth")]
    pub auth: AuthMode,
    #[serde(default)]
    pub require_staff: bool,
    /// The methods the route takes (`["GET", "HEAD"]`); others get 405 and are never
    /// forwarded. Empty: every method.
    #[serde(default, with = "types::as_strings")]
    pub methods: Vec<http::Method>,
    /// Members of any one of these groups only (403 otherwise); empty: no group needed.
    #[serde(default)]
    pub require_groups: Vec<String>,
    /// Send upstreams a signed `X-Gatehouse-Assertion` of the caller (SPEC §11).
    #[serde(default)]
    pub identity_assertion: bool,
    /// The assertion's `aud`; default: the route's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Remove the prefix from the path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// A browser that is not signed in is sent to the sign-in page (SPEC §15), not a 401.
    #[serde(default)]
    pub login_redirect: bool,
    /// Only callers whose sign-in used a second factor (SPEC §17): a token or session
    /// without one gets 403 `mfa_required` (a browser on a `login_redirect` route is sent to
    /// step up, or to enrol).
    #[serde(default)]
    pub require_mfa: bool,
    /// The credential kinds the route takes (SPEC §19); another kind is treated as absent.
    #[serde(default = "default_accept")]
    pub accept: Vec<CredentialKind>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// `[routes.cors]`: answer real preflights without a token and add CORS headers.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// `rate_limit = { requests, per_seconds, burst, by }` (SPEC §20); none: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// One budget across replicas, through the store (sled, one process: the same as local).
    #[serde(default)]
    pub rate_limit_shared: bool,
}

/// A route's rate limit: the bucket holds `requests + burst` and refills `requests` every
/// `per_seconds`, evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub requests: u64,
    pub per_seconds: u64,
    #[serde(default)]
    pub burst: u64,
    #[serde(default)]
    pub by: RateLimitBy,
}

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBy {
    /// The API key, else the user, else the client address.
    #[default]
    Credential,
    /// The user (anonymous callers: the client address).
    User,
    /// The client address.
    Address,
}

impl RateLimitBy {
    pub fn name(self) -> &'static str {
        match self {
            RateLimitBy::Credential => "credential",
            RateLimitBy::User => "user",
            RateLimitBy::Address => "address",
        }
    }
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

/// A kind of credential a route may accept (`accept = ["jwt", "session", "apikey"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    /// An access token in `Authorization: Bearer`.
    Jwt,
    /// The browser session cookie (SPEC §15).
    Session,
    /// An API key (SPEC §19).
    Apikey,
}

impl CredentialKind {
    /// Every kind, the default of `accept`.
    pub const ALL: [CredentialKind; 3] = [
        CredentialKind::Jwt,
        CredentialKind::Session,
        CredentialKind::Apikey,
    ];

    /// The name in the configuration and in `X-User-Auth`.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::Jwt => "jwt",
            CredentialKind::Session => "session",
            CredentialKind::Apikey => "apikey",
        }
    }
}

fn default_accept() -> Vec<CredentialKind> {
    CredentialKind::ALL.to_vec()
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
            .or_else(|| env::lookup(&env, env::CONFIG_VAR).map(PathBuf::from));
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
        env::apply(&mut value, env)?;
        // The path in front of the message names the key (`server.listen: ...`).
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
                ConfigError::Parse {
                    path: origin.to_string(),
                    message: format!("{}: {}", e.path(), e.inner().message()),
                }
            })?;
        config.validate()?;
        Ok(config)
    }
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
    fn the_session_cookie_prefix_follows_secure_and_domain() {
        let mut w = WebConfig::default();
        assert_eq!(w.cookie_name(), "__Host-gatehouse_session");
        w.cookie_domain = ".example.com".into();
        assert_eq!(w.cookie_name(), "__Secure-gatehouse_session");
        w.cookie_secure = false;
        assert_eq!(w.cookie_name(), "gatehouse_session");
        w.session_cookie = "sid".into();
        w.cookie_secure = true;
        w.cookie_domain.clear();
        assert_eq!(w.cookie_name(), "__Host-sid");
        assert_eq!(
            w.lifetime_seconds(true),
            12 * 3600,
            "no remember-me unless configured"
        );
        w.remember_me_days = 14;
        assert_eq!(w.lifetime_seconds(true), 14 * 86_400);
        assert_eq!(w.lifetime_seconds(false), 12 * 3600);
    }

    #[test]
    fn web_settings_that_cannot_work_are_refused() {
        for (toml, needle) in [
            (
                "[web]\nsession_idle_minutes = 0\n",
                "web.session_idle_minutes",
            ),
            ("[web]\nsession_cookie = \"a b\"\n", "web.session_cookie"),
            (
                "[web]\ncookie_domain = \"example.com\"\n",
                "web.cookie_domain",
            ),
            (
                "[web]\npublic_url = \"https://a.example/x\"\n",
                "web.public_url",
            ),
            (
                "[web]\ntrusted_origins = [\"a.example\"]\n",
                "web.trusted_origins",
            ),
            (
                "[web]\nallowed_redirect_hosts = [\"https://a.example\"]\n",
                "web.allowed_redirect_hosts",
            ),
            ("[web]\ncss_file = \"/nonexistent/x.css\"\n", "web.css_file"),
        ] {
            let e = Config::from_toml_and_env(toml, "t", &[]).expect_err(toml);
            assert!(e.to_string().contains(needle), "{toml}: {e}");
        }
        // Off, nothing of it is checked.
        Config::from_toml_and_env(
            "[web]\nenabled = false\nsession_idle_minutes = 0\n[console]\nenabled = false\n",
            "t",
            &[],
        )
        .expect("pages off");
    }

    #[test]
    fn the_console_needs_the_pages_and_a_prefix_of_its_own() {
        let c = Config::from_toml_and_env("", "t", &[]).expect("defaults");
        assert!(c.console_on());
        assert_eq!(c.console.prefix, "/admin/");
        assert_eq!(c.console.recent_sign_in_seconds(), 600);
        for (toml, needle) in [
            (
                "[web]\nenabled = false\n",
                "console.enabled = true needs web.enabled = true",
            ),
            ("[console]\nprefix = \"admin/\"\n", "console.prefix"),
            (
                "[console]\nprefix = \"/accounts/\"\n",
                "console.prefix = \"/accounts/\" is web.prefix too",
            ),
            (
                "[console]\nprefix = \"/accounts/admin/\"\n",
                "web.prefix = \"/accounts/\" overlaps /accounts/admin/ (the admin console",
            ),
            ("[console]\nprefix = \"/api/\"\n", "overlaps /api/auth/"),
            (
                "[console]\nprefix = \"/staff/\"\n[[routes]]\nprefix = \"/staff/x/\"\nupstreams = [\"127.0.0.1:9\"]\n",
                "is under /staff/ (the admin console",
            ),
        ] {
            let e = Config::from_toml_and_env(toml, "t", &[]).expect_err(toml);
            assert!(e.to_string().contains(needle), "{toml}: {e}");
        }
        let off = Config::from_toml_and_env(
            "[web]\nenabled = false\n[console]\nenabled = false\n",
            "t",
            &[],
        )
        .expect("both off");
        assert!(!off.console_on());
    }

    #[test]
    fn the_console_may_have_a_listener_of_its_own() {
        let c = Config::from_toml_and_env("", "t", &[]).expect("defaults");
        assert_eq!(c.console_listener(), None, "under the public listeners");
        let own = Config::from_toml_and_env("[console]\nlisten = \"127.0.0.1:8090\"\n", "t", &[])
            .expect("its own");
        assert_eq!(own.console_listener(), "127.0.0.1:8090".parse().ok());
        assert!(
            own.explain()
                .contains("console_listen 127.0.0.1:8090 (the admin console /admin/"),
            "{}",
            own.explain()
        );
        assert!(!c.explain().contains("console_listen"));
        for (toml, needle) in [
            ("[console]\nlisten = \"localhost\"\n", "console.listen"),
            (
                "[console]\nlisten = \"127.0.0.1:9091\"\n",
                "server.metrics_listen and console.listen are both 127.0.0.1:9091",
            ),
            (
                "[console]\nlisten = \"127.0.0.1:8080\"\n",
                "server.listen and console.listen are both",
            ),
            (
                "[console]\nenabled = false\nlisten = \"127.0.0.1:8090\"\n",
                "console.listen = \"127.0.0.1:8090\" is set but the console is off",
            ),
        ] {
            let e = Config::from_toml_and_env(toml, "t", &[]).expect_err(toml);
            assert!(e.to_string().contains(needle), "{toml}: {e}");
        }
    }

    #[test]
    fn mail_links_lead_to_the_pages_while_they_are_the_examples() {
        let c = Config::from_toml_and_env("", "t", &[]).expect("defaults");
        let (reset, verify) = c.mail_links();
        assert!(
            reset.ends_with("/accounts/password/reset/confirm/{uid}/{token}/"),
            "{reset}"
        );
        assert!(
            verify.ends_with("/accounts/email/verify/{uid}/{token}/"),
            "{verify}"
        );
        let c = Config::from_toml_and_env(
            "[web]\npublic_url = \"https://auth.example.com\"\n[email]\nverify_email_url = \"https://app.example.com/v/{uid}/{token}\"\n",
            "t",
            &[],
        )
        .expect("config");
        let (reset, verify) = c.mail_links();
        assert_eq!(
            reset,
            "https://auth.example.com/accounts/password/reset/confirm/{uid}/{token}/"
        );
        assert_eq!(
            verify, "https://app.example.com/v/{uid}/{token}",
            "the operator's own"
        );
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml_and_env("", "t", &[]).expect("defaults are valid");
        assert_eq!(
            c.server.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(c.server.tls_listen, None);
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

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        for (toml, key) in [
            ("[server]\nlisten = \"localhost\"\n", "server.listen"),
            ("[log]\nformat = \"xml\"\n", "log.format"),
            ("[jwt]\nalgorithm = \"HS512\"\n", "jwt.algorithm"),
            (
                "[proxy]\ntrusted_proxies = [\"10.0.0.0/40\"]\n",
                "proxy.trusted_proxies",
            ),
            (
                "[proxy]\nuser_id_header = \"bad header\"\n",
                "proxy.user_id_header",
            ),
            ("[cache]\nttl_seconds = 0\n", "cache.ttl_seconds"),
            (
                "[limits]\nclient_read_timeout_seconds = 0\n",
                "limits.client_read_timeout_seconds",
            ),
            (
                "[[routes]]\nprefix = \"/\"\nupstreams = [\"nowhere\"]\n",
                "routes[0].upstreams",
            ),
            (
                "[email]\npassword_reset_url = \"http://app/reset/{token}\"\n",
                "email.password_reset_url",
            ),
            ("[email]\nfrom = \"not an address\"\n", "email.from"),
            ("[email]\nbackend = \"pigeon\"\n", "email.backend"),
            ("[audit]\nretention_days = 0\n", "audit.retention_days"),
            (
                "[audit]\nunaccompanied_per_minute = 0\n",
                "audit.unaccompanied_per_minute",
            ),
            ("[audit]\nsink = \" \"\n", "audit.sink"),
            (
                "[email]\ntoken_lifetime_seconds = 0\n",
                "email.token_lifetime_seconds",
            ),
            ("[email.templates]\nreset_body = \"x\"\n", "reset_body"),
        ] {
            let err = Config::from_toml_and_env(toml, "t", &[]).expect_err(toml);
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn typed_values_come_out_parsed() {
        let c = Config::from_toml_and_env(
            "[proxy]\ntrusted_proxies = [\"10.0.0.0/8\"]\nuser_id_header = \"X-Who\"\n[log]\nformat = \"text\"\n",
            "t",
            &env(&[("GATEHOUSE_PROXY_TRUSTED_PROXIES", "192.168.0.0/16, ::1")]),
        )
        .expect("valid");
        assert_eq!(c.proxy.trusted_proxies.len(), 2);
        assert!(c.proxy.trusted_proxies[1].contains("::1".parse().expect("ip")));
        assert_eq!(c.proxy.user_id_header.as_str(), "x-who");
        assert_eq!(c.proxy.user_groups_header.as_str(), "x-user-groups");
        assert_eq!(c.log.format, LogFormat::Text);
        let twice = "[proxy]\nuser_groups_header = \"X-User-Id\"\n";
        let err = Config::from_toml_and_env(twice, "t", &[]).expect_err("one name twice");
        assert!(err.to_string().contains("configured twice"), "{err}");
    }

    #[test]
    fn the_smtp_url_is_a_secret_of_the_environment_not_a_key() {
        let c = Config::from_toml_and_env(
            "[email]\nbackend = \"smtp\"\nfrom = \"Gate <gate@example.com>\"\n",
            "t",
            &env(&[
                ("GATEHOUSE_EMAIL_SMTP_URL", "smtp://u:p@host:587"),
                ("GATEHOUSE_EMAIL_VERIFY_ON_REGISTER", "true"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.email.backend, MailBackend::Smtp);
        assert!(c.email.verify_on_register);
        assert!(!toml::to_string(&c).expect("serializes").contains("u:p"));
        assert_eq!(
            c.email.templates.password_changed_subject,
            "Password Changed"
        );
    }

    #[test]
    fn tls_keys_are_checked_together() {
        let bad = |toml: &str, says: &str| {
            let err = Config::from_toml_and_env(toml, "t", &[]).expect_err(toml);
            assert!(err.to_string().contains(says), "{toml}: {err}");
        };
        bad("[server]\nlisten = \"\"\n", "nothing would listen");
        bad(
            "[server]\ntls_listen = \"127.0.0.1:8443\"\n",
            "needs server.tls_cert",
        );
        bad(
            "[server]\nhsts_max_age_seconds = 5\n",
            "server.tls_listen is \"\"",
        );
        bad(
            "[server]\ntls_listen = \"127.0.0.1:8080\"\ntls_cert = \"c\"\ntls_key = \"k\"\n",
            "must differ",
        );
        bad(
            "[server]\nlisten = \"\"\ntls_listen = \"127.0.0.1:8443\"\ntls_cert = \"c\"\ntls_key = \"k\"\nredirect_to_https = true\n",
            "redirect_to_https needs the plain listener",
        );
        let route = "[[routes]]\nprefix = \"/\"\nupstreams = [\"127.0.0.1:9000\"]\n";
        bad(
            &format!("{route}upstream_ca = \"ca.pem\"\n"),
            "need an https:// upstream",
        );
        bad(
            "[[routes]]\nprefix = \"/\"\nupstreams = [\"https://a:1\"]\nupstream_client_cert = \"c\"\n",
            "go together",
        );
        let ok = Config::from_toml_and_env(
            "[server]\nlisten = \"\"\ntls_listen = \"0.0.0.0:8443\"\ntls_cert = \"c\"\ntls_key = \"k\"\n[[routes]]\nprefix = \"/\"\nupstreams = [\"https://orders.internal:8443\", \"10.0.0.1:80\"]\n",
            "t",
            &[],
        )
        .expect("TLS only, mixed upstreams");
        assert_eq!(ok.server.listen, None);
        assert!(ok.routes[0].upstreams[0].tls && !ok.routes[0].upstreams[1].tls);
        let text = toml::to_string(&ok).expect("serializes");
        assert!(text.contains("listen = \"\""), "{text}");
        assert!(
            !text.contains("upstream_ca"),
            "empty route TLS keys are not written: {text}"
        );
    }

    #[test]
    fn a_config_written_back_reads_the_same() {
        let c = Config::from_toml_and_env(
            "[[routes]]\nprefix = \"/\"\nupstreams = [\"127.0.0.1:9000\"]\n",
            "t",
            &[],
        )
        .expect("valid");
        let text = toml::to_string(&c).expect("serializes");
        let again = Config::from_toml_and_env(&text, "t", &[]).expect("reads back");
        assert_eq!(toml::to_string(&again).expect("serializes"), text);
    }
}
