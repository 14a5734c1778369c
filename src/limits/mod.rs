//! Rate limits per route (SPEC §20): what a route's `rate_limit` is (`RouteLimit`), whose
//! budget a request spends (`Who`), and the process's buckets (`Limiter`): local ones in a
//! bounded table (`table`), decided by GCRA (`gcra`, plain arithmetic), and, for
//! `rate_limit_shared` on PostgreSQL, slices of one budget reserved from the store
//! (`shared`). The gateway asks `Limiter::check` once per forwarded request and writes the
//! answer; nothing here knows about HTTP sessions.

pub mod gcra;
mod shared;
pub mod table;

use crate::config::{Config, RateLimitBy, RateLimitConfig, StoreBackend};
use crate::store::UserStore;
pub use gcra::{
    Gcra, Verdict, RATELIMIT_HEADER, RATELIMIT_NAME, RATELIMIT_POLICY_HEADER, RATELIMIT_POLICY_NAME,
};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use table::{Idle, Table};

/// Whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    /// An API key, by its id.
    Key(Arc<str>),
    User(u64),
    Address(IpAddr),
    /// No client address known (not a TCP peer): one bucket for all such callers.
    Unknown,
}

impl Who {
    /// The key `by` picks: `credential` the API key, else the user, else the address; `user`
    /// the user, else (anonymous) the address; `address` the client address.
    pub fn of(
        by: RateLimitBy,
        key_id: Option<&Arc<str>>,
        user_id: Option<u64>,
        address: Option<IpAddr>,
    ) -> Who {
        let from_address = || address.map_or(Who::Unknown, Who::Address);
        match by {
            RateLimitBy::Credential => match (key_id, user_id) {
                (Some(key), _) => Who::Key(Arc::clone(key)),
                (None, Some(user)) => Who::User(user),
                (None, None) => from_address(),
            },
            RateLimitBy::User => user_id.map_or_else(from_address, Who::User),
            RateLimitBy::Address => from_address(),
        }
    }

    /// Whether the key needs the client address (computed only then).
    pub fn needs_address(by: RateLimitBy, key_id: bool, user: bool) -> bool {
        match by {
            RateLimitBy::Credential => !key_id && !user,
            RateLimitBy::User => !user,
            RateLimitBy::Address => true,
        }
    }

    /// The caller as the shared table in the store names it.
    fn label(&self) -> String {
        match self {
            Who::Key(id) => format!("k:{id}"),
            Who::User(id) => format!("u:{id}"),
            Who::Address(ip) => format!("a:{ip}"),
            Who::Unknown => "-".to_string(),
        }
    }
}

/// A route's limit, built with the route (at start and at each reload).
pub struct RouteLimit {
    pub config: RateLimitConfig,
    pub shared: bool,
    pub gcra: Gcra,
    /// The route and its policy: buckets are kept across a reload that leaves both alone.
    scope: u64,
    /// The same, as the store names it (every replica with the same config agrees).
    store_scope: Arc<str>,
    /// `RateLimit-Policy`, made once (as text for locally written answers, as a header
    /// value for the upstream's).
    pub policy: String,
    pub policy_value: http::HeaderValue,
    /// `gatehouse_rate_limited_total{route}`, resolved once.
    pub limited: prometheus::IntCounter,
}

impl RouteLimit {
    pub fn new(prefix: &str, config: &RateLimitConfig, shared: bool) -> RouteLimit {
        let store_scope = format!(
            "{prefix}|{}/{}s+{}|{}",
            config.requests,
            config.per_seconds,
            config.burst,
            config.by.name()
        );
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&store_scope, shared).hash(&mut h);
        RouteLimit {
            config: *config,
            shared,
            gcra: Gcra::of(config),
            scope: h.finish(),
            store_scope: Arc::from(store_scope),
            // Digits, letters and quotes only: always a valid header value.
            policy_value: http::HeaderValue::from_str(&gcra::policy_value(config))
                .unwrap_or_else(|_| http::HeaderValue::from_static("\"default\"")),
            policy: gcra::policy_value(config),
            limited: crate::metrics::RATE_LIMITED.with_label_values(&[prefix]),
        }
    }

    /// How long a bucket of this limit may sit unused: until it is full again (then
    /// forgetting it changes nothing), and a second more.
    fn idle(&self) -> Duration {
        const MAX_IDLE: Duration = Duration::from_secs(400 * 86_400);
        Duration::from_nanos(self.gcra.tolerance)
            .saturating_add(Duration::from_secs(1))
            .min(MAX_IDLE)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BucketKey {
    scope: u64,
    who: Who,
}

/// Hashed in two or three writes (the derived `Hash` makes five for an address: the scope,
/// two discriminants, a length and the octets), each one a round of the table's SipHash on
/// every limited request. Equal keys write the same words; the tag keeps the kinds apart.
impl Hash for BucketKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.scope);
        match &self.who {
            Who::Address(IpAddr::V4(ip)) => state.write_u64(u64::from(ip.to_bits()) | 1 << 32),
            Who::Address(IpAddr::V6(ip)) => {
                state.write_u8(2);
                state.write_u128(ip.to_bits());
            }
            Who::User(id) => {
                state.write_u8(3);
                state.write_u64(*id);
            }
            Who::Key(id) => {
                state.write_u8(4);
                state.write(id.as_bytes());
            }
            Who::Unknown => state.write_u8(5),
        }
    }
}

/// A local bucket: its TAT, updated by compare-and-swap.
struct Bucket {
    tat: AtomicU64,
    idle: Duration,
}

impl Idle for Bucket {
    fn idle(&self) -> Duration {
        self.idle
    }
}

/// Nanoseconds on a monotonic clock, never 0 (0 is a bucket never used).
pub fn monotonic_ns() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_nanos())
        .unwrap_or(u64::MAX / 2)
        .saturating_add(gcra::NANOS)
}

/// The process's buckets, every route's together.
pub struct Limiter {
    local: Table<BucketKey, Bucket>,
    /// `rate_limit_shared` routes on a store that shares (PostgreSQL); `None`: sled, one
    /// process, where shared is local.
    shared: Option<shared::Slices>,
}

impl Limiter {
    pub fn new(config: &Config, store: Arc<dyn UserStore>) -> Limiter {
        let capacity = config.limits.rate_limit_buckets;
        let shared = (config.store.backend == StoreBackend::Postgres)
            .then(|| shared::Slices::new(store, capacity, config.store.replicas));
        Limiter {
            local: Table::new(capacity),
            shared,
        }
    }

    /// One request of `who` on a route limited by `limit`: admitted (and counted) or
    /// refused. Local limits never wait; shared ones wait on the store only when this
    /// replica's slice is spent and the next one has not come yet.
    pub async fn check(&self, limit: &RouteLimit, who: Who) -> Verdict {
        let now = monotonic_ns();
        let verdict = match &self.shared {
            Some(slices) if limit.shared => match slices.check(limit, &who, now).await {
                Some(verdict) => verdict,
                None => self.check_local(limit, who, now),
            },
            _ => self.check_local(limit, who, now),
        };
        if matches!(verdict, Verdict::Refused { .. }) {
            limit.limited.inc();
        }
        verdict
    }

    /// The local decision: GCRA on this process's bucket.
    pub fn check_local(&self, limit: &RouteLimit, who: Who, now: u64) -> Verdict {
        let key = BucketKey {
            scope: limit.scope,
            who,
        };
        let bucket = self.local.get_or(key, now, || {
            crate::metrics::RATE_LIMIT_BUCKETS
                .set(i64::try_from(self.local.len() + 1).unwrap_or(i64::MAX));
            Bucket {
                tat: AtomicU64::new(0),
                idle: limit.idle(),
            }
        });
        let mut tat = bucket.tat.load(Ordering::Acquire);
        loop {
            match limit.gcra.take(tat, now) {
                (verdict, None) => return verdict,
                (verdict, Some(next)) => {
                    match bucket.tat.compare_exchange_weak(
                        tat,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return verdict,
                        Err(current) => tat = current,
                    }
                }
            }
        }
    }

    /// `r` and `t` for an answer that spends nothing (a refused credential, a preflight).
    pub fn peek(&self, limit: &RouteLimit, who: Who) -> (u64, u64) {
        let now = monotonic_ns();
        if let (Some(slices), true) = (&self.shared, limit.shared) {
            if let Some(seen) = slices.peek(limit, &who, now) {
                return seen;
            }
        }
        let key = BucketKey {
            scope: limit.scope,
            who,
        };
        let tat = self
            .local
            .get(&key, now)
            .map_or(0, |b| b.tat.load(Ordering::Acquire));
        limit.gcra.peek(tat, now)
    }

    /// Local buckets held, all pending evictions done (tests and the bucket gauge).
    pub fn buckets(&self) -> u64 {
        self.local.settled_len(monotonic_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn limiter(buckets: u64) -> (tempfile::TempDir, Limiter) {
        let (dir, store) = crate::store::temp_store();
        let mut config = Config::default();
        config.limits.rate_limit_buckets = buckets;
        (dir, Limiter::new(&config, store))
    }

    fn limit(prefix: &str, requests: u64, by: RateLimitBy) -> RouteLimit {
        RouteLimit::new(
            prefix,
            &RateLimitConfig {
                requests,
                per_seconds: 60,
                burst: 0,
                by,
            },
            false,
        )
    }

    fn admitted(l: &Limiter, limit: &RouteLimit, who: &Who, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                matches!(
                    l.check_local(limit, who.clone(), monotonic_ns()),
                    Verdict::Admitted { .. }
                )
            })
            .count()
    }

    #[test]
    fn credential_picks_the_key_then_the_user_then_the_address() {
        let ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let key: Arc<str> = Arc::from("k1");
        let c = RateLimitBy::Credential;
        assert_eq!(Who::of(c, Some(&key), Some(7), ip), Who::Key(key.clone()));
        assert_eq!(Who::of(c, None, Some(7), ip), Who::User(7));
        assert_eq!(
            Who::of(c, None, None, ip),
            Who::Address(Ipv4Addr::LOCALHOST.into())
        );
        assert_eq!(
            Who::of(RateLimitBy::User, Some(&key), Some(7), ip),
            Who::User(7)
        );
        assert_eq!(
            Who::of(RateLimitBy::User, None, None, ip),
            Who::Address(Ipv4Addr::LOCALHOST.into())
        );
        assert_eq!(
            Who::of(RateLimitBy::Address, Some(&key), Some(7), ip),
            Who::Address(Ipv4Addr::LOCALHOST.into())
        );
        assert_eq!(
            Who::of(RateLimitBy::Address, None, None, None),
            Who::Unknown
        );
        assert!(!Who::needs_address(c, false, true));
        assert!(Who::needs_address(c, false, false));
        assert!(Who::needs_address(RateLimitBy::Address, true, true));
    }

    #[test]
    fn callers_and_routes_have_budgets_of_their_own() {
        let (_dir, l) = limiter(1_000);
        let a = limit("/a/", 3, RateLimitBy::Credential);
        let b = limit("/b/", 3, RateLimitBy::Credential);
        assert_eq!(admitted(&l, &a, &Who::User(1), 10), 3);
        assert_eq!(admitted(&l, &a, &Who::User(2), 10), 3);
        assert_eq!(admitted(&l, &b, &Who::User(1), 10), 3);
        assert_eq!(l.peek(&a, Who::User(1)).0, 0);
        assert_eq!(l.peek(&a, Who::User(3)), (3, 0));
    }

    #[test]
    fn the_same_limit_after_a_reload_keeps_its_buckets_a_changed_one_starts_afresh() {
        let (_dir, l) = limiter(1_000);
        let before = limit("/a/", 3, RateLimitBy::Credential);
        assert_eq!(admitted(&l, &before, &Who::User(1), 10), 3);
        let same = limit("/a/", 3, RateLimitBy::Credential);
        assert_eq!(admitted(&l, &same, &Who::User(1), 1), 0);
        let changed = limit("/a/", 4, RateLimitBy::Credential);
        assert_eq!(admitted(&l, &changed, &Who::User(1), 10), 4);
    }

    #[test]
    fn a_million_addresses_stay_within_the_bucket_bound() {
        let cap = 20_000;
        let (_dir, l) = limiter(cap);
        let route = limit("/a/", 10, RateLimitBy::Address);
        let now = monotonic_ns();
        // A million distinct addresses, from four threads at once (as a flood would come).
        std::thread::scope(|s| {
            for part in 0..4u32 {
                let (l, route) = (&l, &route);
                s.spawn(move || {
                    for i in part * 250_000..(part + 1) * 250_000 {
                        let who = Who::Address(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
                        assert!(matches!(
                            l.check_local(route, who, now),
                            Verdict::Admitted { .. }
                        ));
                    }
                });
            }
        });
        let held = l.buckets();
        assert!(held <= cap, "{held} buckets for a bound of {cap}");
        assert!(
            held > cap / 2,
            "{held} buckets: the table did not fill up to its bound"
        );
    }
}
