//! The bounded table of buckets: a moka cache keyed by (route limit, caller), at most
//! `limits.rate_limit_buckets` entries. Each entry expires after it has been idle for as long
//! as its bucket takes to fill up again: an idle bucket is a full one, so forgetting it
//! changes no answer; a flood of new keys evicts the least used ones first.

use moka::sync::Cache;
use moka::Expiry;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A value that knows how long it may sit unused before it is forgotten.
pub trait Idle {
    fn idle(&self) -> Duration;
}

struct IdleExpiry;

impl<K, V: Idle> Expiry<K, Arc<V>> for IdleExpiry {
    fn expire_after_create(&self, _key: &K, value: &Arc<V>, _at: Instant) -> Option<Duration> {
        Some(value.idle())
    }

    fn expire_after_read(
        &self,
        _key: &K,
        value: &Arc<V>,
        _at: Instant,
        _left: Option<Duration>,
        _modified: Instant,
    ) -> Option<Duration> {
        Some(value.idle())
    }
}

pub struct Table<K, V> {
    cache: Cache<K, Arc<V>>,
}

impl<K, V> Table<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Idle + Send + Sync + 'static,
{
    pub fn new(capacity: u64) -> Table<K, V> {
        Table {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(IdleExpiry)
                .build(),
        }
    }

    /// The entry of `key`, made by `init` when there is none.
    pub fn get_or(&self, key: K, init: impl FnOnce() -> V) -> Arc<V> {
        self.cache.get_with(key, || Arc::new(init()))
    }

    /// The entry of `key`, if there is one (nothing made).
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        self.cache.get(key)
    }

    /// Entries held, once pending evictions are done.
    pub fn settled_len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Entries held, as last counted (cheap; may lag a little behind).
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Cell(AtomicU64, Duration);
    impl Idle for Cell {
        fn idle(&self) -> Duration {
            self.1
        }
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_bound_and_the_busy_bucket_survives() {
        // (A million keys go through the whole limiter in `limits::tests`.)
        let cap = 2_000;
        let table: Table<(u64, u64), Cell> = Table::new(cap);
        let busy = table.get_or((1, 0), || {
            Cell(AtomicU64::new(0), Duration::from_secs(3600))
        });
        busy.0.store(42, Ordering::Relaxed);
        for i in 0..100_000u64 {
            table.get_or((2, i), || {
                Cell(AtomicU64::new(0), Duration::from_secs(3600))
            });
            // The busy caller keeps coming back while the flood goes on.
            if i % 100 == 0 {
                table.get_or((1, 0), || {
                    Cell(AtomicU64::new(0), Duration::from_secs(3600))
                });
            }
        }
        let held = table.settled_len();
        assert!(held <= cap, "{held} buckets held for a bound of {cap}");
        assert!(held >= cap / 2, "the table should stay useful: {held}");
        let kept = table.get(&(1, 0)).map(|c| c.0.load(Ordering::Relaxed));
        assert_eq!(kept, Some(42), "the busy bucket was evicted by the flood");
    }

    #[test]
    fn an_idle_bucket_is_forgotten_after_its_refill_time() {
        let table: Table<u64, Cell> = Table::new(100);
        table.get_or(1, || Cell(AtomicU64::new(7), Duration::from_millis(50)));
        table.get_or(2, || Cell(AtomicU64::new(7), Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(120));
        assert!(table.get(&1).is_none());
        assert!(table.get(&2).is_some());
        // moka's timer wheel takes the expired one out a tick (about a second) later.
        std::thread::sleep(Duration::from_millis(2_500));
        assert_eq!(table.settled_len(), 1);
    }
}
