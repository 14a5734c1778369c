//! Abuse throttling: fixed-window counters per key (a username, a client address), held in a
//! bounded moka cache so a flood of distinct keys cannot grow memory without limit.

use crate::config::ThrottleConfig;
use moka::ops::compute::Op;
use moka::sync::Cache;
use std::net::IpAddr;
use std::time::Duration;

/// The throttling policy of the user API: which keys count what, against which limits.
pub struct Throttle {
    limiter: Limiter,
    config: ThrottleConfig,
}

impl Throttle {
    pub fn new(config: &ThrottleConfig) -> Throttle {
        Throttle {
            limiter: Limiter::new(config.max_keys, config.window_seconds),
            config: config.clone(),
        }
    }

    fn login_keys(&self, username: &str, client: Option<IpAddr>) -> Vec<(String, u32)> {
        let c = &self.config;
        let mut keys = vec![(
            format!("login-user:{}", username.to_lowercase()),
            c.login_failures_per_username,
        )];
        if let Some(ip) = client {
            keys.push((format!("login-addr:{ip}"), c.login_failures_per_address));
        }
        keys
    }

    /// `Err(seconds)`: too many failed logins for this username or from this address.
    pub fn check_login(&self, username: &str, client: Option<IpAddr>, now: u64) -> Result<(), u64> {
        if !self.config.enabled {
            return Ok(());
        }
        self.login_keys(username, client)
            .iter()
            .try_for_each(|(key, limit)| self.limiter.check(key, *limit, now))
    }

    pub fn login_failed(&self, username: &str, client: Option<IpAddr>, now: u64) {
        if self.config.enabled {
            for (key, _) in self.login_keys(username, client) {
                self.limiter.hit(&key, now);
            }
        }
    }

    /// Counts a registration attempt from `client`; `Err(seconds)` when over the limit.
    pub fn registration(&self, client: Option<IpAddr>, now: u64) -> Result<(), u64> {
        let (Some(ip), true) = (client, self.config.enabled) else {
            return Ok(());
        };
        let key = format!("register-addr:{ip}");
        self.limiter
            .check(&key, self.config.registrations_per_address, now)?;
        self.limiter.hit(&key, now);
        Ok(())
    }
}

impl Throttle {
    /// Counts a password-reset or verification-resend request for `email` from `client`
    /// (the login limits apply: per address as per username, per client as per client);
    /// `Err(seconds)` when over either.
    pub fn mail_request(&self, email: &str, client: Option<IpAddr>, now: u64) -> Result<(), u64> {
        if !self.config.enabled {
            return Ok(());
        }
        let c = &self.config;
        let mut keys = vec![(
            format!("mail-to:{}", email.to_lowercase()),
            c.login_failures_per_username,
        )];
        if let Some(ip) = client {
            keys.push((format!("mail-addr:{ip}"), c.login_failures_per_address));
        }
        keys.iter()
            .try_for_each(|(key, limit)| self.limiter.check(key, *limit, now))?;
        for (key, _) in &keys {
            self.limiter.hit(key, now);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: u64,
    count: u32,
}

pub struct Limiter {
    counts: Cache<String, Window>,
    window: u64,
}

impl Limiter {
    pub fn new(max_keys: u64, window_seconds: u64) -> Limiter {
        let window = window_seconds.max(1);
        Limiter {
            counts: Cache::builder()
                .max_capacity(max_keys)
                .time_to_live(Duration::from_secs(window))
                .build(),
            window,
        }
    }

    /// `Err(seconds)` when `key` already reached `limit` in the current window: the caller
    /// answers 429 with `Retry-After: seconds`.
    pub fn check(&self, key: &str, limit: u32, now: u64) -> Result<(), u64> {
        match self.counts.get(key) {
            Some(w) if now < w.start + self.window && w.count >= limit => {
                Err((w.start + self.window - now).max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts one event for `key`.
    pub fn hit(&self, key: &str, now: u64) {
        let window = self.window;
        self.counts
            .entry(key.to_string())
            .and_compute_with(|current| {
                let next = match current.map(|e| e.into_value()) {
                    Some(w) if now < w.start + window => Window {
                        start: w.start,
                        count: w.count.saturating_add(1),
                    },
                    _ => Window {
                        start: now,
                        count: 1,
                    },
                };
                Op::Put(next)
            });
    }

    /// Entries held (for tests of the memory bound).
    pub fn len(&self) -> u64 {
        self.counts.run_pending_tasks();
        self.counts.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_then_retry_after_then_new_window() {
        let l = Limiter::new(100, 60);
        for _ in 0..3 {
            assert_eq!(l.check("u", 3, 1000), Ok(()));
            l.hit("u", 1000);
        }
        assert_eq!(l.check("u", 3, 1010), Err(50));
        assert_eq!(l.check("other", 3, 1010), Ok(()));
        assert_eq!(l.check("u", 3, 1060), Ok(()));
    }

    #[test]
    fn memory_is_bounded_by_max_keys() {
        let l = Limiter::new(100, 60);
        for i in 0..10_000 {
            l.hit(&format!("user{i}"), 1);
        }
        assert!(l.len() <= 110, "{}", l.len());
    }
}
