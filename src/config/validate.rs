//! What serde cannot check (ranges, combinations, route shapes), and `check-config`'s
//! explanation of what a config sets up. Every message names the key and says what to fix.

use super::types::SmtpUrl;
use super::{Config, ConfigError};

/// `Err` with the message unless `ok`.
fn require(ok: bool, message: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid(message()))
    }
}

/// `key` must be at least `min`.
/// The most slots `[jwt] verified_cache` may ask for: ~1 GiB if every slot held the longest
/// token it keeps.
const MAX_VERIFIED_CACHE: usize = 1 << 20;

fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    require(value >= min, || {
        format!("{key} = {value}: must be at least {min}")
    })
}

/// `email.from` is an address mail can be sent from (`a@b` or `Name <a@b>`), as lettre,
/// which sends it, reads one.
fn valid_from(from: &str) -> bool {
    from.parse::<lettre::message::Mailbox>().is_ok()
}

/// An SMTP URL without its user and password, for `check-config`.
fn describe_smtp_url(url: &str) -> String {
    match SmtpUrl::parse(url) {
        Ok(t) => t.describe(),
        Err(e) => format!("an unusable URL ({e})"),
    }
}

/// A route's TLS keys make sense only together and with an `https://` upstream.
fn validate_route_tls(i: usize, route: &super::RouteConfig) -> Result<(), ConfigError> {
    let prefix = &route.prefix;
    require(
        route.upstream_client_cert.is_empty() == route.upstream_client_key.is_empty(),
        || {
            format!(
                "routes[{i}] ({prefix}): upstream_client_cert and upstream_client_key go together"
            )
        },
    )?;
    let tls_keys = !route.upstream_ca.is_empty() || !route.upstream_client_cert.is_empty();
    require(!tls_keys || route.upstreams.iter().any(|u| u.tls), || {
        format!(
            "routes[{i}] ({prefix}): upstream_ca / upstream_client_cert need an https:// upstream"
        )
    })
}

/// The most a rate limit's numbers may be: a bucket refilled over at most a year, at most a
/// billion requests (the arithmetic in nanoseconds stays far from overflowing).
const RATE_LIMIT_MAX_SECONDS: u64 = 366 * 86_400;
const RATE_LIMIT_MAX_REQUESTS: u64 = 1_000_000_000;

/// A route's `rate_limit` (SPEC §20): requests and per_seconds at least 1, within bounds;
/// `rate_limit_shared` only with a limit.
fn validate_rate_limit(i: usize, route: &super::RouteConfig) -> Result<(), ConfigError> {
    let prefix = &route.prefix;
    let Some(limit) = &route.rate_limit else {
        return require(!route.rate_limit_shared, || {
            format!(
                "routes[{i}] ({prefix}): rate_limit_shared = true needs a rate_limit = {{ requests, per_seconds, burst, by }} to share"
            )
        });
    };
    let range = |key: &str, value: u64, max: u64| {
        require((1..=max).contains(&value), || {
            format!("routes[{i}] ({prefix}): rate_limit.{key} = {value}: must be from 1 to {max}")
        })
    };
    range("requests", limit.requests, RATE_LIMIT_MAX_REQUESTS)?;
    range("per_seconds", limit.per_seconds, RATE_LIMIT_MAX_SECONDS)?;
    require(limit.burst <= RATE_LIMIT_MAX_REQUESTS, || {
        format!(
            "routes[{i}] ({prefix}): rate_limit.burst = {}: must be at most {RATE_LIMIT_MAX_REQUESTS}",
            limit.burst
        )
    })
}

impl Config {
    /// Refuses out-of-range values instead of clamping them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        self.validate_listeners()?;
        at_least("server.threads", s.threads as u64, 1)?;
        at_least(
            "limits.max_header_count",
            self.limits.max_header_count as u64,
            8,
        )?;
        at_least(
            "limits.max_header_bytes",
            self.limits.max_header_bytes as u64,
            1024,
        )?;
        at_least(
            "limits.client_read_timeout_seconds",
            self.limits.client_read_timeout_seconds,
            1,
        )?;
        at_least("throttle.max_keys", self.throttle.max_keys, 1)?;
        at_least(
            "limits.rate_limit_buckets",
            self.limits.rate_limit_buckets,
            1,
        )?;
        at_least("store.replicas", self.store.replicas, 1)?;
        at_least("throttle.window_seconds", self.throttle.window_seconds, 1)?;
        let jwt = &self.jwt;
        require(
            jwt.algorithm.is_symmetric()
                || (!jwt.private_key_file.is_empty() && !jwt.key_id.is_empty()),
            || {
                format!(
                    "jwt.algorithm = {:?} needs jwt.private_key_file and jwt.key_id",
                    jwt.algorithm.to_string()
                )
            },
        )?;
        at_least(
            "jwt.access_lifetime_seconds",
            jwt.access_lifetime_seconds,
            1,
        )?;
        at_least(
            "jwt.refresh_lifetime_seconds",
            jwt.refresh_lifetime_seconds,
            1,
        )?;
        require(jwt.verified_cache <= MAX_VERIFIED_CACHE, || {
            format!(
                "jwt.verified_cache = {}: must be at most {MAX_VERIFIED_CACHE} (slots of up to 1 KiB each)",
                jwt.verified_cache
            )
        })?;
        let p = &self.passwords;
        at_least(
            "passwords.argon2_iterations",
            u64::from(p.argon2_iterations),
            1,
        )?;
        at_least(
            "passwords.argon2_parallelism",
            u64::from(p.argon2_parallelism),
            1,
        )?;
        require(p.argon2_memory_kib >= 8 * p.argon2_parallelism, || {
            format!(
                "passwords.argon2_memory_kib = {}: must be at least 8 KiB per lane ({} KiB)",
                p.argon2_memory_kib,
                8 * p.argon2_parallelism
            )
        })?;
        at_least("passwords.hash_queue", p.hash_queue as u64, 1)?;
        at_least("cache.capacity", self.cache.capacity, 1)?;
        at_least("cache.ttl_seconds", self.cache.ttl_seconds, 1)?;
        at_least("store.cache_capacity_mib", self.store.cache_capacity_mib, 1)?;
        at_least("store.pool_size", self.store.pool_size as u64, 1)?;
        at_least("store.freshness_ms", self.store.freshness_ms, 1)?;
        at_least("api.max_body_bytes", self.api.max_body_bytes as u64, 1)?;
        at_least("api.max_page_size", self.api.max_page_size as u64, 1)?;
        self.validate_mounts()?;
        self.validate_web()?;
        at_least("audit.retention_days", self.audit.retention_days, 1)?;
        at_least(
            "mfa.failures_per_hour",
            u64::from(self.mfa.failures_per_hour),
            1,
        )?;
        at_least("mfa.lock_minutes", self.mfa.lock_minutes, 1)?;
        at_least("mfa.pending_minutes", self.mfa.pending_minutes, 1)?;
        at_least(
            "apikeys.max_lifetime_days",
            self.apikeys.max_lifetime_days,
            1,
        )?;
        require(
            self.apikeys.max_lifetime_days <= super::APIKEY_LIFETIME_DAYS_MAX,
            || {
                format!(
                    "apikeys.max_lifetime_days = {}: must be at most {} (ten years); a key that must live longer is a password",
                    self.apikeys.max_lifetime_days,
                    super::APIKEY_LIFETIME_DAYS_MAX
                )
            },
        )?;
        at_least(
            "throttle.username_window_seconds",
            self.throttle.username_window_seconds,
            1,
        )?;
        at_least(
            "audit.unaccompanied_per_minute",
            u64::from(self.audit.unaccompanied_per_minute),
            1,
        )?;
        require(!self.audit.sink.trim().is_empty(), || {
            "audit.sink is empty: use \"stdout\", \"none\" or a file path".to_string()
        })?;
        let proxy = &self.proxy;
        let identity = [
            &proxy.user_id_header,
            &proxy.user_name_header,
            &proxy.user_is_staff_header,
            &proxy.user_groups_header,
        ];
        for (i, name) in identity.iter().enumerate() {
            require(!identity[..i].contains(name), || {
                format!("proxy: the identity header {name} is configured twice")
            })?;
        }
        let key_header = &self.apikeys.header;
        require(
            key_header != http::header::AUTHORIZATION && !identity.contains(&key_header),
            || {
                format!(
                    "apikeys.header = {key_header:?} must not be Authorization or an identity header"
                )
            },
        )?;
        for (i, route) in self.routes.iter().enumerate() {
            require(!route.accept.is_empty(), || {
                format!(
                    "routes[{i}] ({}): accept is empty: list some of \"jwt\", \"session\", \"apikey\"",
                    route.prefix
                )
            })?;
            for (j, kind) in route.accept.iter().enumerate() {
                require(!route.accept[..j].contains(kind), || {
                    format!(
                        "routes[{i}] ({}): accept lists \"{}\" twice",
                        route.prefix,
                        kind.name()
                    )
                })?;
            }
            require(route.prefix.starts_with('/'), || {
                format!(
                    "routes[{i}].prefix = {:?} must start with '/'",
                    route.prefix
                )
            })?;
            require(!route.upstreams.is_empty(), || {
                format!("routes[{i}] ({}) needs at least one upstream", route.prefix)
            })?;
            at_least(
                &format!("routes[{i}].connect_timeout_ms"),
                route.connect_timeout_ms,
                1,
            )?;
            at_least(
                &format!("routes[{i}].read_timeout_ms"),
                route.read_timeout_ms,
                1,
            )?;
            require(
                route.require_groups.is_empty() || route.auth != super::AuthMode::Public,
                || {
                    format!(
                        "routes[{i}] ({}): require_groups needs a caller, not auth = \"public\"",
                        route.prefix
                    )
                },
            )?;
            if let Some(cors) = &route.cors {
                require(
                    !(cors.allow_credentials && cors.allowed_origins.iter().any(|o| o == "*")),
                    || {
                        format!("routes[{i}].cors: allowed_origins = [\"*\"] cannot be combined with allow_credentials")
                    },
                )?;
            }
            validate_route_tls(i, route)?;
            validate_rate_limit(i, route)?;
            if let Some(owned) = self
                .owned_prefixes()
                .into_iter()
                .find(|o| route.prefix.starts_with(&o.prefix))
            {
                return Err(ConfigError::Invalid(format!(
                    "routes[{i}] ({}) is under {} ({}), which gatehouse answers itself: no request would reach this route; move the route or the prefix",
                    route.prefix, owned.prefix, owned.what
                )));
            }
            require(
                !self.routes[..i].iter().any(|r| r.prefix == route.prefix),
                || format!("routes: prefix {:?} appears twice", route.prefix),
            )?;
        }
        self.validate_email()?;
        Ok(())
    }

    /// `api.prefix`, `web.prefix` and `console.prefix` are usable mount points, the console
    /// has the pages to sign in with, and neither the pages nor the console cover another
    /// owned prefix (nor sit under one).
    fn validate_mounts(&self) -> Result<(), ConfigError> {
        for (key, prefix) in [
            ("api.prefix", &self.api.prefix),
            ("web.prefix", &self.web.prefix),
            ("console.prefix", &self.console.prefix),
        ] {
            if let Some(problem) = super::owned::mount_problem(prefix) {
                return Err(ConfigError::Invalid(format!(
                    "{key} = {prefix:?}: {problem}"
                )));
            }
        }
        require(!self.console.enabled || self.web.enabled, || {
            "console.enabled = true needs web.enabled = true: the console signs staff in with the pages' sign-in (SPEC §15); turn the pages on, or set [console] enabled = false".to_string()
        })?;
        if !self.web.enabled {
            return Ok(());
        }
        let mut mounts = vec![("web.prefix", &self.web.prefix, "the pages")];
        if self.console_on() {
            require(self.console.prefix != self.web.prefix, || {
                format!(
                    "console.prefix = {:?} is web.prefix too: give the console a prefix of its own",
                    self.console.prefix
                )
            })?;
            mounts.push(("console.prefix", &self.console.prefix, "the console"));
        }
        for (key, mount, what) in mounts {
            for other in self.owned_prefixes().iter().filter(|o| &o.prefix != mount) {
                require(
                    !mount.starts_with(&other.prefix) && !other.prefix.starts_with(mount.as_str()),
                    || {
                        format!(
                            "{key} = {mount:?} overlaps {} ({}): give {what} a prefix of their own",
                            other.prefix, other.what
                        )
                    },
                )?;
            }
        }
        Ok(())
    }

    /// `[web]`: usable session limits, a cookie browsers accept, URLs and origins that parse.
    fn validate_web(&self) -> Result<(), ConfigError> {
        let w = &self.web;
        if !w.enabled {
            return Ok(());
        }
        at_least("web.session_idle_minutes", w.session_idle_minutes, 1)?;
        at_least("web.session_absolute_hours", w.session_absolute_hours, 1)?;
        let bare = w.cookie_name();
        require(
            !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            || {
                format!(
                    "web.session_cookie = {:?}: letters, digits, '-', '_' and '.' only",
                    w.session_cookie
                )
            },
        )?;
        if let Some(domain) = w.cookie_domain() {
            require(
                domain.starts_with('.') && domain.len() > 2 && !domain.contains(['/', ':', ' ']),
                || format!("web.cookie_domain = {domain:?}: a domain such as \".example.com\""),
            )?;
        }
        if let Some(public) = w.public_url() {
            let ok = url::Url::parse(public).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
            });
            require(ok, || {
                format!("web.public_url = {public:?}: scheme and host only, e.g. \"https://auth.example.com\"")
            })?;
        }
        for origin in &w.trusted_origins {
            let ok = origin.split_once("://").is_some_and(|(scheme, host)| {
                matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
            });
            require(ok, || {
                format!("web.trusted_origins: {origin:?} is not an origin (\"https://app.example.com\", \"https://*.example.com\")")
            })?;
        }
        for host in &w.allowed_redirect_hosts {
            require(
                !host.is_empty() && !host.contains(['/', ':', ' ', '@']),
                || {
                    format!("web.allowed_redirect_hosts: {host:?} is not a host name (\"app.example.com\" or \".example.com\")")
                },
            )?;
        }
        if !w.css_file.is_empty() {
            std::fs::metadata(&w.css_file).map_err(|e| {
                ConfigError::Invalid(format!("web.css_file = {:?}: {e}", w.css_file))
            })?;
        }
        Ok(())
    }

    /// `[email]`: the links carry both placeholders, the numbers are usable, `from` parses.
    fn validate_email(&self) -> Result<(), ConfigError> {
        let e = &self.email;
        for (key, url) in [
            ("email.password_reset_url", &e.password_reset_url),
            ("email.verify_email_url", &e.verify_email_url),
        ] {
            require(url.contains("{uid}") && url.contains("{token}"), || {
                format!("{key} = {url:?}: must contain {{uid}} and {{token}} (the link the mail carries)")
            })?;
        }
        require(valid_from(&e.from), || {
            format!(
                "email.from = {:?}: not a mail address (e.g. \"noreply@example.com\" or \"Gatehouse <noreply@example.com>\")",
                e.from
            )
        })?;
        at_least("email.token_lifetime_seconds", e.token_lifetime_seconds, 1)?;
        at_least(
            "email.max_per_address_per_hour",
            u64::from(e.max_per_address_per_hour),
            1,
        )?;
        at_least("email.max_per_hour", u64::from(e.max_per_hour), 1)?;
        at_least("email.smtp_timeout_seconds", e.smtp_timeout_seconds, 1)?;
        at_least("email.retry_for_seconds", e.retry_for_seconds, 1)?;
        require(e.answer_floor_ms <= 10_000, || {
            format!(
                "email.answer_floor_ms = {}: at most 10000 (it delays every reset and resend answer)",
                e.answer_floor_ms
            )
        })?;
        Ok(())
    }

    /// The listeners and their TLS settings (SPEC §14); the files themselves are read and
    /// checked where they are loaded (`tls.rs`).
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        require(s.listen.is_some() || s.tls_listen.is_some(), || {
            "server.listen and server.tls_listen are both \"\": nothing would listen".to_string()
        })?;
        let named = [
            ("server.listen", s.listen),
            ("server.tls_listen", s.tls_listen),
            ("server.metrics_listen", Some(s.metrics_listen)),
            ("console.listen", self.console.listen),
        ];
        for (i, (key, addr)) in named.iter().enumerate() {
            for (other, same) in &named[..i] {
                if let (Some(a), Some(b)) = (addr, same) {
                    require(a != b, || {
                        format!("{other} and {key} are both {a}: they must differ")
                    })?;
                }
            }
        }
        match s.tls_listen {
            Some(addr) => require(!s.tls_cert.is_empty() && !s.tls_key.is_empty(), || {
                format!("server.tls_listen = \"{addr}\" needs server.tls_cert and server.tls_key (PEM files)")
            })?,
            None => {
                for (key, set) in [
                    ("server.tls_cert", !s.tls_cert.is_empty()),
                    ("server.tls_key", !s.tls_key.is_empty()),
                    ("server.redirect_to_https", s.redirect_to_https),
                    ("server.hsts_max_age_seconds", s.hsts_max_age_seconds > 0),
                ] {
                    require(!set, || {
                        format!("{key} is set but server.tls_listen is \"\": set both or neither")
                    })?;
                }
            }
        }
        if let Some(addr) = self.console.listen {
            require(self.console_on(), || {
                format!("console.listen = \"{addr}\" is set but the console is off (console.enabled and web.enabled): set it to \"\" or turn the console on")
            })?;
        }
        require(!s.redirect_to_https || s.listen.is_some(), || {
            "server.redirect_to_https needs the plain listener (server.listen) it redirects from"
                .to_string()
        })?;
        Ok(())
    }

    /// A human-readable summary for `check-config`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let on_off = |b: bool| if b { "on" } else { "off" };
        let s = &self.server;
        let listen = s.listen.map_or("off".to_string(), |a| a.to_string());
        out.push_str(&format!(
            "listen {listen} (API + proxy, plain HTTP{}), metrics {}\n",
            if s.redirect_to_https {
                ": every request redirected to HTTPS with 308"
            } else {
                ""
            },
            s.metrics_listen
        ));
        if let Some(console) = self.console_listener() {
            out.push_str(&format!(
                "console_listen {console} (the admin console {} and the pages {} it signs in with, plain HTTP; the public listeners answer 404 under {})\n",
                self.console.prefix, self.web.prefix, self.console.prefix
            ));
        }
        if let Some(tls) = s.tls_listen {
            out.push_str(&format!(
                "tls_listen {tls} (API + proxy over TLS 1.2/1.3, ALPN h2 and http/1.1), certificate {}, key {}, HSTS {}\n",
                s.tls_cert,
                s.tls_key,
                match s.hsts_max_age_seconds {
                    0 => "off".to_string(),
                    n => format!("max-age={n}"),
                }
            ));
        }
        let owned: Vec<String> = self
            .owned_prefixes()
            .iter()
            .map(|o| format!("{} ({})", o.prefix, o.what))
            .collect();
        out.push_str(&format!(
            "answered by gatehouse itself, never routed: {}\n",
            owned.join(", ")
        ));
        match self.store.backend {
            super::StoreBackend::Sled => out.push_str(&format!(
                "store: sled in {} (page cache {} MiB)\n",
                self.server.data_dir.display(),
                self.store.cache_capacity_mib
            )),
            super::StoreBackend::Postgres => out.push_str(&format!(
                "store: postgres from ${} (pool {}, freshness {} ms)\n",
                super::env::STORE_URL_VAR,
                self.store.pool_size,
                self.store.freshness_ms
            )),
        }
        out.push_str(&format!(
            "tokens: {}, access {} s, refresh {} s, rotation {}\n",
            self.jwt.algorithm,
            self.jwt.access_lifetime_seconds,
            self.jwt.refresh_lifetime_seconds,
            on_off(self.jwt.rotate_refresh_tokens)
        ));
        out.push_str(&format!(
            "passwords: argon2id m={} KiB t={} p={}, queue {}\n",
            self.passwords.argon2_memory_kib,
            self.passwords.argon2_iterations,
            self.passwords.argon2_parallelism,
            self.passwords.hash_queue
        ));
        let e = &self.email;
        let backend = match e.backend {
            super::MailBackend::Console => "console (each mail printed on stdout)".to_string(),
            super::MailBackend::Smtp => match std::env::var(super::env::EMAIL_SMTP_URL_VAR) {
                Ok(url) => format!("smtp via {}", describe_smtp_url(&url)),
                Err(_) => format!("smtp, but {} is not set", super::env::EMAIL_SMTP_URL_VAR),
            },
            super::MailBackend::None => "none (no mail is sent)".to_string(),
        };
        out.push_str(&format!(
            "mail: {backend}, from {}, links live {} s, verify on register {}, verified email required {}, {} per address per hour\n",
            e.from,
            e.token_lifetime_seconds,
            on_off(e.verify_on_register),
            on_off(e.require_verified_email),
            e.max_per_address_per_hour
        ));
        let m = &self.mfa;
        out.push_str(&format!(
            "second factor: issuer {:?}, locked for {} min after {} wrong codes in an hour, browser step {} min; console require_mfa {}, admin API require_mfa {}\n",
            if m.issuer.is_empty() { &self.web.brand_name } else { &m.issuer },
            m.lock_minutes,
            m.failures_per_hour,
            m.pending_minutes,
            on_off(self.console.require_mfa),
            on_off(self.admin_api.require_mfa)
        ));
        for r in &self.routes {
            let upstreams: Vec<String> = r.upstreams.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "route {} -> {} (auth {:?}, accepts {}{}{})\n",
                r.prefix,
                upstreams.join(", "),
                r.auth,
                r.accept
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                if r.require_staff { ", staff only" } else { "" },
                if r.require_mfa {
                    ", second factor required"
                } else {
                    ""
                }
            ));
            if let Some(limit) = &r.rate_limit {
                out.push_str(&format!(
                    "  rate limit: {}\n",
                    describe_rate_limit(limit, r.rate_limit_shared)
                ));
            }
            if r.upstreams.iter().any(|u| u.tls) {
                out.push_str(&format!(
                    "  TLS upstreams: SNI and certificate name from each host, verified against {}{}\n",
                    if r.upstream_ca.is_empty() {
                        "the system roots".to_string()
                    } else {
                        r.upstream_ca.clone()
                    },
                    if r.upstream_client_cert.is_empty() {
                        String::new()
                    } else {
                        format!(", client certificate {} (mTLS)", r.upstream_client_cert)
                    }
                ));
            }
        }
        out
    }
}

/// `100 requests per 60 s, burst 20, by credential (local)`: for `check-config` and
/// `routes explain`.
pub fn describe_rate_limit(limit: &super::RateLimitConfig, shared: bool) -> String {
    format!(
        "{} requests per {} s, burst {}, by {} ({})",
        limit.requests,
        limit.per_seconds,
        limit.burst,
        limit.by.name(),
        if shared {
            "shared by the replicas through the store"
        } else {
            "local to this process"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_config_describes_the_smtp_url_without_its_login() {
        assert_eq!(
            describe_smtp_url("smtp://u:secret@mail.example.com"),
            "mail.example.com:587 (STARTTLS, with a login)"
        );
        assert_eq!(
            describe_smtp_url("smtps://mail.example.com"),
            "mail.example.com:465 (TLS)"
        );
        assert_eq!(
            describe_smtp_url("http://u:secret@x"),
            "an unusable URL (scheme \"http\": use smtp:// or smtps://)"
        );
    }

    #[test]
    fn an_api_key_lifetime_is_one_day_to_ten_years() {
        let load = |days: &str| {
            Config::from_toml_and_env(
                &format!("[apikeys]\nmax_lifetime_days = {days}\n"),
                "t",
                &[],
            )
        };
        assert_eq!(
            load("365").map(|c| c.apikeys.max_lifetime_seconds()).ok(),
            Some(365 * 86_400)
        );
        assert!(load("3650").is_ok());
        for bad in ["0", "3651"] {
            let e = load(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{bad} days accepted"));
            assert!(e.contains("apikeys.max_lifetime_days"), "{bad}: {e}");
        }
        assert_eq!(Config::default().apikeys.max_lifetime_days, 365);
    }

    #[test]
    fn from_is_an_address_or_a_named_address() {
        assert!(valid_from("noreply@example.com"));
        assert!(valid_from("Gatehouse <noreply@example.com>"));
        assert!(!valid_from("not an address"));
    }

    #[test]
    fn rate_limits_are_checked_with_a_message_naming_the_key() {
        let load = |limit: &str| {
            Config::from_toml_and_env(
                &format!("[[routes]]\nprefix = \"/a/\"\nupstreams = [\"127.0.0.1:9\"]\n{limit}\n"),
                "t",
                &[],
            )
            .map(|c| c.explain())
            .map_err(|e| e.to_string())
        };
        let fine = load("rate_limit = { requests = 100, per_seconds = 60, burst = 20 }");
        assert!(
            fine.as_ref().is_ok_and(|t| {
                t.contains(
                "rate limit: 100 requests per 60 s, burst 20, by credential (local to this process)"
            )
            }),
            "{fine:?}"
        );
        for (bad, says) in [
            (
                "rate_limit = { requests = 0, per_seconds = 60 }",
                "rate_limit.requests = 0: must be from 1",
            ),
            (
                "rate_limit = { requests = 5, per_seconds = 0 }",
                "rate_limit.per_seconds = 0: must be from 1",
            ),
            (
                "rate_limit = { requests = 5, per_seconds = 1, by = \"ip\" }",
                "unknown variant `ip`, expected one of `credential`, `user`, `address`",
            ),
            (
                "rate_limit_shared = true",
                "rate_limit_shared = true needs a rate_limit",
            ),
        ] {
            let e = load(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
