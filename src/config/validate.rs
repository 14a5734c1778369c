//! What serde cannot check (ranges, combinations, route shapes), and `check-config`'s
//! explanation of what a config sets up. Every message names the key and says what to fix.

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
fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    require(value >= min, || {
        format!("{key} = {value}: must be at least {min}")
    })
}

impl Config {
    /// Refuses out-of-range values instead of clamping them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        require(s.listen != s.metrics_listen, || {
            format!(
                "server.listen and server.metrics_listen are both {}: they must differ",
                s.listen
            )
        })?;
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
        for (i, route) in self.routes.iter().enumerate() {
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
            require(
                !self.routes[..i].iter().any(|r| r.prefix == route.prefix),
                || format!("routes: prefix {:?} appears twice", route.prefix),
            )?;
        }
        self.validate_email()?;
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
        require(crate::mail::valid_from(&e.from), || {
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

    /// A human-readable summary for `check-config`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let on_off = |b: bool| if b { "on" } else { "off" };
        out.push_str(&format!(
            "listen {} (API + proxy), metrics {}\n",
            self.server.listen, self.server.metrics_listen
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
                Ok(url) => format!("smtp via {}", crate::mail::describe_smtp_url(&url)),
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
        for r in &self.routes {
            let upstreams: Vec<String> = r.upstreams.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "route {} -> {} (auth {:?}{})\n",
                r.prefix,
                upstreams.join(", "),
                r.auth,
                if r.require_staff { ", staff only" } else { "" }
            ));
        }
        out
    }
}
