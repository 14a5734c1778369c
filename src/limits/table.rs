//! The bounded table of buckets, keyed by (route limit, caller), at most
//! `limits.rate_limit_buckets` entries. An entry is forgotten once it has been idle for as
//! long as its bucket takes to fill up again: an idle bucket is a full one, so forgetting it
//! changes no answer. When a shard is full, a new key evicts the least recently used of a few
//! entries sampled at random (expired ones first), so a flood of new keys pushes out its own
//! kind and a caller that keeps coming back stays.
//!
//! Shards of a plain `HashMap` under a mutex, with the caller's clock: a hit is one keyed hash
//! (chooses the shard and is reused by the shard's map), one uncontended lock and one probe.
//! (It was a moka cache; its per-read bookkeeping was most of what a limited route cost above
//! an unlimited one, benches/README.md "Issue 27".)

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A value that knows how long it may sit unused before it is forgotten.
pub trait Idle {
    fn idle(&self) -> Duration;
}

/// Shards (fewer for a tiny table, so each holds at least one entry).
const SHARDS: u64 = 16;
/// Entries looked at to choose one to evict.
const SAMPLE: usize = 8;

pub struct Table<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    hasher: RandomState,
    /// Entries per shard: the shards together hold at most the table's capacity.
    per_shard: usize,
    /// Entries held, kept as they come and go (for the bucket gauge).
    held: AtomicU64,
}

struct Entry<V> {
    value: Arc<V>,
    /// Nanoseconds (the caller's monotonic clock) of its last use.
    used: u64,
    /// Where its key is in `Shard::keys`.
    slot: usize,
}

/// A key with its hash by the table's keyed (SipHash, random key) hasher, computed once per
/// call: the shard is chosen from it and the shard's map uses it as is.
#[derive(Clone)]
struct Hashed<K> {
    hash: u64,
    key: K,
}

impl<K: PartialEq> PartialEq for Hashed<K> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl<K: Eq> Eq for Hashed<K> {}

impl<K> Hash for Hashed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The shard maps' hasher: a `Hashed` key's hash, passed through (it is already keyed, so a
/// flood of chosen keys cannot collide on purpose).
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Hashed::hash` writes here, through `write_u64`; mixed anyway for any other.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

struct Shard<K, V> {
    map: HashMap<Hashed<K>, Entry<V>, BuildHasherDefault<PassThrough>>,
    /// The keys, for sampling by position.
    keys: Vec<Hashed<K>>,
    /// xorshift state for the samples.
    rng: u64,
}

impl<V: Idle> Entry<V> {
    fn expired(&self, now: u64) -> bool {
        let idle = u64::try_from(self.value.idle().as_nanos()).unwrap_or(u64::MAX);
        now.saturating_sub(self.used) > idle
    }
}

impl<K: Hash + Eq + Clone, V: Idle> Shard<K, V> {
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn remove(&mut self, key: &Hashed<K>) -> Option<Entry<V>> {
        let entry = self.map.remove(key)?;
        self.keys.swap_remove(entry.slot);
        if let Some(moved) = self.keys.get(entry.slot) {
            if let Some(e) = self.map.get_mut(moved) {
                e.slot = entry.slot;
            }
        }
        Some(entry)
    }

    /// Makes room for one entry: an expired one among the sample, else the least recently
    /// used of it.
    fn evict_one(&mut self, now: u64) -> bool {
        let n = self.keys.len();
        if n == 0 {
            return false;
        }
        let mut victim: Option<(usize, u64)> = None;
        for _ in 0..SAMPLE.min(n) {
            let i = usize::try_from(self.next_random() % n as u64).unwrap_or(0);
            let Some(entry) = self.keys.get(i).and_then(|k| self.map.get(k)) else {
                continue;
            };
            if entry.expired(now) {
                victim = Some((i, 0));
                break;
            }
            if victim.is_none_or(|(_, used)| entry.used < used) {
                victim = Some((i, entry.used));
            }
        }
        let Some(key) = victim.and_then(|(i, _)| self.keys.get(i).cloned()) else {
            return false;
        };
        self.remove(&key).is_some()
    }

    fn sweep(&mut self, now: u64) -> u64 {
        let expired: Vec<Hashed<K>> = self
            .map
            .iter()
            .filter(|(_, e)| e.expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut removed = 0;
        for key in expired {
            removed += u64::from(self.remove(&key).is_some());
        }
        removed
    }
}

impl<K, V> Table<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Idle + Send + Sync + 'static,
{
    pub fn new(capacity: u64) -> Table<K, V> {
        let shards = SHARDS.min(capacity.max(1));
        let per_shard = usize::try_from(capacity.max(1) / shards).unwrap_or(usize::MAX);
        let hasher = RandomState::new();
        let shards = (0..shards)
            .map(|i| {
                Mutex::new(Shard {
                    map: HashMap::default(),
                    keys: Vec::new(),
                    // Any odd seed per shard; xorshift only needs it non-zero.
                    rng: hasher.hash_one(i) | 1,
                })
            })
            .collect();
        Table {
            shards,
            hasher,
            per_shard,
            held: AtomicU64::new(0),
        }
    }

    fn hashed(&self, key: K) -> Hashed<K> {
        Hashed {
            hash: self.hasher.hash_one(&key),
            key,
        }
    }

    /// The shard of a key: from bits of its hash the shard's map does not use (it takes the
    /// low bits for the slot and the top seven for its tags).
    fn shard(&self, key: &Hashed<K>) -> MutexGuard<'_, Shard<K, V>> {
        let n = self.shards.len() as u64;
        let i = usize::try_from((key.hash >> 32) % n).unwrap_or(0);
        // A panic while holding a shard leaves nothing half-done that matters here (a
        // bucket is a TAT in an atomic): go on with the data as it is.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry of `key` at `now` (nanoseconds, the caller's monotonic clock), made by
    /// `init` when there is none or it has expired.
    pub fn get_or(&self, key: K, now: u64, init: impl FnOnce() -> V) -> Arc<V> {
        let key = self.hashed(key);
        let mut shard = self.shard(&key);
        if let Some(entry) = shard.map.get_mut(&key) {
            if !entry.expired(now) {
                entry.used = now;
                return Arc::clone(&entry.value);
            }
            shard.remove(&key);
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
        if shard.map.len() >= self.per_shard && shard.evict_one(now) {
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
        let value = Arc::new(init());
        let slot = shard.keys.len();
        shard.keys.push(key.clone());
        shard.map.insert(
            key,
            Entry {
                value: Arc::clone(&value),
                used: now,
                slot,
            },
        );
        self.held.fetch_add(1, Ordering::Relaxed);
        value
    }

    /// The entry of `key` at `now`, if there is one (nothing made, its idle time not
    /// restarted).
    pub fn get(&self, key: &K, now: u64) -> Option<Arc<V>> {
        let key = self.hashed(key.clone());
        let shard = self.shard(&key);
        let entry = shard.map.get(&key)?;
        (!entry.expired(now)).then(|| Arc::clone(&entry.value))
    }

    /// Entries held once the expired ones at `now` are dropped.
    pub fn settled_len(&self, now: u64) -> u64 {
        let mut held = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let removed = shard.sweep(now);
            self.held.fetch_sub(removed, Ordering::Relaxed);
            held += shard.map.len() as u64;
        }
        held
    }

    /// Entries held, as last counted (cheap; expired ones count until they are dropped).
    pub fn len(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::monotonic_ns;
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
        let hour = || Cell(AtomicU64::new(0), Duration::from_secs(3600));
        let busy = table.get_or((1, 0), monotonic_ns(), hour);
        busy.0.store(42, Ordering::Relaxed);
        for i in 0..100_000u64 {
            table.get_or((2, i), monotonic_ns(), hour);
            // The busy caller keeps coming back while the flood goes on.
            if i % 100 == 0 {
                table.get_or((1, 0), monotonic_ns(), hour);
            }
        }
        let held = table.settled_len(monotonic_ns());
        assert!(held <= cap, "{held} buckets held for a bound of {cap}");
        assert!(held >= cap / 2, "the table should stay useful: {held}");
        assert_eq!(table.len(), held, "the running count drifted");
        let kept = table
            .get(&(1, 0), monotonic_ns())
            .map(|c| c.0.load(Ordering::Relaxed));
        assert_eq!(kept, Some(42), "the busy bucket was evicted by the flood");
    }

    #[test]
    fn an_idle_bucket_is_forgotten_after_its_refill_time() {
        let table: Table<u64, Cell> = Table::new(100);
        table.get_or(1, monotonic_ns(), || {
            Cell(AtomicU64::new(7), Duration::from_millis(50))
        });
        table.get_or(2, monotonic_ns(), || {
            Cell(AtomicU64::new(7), Duration::from_secs(60))
        });
        std::thread::sleep(Duration::from_millis(120));
        assert!(table.get(&1, monotonic_ns()).is_none());
        assert!(table.get(&2, monotonic_ns()).is_some());
        assert_eq!(table.settled_len(monotonic_ns()), 1);
        // An expired key comes back as a new entry.
        let again = table.get_or(1, monotonic_ns(), || {
            Cell(AtomicU64::new(0), Duration::from_secs(60))
        });
        assert_eq!(again.0.load(Ordering::Relaxed), 0);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_tiny_table_still_holds_its_capacity() {
        let table: Table<u64, Cell> = Table::new(3);
        for i in 0..50 {
            table.get_or(i, monotonic_ns(), || {
                Cell(AtomicU64::new(0), Duration::from_secs(60))
            });
        }
        let held = table.settled_len(monotonic_ns());
        assert!((1..=3).contains(&held), "{held}");
    }
}
