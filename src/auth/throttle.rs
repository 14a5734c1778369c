//! Abuse throttling: fixed-window counters per key (a username, a client address), held in a
//! bounded moka cache so a flood of distinct keys cannot grow memory without limit; with a
//! store that shares counters (several replicas on PostgreSQL) the windows live there, so N
//! replicas do not grant N times the attempts.

use crate::config::ThrottleConfig;
use crate::store::UserStore;
use moka::ops::compute::Op;
use moka::sync::Cache;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The throttling policy of the user API: which keys count what, against which limits.
pub struct Throttle {
    /// Counters of `window_seconds`.
    limiter: Limiter,
    /// Counters of `username_window_seconds` (the per-username bound on spread attacks).
    long: Limiter,
    config: ThrottleConfig,
    /// Where shared windows are counted (a store that keeps none falls through to memory).
    shared: Option<Arc<dyn UserStore>>,
}

impl Throttle {
    pub fn new(config: &ThrottleConfig) -> Throttle {
        Throttle {
            limiter: Limiter::new(config.max_keys, config.window_seconds),
            long: Limiter::new(config.max_keys, config.username_window_seconds),
            config: config.clone(),
            shared: None,
        }
    }

    /// Counts in `store` when it shares counters between processes.
    pub fn shared_by(mut self, store: Arc<dyn UserStore>) -> Throttle {
        self.shared = Some(store);
        self
    }

    fn seconds(&self, window: Window) -> u64 {
        match window {
            Window::Short => self.config.window_seconds.max(1),
            Window::Long => self.config.username_window_seconds.max(1),
        }
    }

    fn limiter(&self, window: Window) -> &Limiter {
        match window {
            Window::Short => &self.limiter,
            Window::Long => &self.long,
        }
    }

    /// The shared window of `key` (counting one event first when `count`); `None` when
    /// there is no shared store or it cannot answer (then this process's memory counts: a
    /// failing database fails the login anyway).
    async fn shared_window(
        &self,
        key: &str,
        window: Window,
        now: u64,
        count: bool,
    ) -> Option<(u64, u32)> {
        let store = self.shared.as_ref()?;
        match store
            .throttle_window(key, now, self.seconds(window), count)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                log::warn!("shared throttle counters unavailable, counting in memory: {e}");
                None
            }
        }
    }

    async fn check(&self, key: &str, limit: u32, window: Window, now: u64) -> Result<(), u64> {
        let seconds = self.seconds(window);
        match self.shared_window(key, window, now, false).await {
            Some((start, count)) if now < start + seconds && count >= limit => {
                Err((start + seconds - now).max(1))
            }
            Some(_) => Ok(()),
            None => self.limiter(window).check(key, limit, now),
        }
    }

    async fn hit(&self, key: &str, window: Window, now: u64) {
        if self.shared_window(key, window, now, true).await.is_none() {
            self.limiter(window).hit(key, now);
        }
    }

    /// The counters a failed sign-in adds to (SPEC §17): per username and client address
    /// (a stranger's failures lock only the stranger's address), per username from anywhere
    /// over the long window (an attack spread over many addresses), per address.
    fn login_keys(&self, username: &str, client: Option<IpAddr>) -> Vec<(String, u32, Window)> {
        let c = &self.config;
        let name = username.to_lowercase();
        let mut keys = vec![(
            format!("login-user:{name}"),
            c.login_failures_per_username,
            Window::Long,
        )];
        if let Some(ip) = client {
            keys.push((
                format!("login-pair:{ip}:{name}"),
                c.login_failures_per_username_address,
                Window::Short,
            ));
            keys.push((
                format!("login-addr:{ip}"),
                c.login_failures_per_address,
                Window::Short,
            ));
        } else {
            // No address to tell callers apart: the username's short limit is all there is.
            keys.push((
                format!("login-pair::{name}"),
                c.login_failures_per_username_address,
                Window::Short,
            ));
        }
        keys
    }

    /// `Err(seconds)`: too many failed logins for this username or from this address.
    pub async fn check_login(
        &self,
        username: &str,
        client: Option<IpAddr>,
        now: u64,
    ) -> Result<(), u64> {
        if !self.config.enabled {
            return Ok(());
        }
        for (key, limit, window) in self.login_keys(username, client) {
            self.check(&key, limit, window, now).await?;
        }
        Ok(())
    }

    pub async fn login_failed(&self, username: &str, client: Option<IpAddr>, now: u64) {
        if self.config.enabled {
            for (key, _, window) in self.login_keys(username, client) {
                self.hit(&key, window, now).await;
            }
        }
    }

    /// Counts a registration attempt from `client`; `Err(seconds)` when over the limit.
    pub async fn registration(&self, client: Option<IpAddr>, now: u64) -> Result<(), u64> {
        let (Some(ip), true) = (client, self.config.enabled) else {
            return Ok(());
        };
        let key = format!("register-addr:{ip}");
        self.check(
            &key,
            self.config.registrations_per_address,
            Window::Short,
            now,
        )
        .await?;
        self.hit(&key, Window::Short, now).await;
        Ok(())
    }
}

impl Throttle {
    /// Counts a password-reset or verification-resend request for `email` from `client`
    /// (the login limits apply: per address as per username, per client as per client;
    /// shared by the replicas like the login counters); `Err(seconds)` when over either.
    pub async fn mail_request(
        &self,
        email: &str,
        client: Option<IpAddr>,
        now: u64,
    ) -> Result<(), u64> {
        if !self.config.enabled {
            return Ok(());
        }
        let c = &self.config;
        let mut keys = vec![(
            format!("mail-to:{}", email.to_lowercase()),
            c.login_failures_per_username_address,
        )];
        if let Some(ip) = client {
            keys.push((format!("mail-addr:{ip}"), c.login_failures_per_address));
        }
        for (key, limit) in &keys {
            self.check(key, *limit, Window::Short, now).await?;
        }
        for (key, _) in &keys {
            self.hit(key, Window::Short, now).await;
        }
        Ok(())
    }
}

/// Which of the throttle's windows a counter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// `window_seconds`.
    Short,
    /// `username_window_seconds`.
    Long,
}

/// Counts one event of `key` in `store`'s shared counters, against `limit` per fixed window
/// of `window` seconds, in one statement (replicas racing for the last place get one).
/// `Some(Err(seconds))` when this event is over the limit; `None` when the store keeps no
/// counters or cannot answer (the caller counts in memory then).
pub async fn count_shared(
    store: &dyn UserStore,
    key: &str,
    limit: u32,
    window: u64,
    now: u64,
) -> Option<Result<(), u64>> {
    let window = window.max(1);
    match store.throttle_window(key, now, window, true).await {
        Ok(Some((start, count))) => Some(if count > limit {
            Err((start.saturating_add(window).saturating_sub(now)).max(1))
        } else {
            Ok(())
        }),
        Ok(None) => None,
        Err(e) => {
            log::warn!("shared counters unavailable, counting in memory: {e}");
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count {
    start: u64,
    count: u32,
}

pub struct Limiter {
    counts: Cache<String, Count>,
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
                    Some(w) if now < w.start + window => Count {
                        start: w.start,
                        count: w.count.saturating_add(1),
                    },
                    _ => Count {
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

    fn throttle(pair: u32, user: u32) -> Throttle {
        Throttle::new(&ThrottleConfig {
            login_failures_per_username_address: pair,
            login_failures_per_username: user,
            login_failures_per_address: 1000,
            ..ThrottleConfig::default()
        })
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|e| panic!("a runtime: {e}"))
    }

    #[test]
    fn a_strangers_failures_lock_only_the_strangers_address() {
        let t = throttle(5, 100);
        let stranger = Some(IpAddr::from([203, 0, 113, 9]));
        let owner = Some(IpAddr::from([198, 51, 100, 7]));
        block(async {
            for _ in 0..5 {
                t.login_failed("Ann", stranger, 1000).await;
            }
            assert_eq!(t.check_login("ann", stranger, 1001).await, Err(59));
            assert_eq!(t.check_login("ann", owner, 1001).await, Ok(()));
            // The minute passes: the stranger may try again.
            assert_eq!(t.check_login("ann", stranger, 1060).await, Ok(()));
        });
    }

    #[test]
    fn a_spread_attack_meets_the_per_username_hour() {
        let t = throttle(5, 8);
        block(async {
            for i in 0..8u8 {
                let from = Some(IpAddr::from([203, 0, 113, i]));
                assert_eq!(t.check_login("ann", from, 1000).await, Ok(()));
                t.login_failed("ann", from, 1000).await;
            }
            let owner = Some(IpAddr::from([198, 51, 100, 7]));
            assert_eq!(t.check_login("ann", owner, 1000).await, Err(3600));
            assert_eq!(t.check_login("bob", owner, 1000).await, Ok(()));
            assert_eq!(t.check_login("ann", owner, 4600).await, Ok(()));
        });
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
