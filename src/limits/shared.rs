//! Shared limits (SPEC §20, `rate_limit_shared` on PostgreSQL): one bucket per route policy
//! and caller in the store, from which each replica reserves a slice of requests at a time
//! and spends it locally, asking for the next slice in the background before it runs out.
//! A request waits for the store only when its replica's slice is spent and none is coming.
//!
//! The store never grants more than its bucket holds, so N replicas together never admit
//! more than the budget. What they can fall short by is what sits granted and unspent: at
//! most a slice and a half per replica (the slice, and the next one asked for at half). A
//! slice is `capacity / (15 x store.replicas)` requests (at least one), so the shortfall
//! stays under 10 % of the bucket.

use super::gcra::{ceil_seconds, Gcra, Verdict};
use super::table::{Idle, Table};
use super::{BucketKey, RouteLimit, Who};
use crate::store::{RateGrant, UserStore};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The slice a replica asks for: `capacity / (15 x replicas)`, at least one request.
pub fn slice_size(capacity: u64, replicas: u64) -> u64 {
    (capacity / (15 * replicas.max(1))).max(1)
}

pub struct Slices {
    store: Arc<dyn UserStore>,
    table: Table<BucketKey, Slice>,
    replicas: u64,
}

/// This replica's share of one shared bucket.
struct Slice {
    /// Granted and not yet spent.
    tokens: AtomicI64,
    /// A reservation is on its way (at most one at a time).
    reserving: AtomicBool,
    /// Inline reservations one at a time: the first waiter asks, the others spend its grant.
    asking: tokio::sync::Mutex<()>,
    /// The store's bucket after the last grant: requests left, and when it is full again
    /// (this process's monotonic nanoseconds).
    left: AtomicU64,
    full_at: AtomicU64,
    /// The store refused: nothing to ask for before then (monotonic nanoseconds).
    refused_until: AtomicU64,
    /// The bucket as the store names it.
    store_key: String,
    idle: Duration,
}

impl Idle for Slice {
    fn idle(&self) -> Duration {
        self.idle
    }
}

impl Slice {
    /// Spends one granted request, if there is one; `Some(left)` then.
    fn spend(&self) -> Option<u64> {
        let left = self.tokens.fetch_sub(1, Ordering::AcqRel) - 1;
        if left >= 0 {
            return u64::try_from(left).ok();
        }
        self.tokens.fetch_add(1, Ordering::AcqRel);
        None
    }

    fn admitted(&self, left_here: u64, now: u64) -> Verdict {
        Verdict::Admitted {
            remaining: left_here.saturating_add(self.left.load(Ordering::Acquire)),
            reset: ceil_seconds(self.full_at.load(Ordering::Acquire).saturating_sub(now)),
        }
    }

    fn refused(&self, now: u64) -> Verdict {
        Verdict::Refused {
            retry_after: ceil_seconds(
                self.refused_until
                    .load(Ordering::Acquire)
                    .saturating_sub(now),
            )
            .max(1),
            reset: ceil_seconds(self.full_at.load(Ordering::Acquire).saturating_sub(now)),
        }
    }

    /// Takes in what the store granted; the bucket's state for the headers and, when
    /// nothing was granted, how long to wait before asking again.
    fn granted(&self, gcra: &Gcra, grant: RateGrant, want: u64, now: u64) {
        let (tat, at) = (
            grant.tat_us.saturating_mul(1_000),
            grant.now_us.saturating_mul(1_000),
        );
        let (left, reset) = gcra.peek(tat, at);
        self.left.store(left, Ordering::Release);
        self.full_at.store(
            now.saturating_add(reset.saturating_mul(super::gcra::NANOS)),
            Ordering::Release,
        );
        if grant.granted < want {
            let wait = gcra.wait(tat, at);
            self.refused_until
                .store(now.saturating_add(wait), Ordering::Release);
        }
        let granted = i64::try_from(grant.granted).unwrap_or(i64::MAX);
        self.tokens.fetch_add(granted, Ordering::AcqRel);
    }
}

impl Slices {
    pub fn new(store: Arc<dyn UserStore>, capacity: u64, replicas: u64) -> Slices {
        Slices {
            store,
            table: Table::new(capacity),
            replicas,
        }
    }

    fn slice(&self, limit: &RouteLimit, who: &Who, now: u64) -> Arc<Slice> {
        let key = BucketKey {
            scope: limit.scope,
            who: who.clone(),
        };
        self.table.get_or(key, now, || Slice {
            tokens: AtomicI64::new(0),
            reserving: AtomicBool::new(false),
            asking: tokio::sync::Mutex::new(()),
            left: AtomicU64::new(limit.gcra.capacity),
            full_at: AtomicU64::new(0),
            refused_until: AtomicU64::new(0),
            store_key: format!("{}|{}", limit.store_scope, who.label()),
            idle: limit.idle(),
        })
    }

    /// One request against the shared bucket. `None`: the store could not be asked (down,
    /// or no store shares): the caller decides locally.
    pub async fn check(&self, limit: &RouteLimit, who: &Who, now: u64) -> Option<Verdict> {
        let slice = self.slice(limit, who, now);
        let want = slice_size(limit.gcra.capacity, self.replicas);
        if let Some(left) = slice.spend() {
            if left <= want / 2 {
                self.reserve_in_background(limit, &slice, want);
            }
            return Some(slice.admitted(left, now));
        }
        if now < slice.refused_until.load(Ordering::Acquire) {
            return Some(slice.refused(now));
        }
        // Spent, and nothing coming: ask now (one asker; the others take from its grant).
        let _one = slice.asking.lock().await;
        if let Some(left) = slice.spend() {
            return Some(slice.admitted(left, now));
        }
        if now < slice.refused_until.load(Ordering::Acquire) {
            return Some(slice.refused(now));
        }
        let interval_us = (limit.gcra.interval / 1_000).max(1);
        let asked = self
            .store
            .reserve_rate(&slice.store_key, interval_us, limit.gcra.capacity, want)
            .await;
        match asked {
            Ok(Some(grant)) => {
                slice.granted(&limit.gcra, grant, want, now);
                Some(match slice.spend() {
                    Some(left) => slice.admitted(left, now),
                    None => slice.refused(now),
                })
            }
            Ok(None) => None,
            Err(e) => {
                log::warn!(
                    "rate limit: the shared bucket cannot be reached, deciding locally: {e}"
                );
                None
            }
        }
    }

    /// Asks for the next slice without holding up the request (on the caller's runtime; the
    /// store's own runtime does the I/O).
    fn reserve_in_background(&self, limit: &RouteLimit, slice: &Arc<Slice>, want: u64) {
        if slice.reserving.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            slice.reserving.store(false, Ordering::Release);
            return;
        };
        let (store, slice) = (Arc::clone(&self.store), Arc::clone(slice));
        let gcra = limit.gcra;
        runtime.spawn(async move {
            let interval_us = (gcra.interval / 1_000).max(1);
            let asked = store
                .reserve_rate(&slice.store_key, interval_us, gcra.capacity, want)
                .await;
            match asked {
                Ok(Some(grant)) => slice.granted(&gcra, grant, want, super::monotonic_ns()),
                Ok(None) => {}
                Err(e) => log::warn!("rate limit: cannot reserve the next slice: {e}"),
            }
            slice.reserving.store(false, Ordering::Release);
        });
    }

    /// The bucket as this replica last saw it, nothing spent.
    pub fn peek(&self, limit: &RouteLimit, who: &Who, now: u64) -> Option<(u64, u64)> {
        let key = BucketKey {
            scope: limit.scope,
            who: who.clone(),
        };
        let slice = self.table.get(&key, now)?;
        let here = u64::try_from(slice.tokens.load(Ordering::Acquire)).unwrap_or(0);
        match slice.admitted(here, now) {
            Verdict::Admitted { remaining, reset } => Some((remaining, reset)),
            Verdict::Refused { reset, .. } => Some((0, reset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_keep_n_replicas_within_ten_percent() {
        for (capacity, replicas) in [(120, 2), (1_000, 2), (1_000, 4), (60, 1)] {
            let slice = slice_size(capacity, replicas);
            // At most a slice and a half unspent per replica.
            let unspent = replicas * slice * 3 / 2;
            assert!(
                unspent * 10 <= capacity,
                "{capacity}/{replicas}: {unspent} unspent"
            );
        }
        assert_eq!(slice_size(5, 2), 1);
    }
}
