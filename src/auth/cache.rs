//! The user-state cache (moka) in front of the store: user id -> what an auth decision needs.
//! Writers replace the entry before they answer; a load never overwrites a newer write.
//! Behind a change feed (several replicas) memory answers only while the feed has proven it
//! fresh within `freshness`; otherwise every decision reads the store (and fails with it).
//! API keys ride along (key hash -> record): a revocation drops its key here, and a change
//! to the owner from elsewhere (the feed; a revocation announces its owner) drops the owner's
//! keys, so the next request reads the store.

use super::identity::{Identity, IdentityValues, Via};
use crate::store::{ApiKey, Change, ChangeFeed, StoreError, User, UserStore};
use moka::sync::Cache;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub is_active: bool,
    pub token_version: u64,
    pub username: Arc<str>,
    pub is_staff: bool,
    /// Group names, sorted, each once (as the store keeps them).
    pub groups: Arc<[String]>,
    /// The identity headers' values, made here once rather than on every request.
    pub values: Arc<IdentityValues>,
    /// Sessions and refresh families the user ended (their ids), refused everywhere.
    pub ended: Arc<[String]>,
}

impl UserState {
    /// User `user_id` as this state describes them, let in `via` a credential (`mfa`: with
    /// a second factor behind it) of sign-in `sign_in`.
    pub fn identity(
        self,
        user_id: u64,
        via: Via,
        mfa: bool,
        sign_in: Option<Arc<str>>,
    ) -> Identity {
        Identity {
            user_id,
            username: self.username,
            is_staff: self.is_staff,
            groups: self.groups,
            values: self.values,
            via,
            mfa,
            sign_in,
            routes: Arc::from(Vec::new()),
            key_id: None,
        }
    }
}

impl From<&User> for UserState {
    fn from(u: &User) -> UserState {
        UserState {
            is_active: u.is_active,
            token_version: u.token_version,
            username: Arc::from(u.username.as_str()),
            is_staff: u.is_staff,
            groups: Arc::from(u.groups.as_slice()),
            values: Arc::new(IdentityValues::new(
                u.id,
                &u.username,
                u.is_staff,
                &u.groups,
            )),
            ended: u.ended.iter().map(|e| e.id.clone()).collect(),
        }
    }
}

pub struct UserCache {
    cache: Cache<u64, UserState>,
    /// API keys by the SHA-256 of the key (only keys the store has; an unknown one is read
    /// again: a well-formed key with a right checksum is hard to guess).
    keys: Cache<String, Arc<ApiKey>>,
    /// Bumped by every write; a load that saw another value does not fill the cache.
    writes: AtomicU64,
    /// Orders "write replaces entry" against "load fills entry".
    fill: Mutex<()>,
    /// Set once a change feed is followed: from then on memory needs a proof of freshness.
    gated: AtomicBool,
    /// How old that proof may be.
    freshness: Duration,
    /// The newest proof: every change committed before it has been applied.
    seen: Mutex<Option<Instant>>,
}

impl UserCache {
    pub fn new(capacity: u64, ttl: Duration) -> UserCache {
        UserCache {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            keys: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
            writes: AtomicU64::new(0),
            fill: Mutex::new(()),
            gated: AtomicBool::new(false),
            freshness: Duration::from_millis(500),
            seen: Mutex::new(None),
        }
    }

    /// How stale memory may be once a feed is followed (`store.freshness_ms`).
    pub fn with_freshness(mut self, freshness: Duration) -> UserCache {
        self.freshness = freshness;
        self
    }

    /// From now on memory answers only with a fresh proof from the feed (call before the
    /// first request when a feed will be followed).
    pub fn gate_on_feed(&self) {
        self.gated.store(true, Ordering::SeqCst);
    }

    /// Whether memory may answer: no feed to wait for, or a recent enough proof.
    pub fn is_fresh(&self) -> bool {
        if !self.gated.load(Ordering::Relaxed) {
            return true;
        }
        let seen = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.is_some_and(|at| at.elapsed() <= self.freshness)
    }

    /// The user's current state: the cache, or the store on a miss. `None`: no such user.
    pub async fn get(
        &self,
        id: u64,
        store: &dyn UserStore,
    ) -> Result<Option<UserState>, StoreError> {
        if !self.is_fresh() {
            // Cannot prove memory is fresh: the database decides (or the request fails with it).
            crate::metrics::CACHE_FRESH.set(0);
            crate::metrics::USER_CACHE
                .with_label_values(&["bypass"])
                .inc();
            return Ok(store.get_user(id).await?.as_ref().map(UserState::from));
        }
        if let Some(state) = self.cache.get(&id) {
            crate::metrics::USER_CACHE_HIT.inc();
            return Ok(Some(state));
        }
        crate::metrics::USER_CACHE_MISS.inc();
        let seen = self.writes.load(Ordering::SeqCst);
        let state = store.get_user(id).await?.as_ref().map(UserState::from);
        if let Some(s) = &state {
            let _guard = self.fill.lock();
            if self.writes.load(Ordering::SeqCst) == seen {
                self.cache.insert(id, s.clone());
            }
        }
        Ok(state)
    }

    /// The API key whose SHA-256 is `sha256`: the cache, or the store on a miss. `None`: no
    /// such key. Revoked and expired keys are returned as they are; the caller decides.
    pub async fn api_key(
        &self,
        sha256: &str,
        store: &dyn UserStore,
    ) -> Result<Option<Arc<ApiKey>>, StoreError> {
        if !self.is_fresh() {
            crate::metrics::CACHE_FRESH.set(0);
            crate::metrics::APIKEY_CACHE
                .with_label_values(&["bypass"])
                .inc();
            return Ok(store.find_api_key(sha256).await?.map(Arc::new));
        }
        if let Some(key) = self.keys.get(sha256) {
            crate::metrics::APIKEY_CACHE_HIT.inc();
            return Ok(Some(key));
        }
        crate::metrics::APIKEY_CACHE
            .with_label_values(&["miss"])
            .inc();
        let seen = self.writes.load(Ordering::SeqCst);
        let key = store.find_api_key(sha256).await?.map(Arc::new);
        if let Some(k) = &key {
            let _guard = self.fill.lock();
            if self.writes.load(Ordering::SeqCst) == seen {
                self.keys.insert(sha256.to_string(), Arc::clone(k));
            }
        }
        Ok(key)
    }

    /// Called after a key was revoked here, before the response is sent.
    pub fn key_revoked(&self, id: &str) {
        let _guard = self.fill.lock();
        self.writes.fetch_add(1, Ordering::SeqCst);
        let id = id.to_string();
        self.drop_keys(move |k| k.id == id);
    }

    /// Drops the cached keys `which` selects (all of them if the cache cannot select).
    fn drop_keys(&self, which: impl Fn(&ApiKey) -> bool + Send + Sync + 'static) {
        if let Err(e) = self.keys.invalidate_entries_if(move |_, k| which(k)) {
            log::warn!("auth: dropping every cached key ({e})");
            self.keys.invalidate_all();
        }
    }

    /// Called after every successful write to a user, before the response is sent.
    pub fn updated(&self, user: &User) {
        let _guard = self.fill.lock();
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.cache.insert(user.id, UserState::from(user));
    }

    /// A change another process made: what is cached of it goes, and the next read loads it.
    pub fn apply(&self, change: Change) {
        if let Change::Seen(at) = change {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.is_none_or(|s| s < at) {
                *seen = Some(at);
            }
            crate::metrics::CACHE_FRESH.set(1);
            return;
        }
        let _guard = self.fill.lock();
        self.writes.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::User(id) => {
                self.cache.invalidate(&id);
                self.drop_keys(move |k| k.user_id == id);
            }
            Change::All => {
                self.cache.invalidate_all();
                self.keys.invalidate_all();
            }
            Change::Seen(_) => {}
        }
    }

    /// Applies a backend's change feed until it closes; a gap in it drops the whole cache.
    pub async fn follow(&self, mut feed: ChangeFeed) {
        use tokio::sync::broadcast::error::RecvError;
        self.gate_on_feed();
        loop {
            match feed.recv().await {
                Ok(change) => self.apply(change),
                Err(RecvError::Lagged(_)) => self.apply(Change::All),
                Err(RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, NewUser};

    async fn five_users(store: &dyn UserStore) -> Vec<User> {
        let mut users = Vec::new();
        for i in 0..5 {
            let u = store
                .create_user(
                    NewUser {
                        username: format!("u{i}"),
                        email: format!("u{i}@example.com"),
                        first_name: String::new(),
                        last_name: String::new(),
                        password: String::new(),
                        is_staff: false,
                        date_joined: 0,
                        is_service: false,
                    },
                    &|_| Default::default(),
                )
                .await
                .expect("create");
            users.push(u);
        }
        users
    }

    #[tokio::test]
    async fn writes_are_seen_at_once_and_eviction_only_costs_a_read() {
        let (_dir, store) = temp_store();
        let store = store.as_ref();
        let cache = UserCache::new(1, Duration::from_secs(60));
        let users = five_users(store).await;
        for u in &users {
            let state = cache.get(u.id, store).await.expect("get");
            assert!(state.is_some_and(|s| s.is_active));
        }
        let dead = store
            .update_user(
                3,
                &|u| {
                    u.is_active = false;
                    u.token_version += 1;
                },
                &|_, _| Default::default(),
            )
            .await
            .expect("update");
        cache.updated(&dead);
        // Capacity 1: whatever is evicted, the state read is the written one.
        for u in &users {
            let s = cache.get(u.id, store).await.expect("get").expect("exists");
            assert_eq!(s.is_active, u.id != 3);
        }
        assert!(cache.get(99, store).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn a_revoked_key_or_a_change_to_its_owner_drops_it() {
        let (_dir, store) = temp_store();
        let store = store.as_ref();
        let cache = UserCache::new(100, Duration::from_secs(60));
        let users = five_users(store).await;
        let key = |id: &str, user_id: u64| ApiKey {
            id: id.into(),
            user_id,
            name: "ci".into(),
            sha256: format!("{id}-hash"),
            prefix: "gk_abcde".into(),
            created: 0,
            expires_at: u64::MAX,
            groups: Vec::new(),
            routes: Vec::new(),
            staff: false,
            last_used: None,
            revoked: None,
        };
        let keys = vec![
            key("a", users[0].id),
            key("b", users[0].id),
            key("c", users[1].id),
        ];
        store
            .record(crate::store::Effects {
                api_keys: keys.clone(),
                ..Default::default()
            })
            .await
            .expect("written");
        for k in &keys {
            assert!(cache
                .api_key(&k.sha256, store)
                .await
                .expect("get")
                .is_some());
        }
        assert!(cache.api_key("nope", store).await.expect("get").is_none());
        // Revoked behind the cache's back: memory still has it live...
        let revoke = |id: &str| crate::store::Effects {
            api_keys_revoked: vec![(id.to_string(), 1)],
            ..Default::default()
        };
        store.record(revoke("a")).await.expect("revoked");
        let cached = cache.api_key("a-hash", store).await.expect("get");
        assert!(cached.is_some_and(|k| k.revoked.is_none()));
        // ...until this process says so.
        cache.key_revoked("a");
        let read = cache.api_key("a-hash", store).await.expect("get");
        assert!(read.is_some_and(|k| k.revoked.is_some()));
        // A change to the owner from elsewhere drops that owner's keys only.
        store.record(revoke("b")).await.expect("revoked");
        store.record(revoke("c")).await.expect("revoked");
        cache.apply(Change::User(users[0].id));
        let b = cache.api_key("b-hash", store).await.expect("get");
        assert!(
            b.is_some_and(|k| k.revoked.is_some()),
            "owner changed: read again"
        );
        let c = cache.api_key("c-hash", store).await.expect("get");
        assert!(
            c.is_some_and(|k| k.revoked.is_none()),
            "another owner's key stays"
        );
        cache.apply(Change::All);
        let c = cache.api_key("c-hash", store).await.expect("get");
        assert!(c.is_some_and(|k| k.revoked.is_some()));
    }

    #[tokio::test]
    async fn changes_from_elsewhere_drop_what_is_cached() {
        let (_dir, store) = temp_store();
        let store = store.as_ref();
        let cache = UserCache::new(100, Duration::from_secs(60));
        five_users(store).await;
        for id in 1..=5 {
            cache.get(id, store).await.expect("warm");
        }
        // Another process deactivates users 2 and 4 behind this cache's back.
        for id in [2, 4] {
            store
                .update_user(id, &|u| u.is_active = false, &|_, _| Default::default())
                .await
                .expect("update");
        }
        let stale = cache.get(2, store).await.expect("get").expect("exists");
        assert!(
            stale.is_active,
            "without the change the cache still says active"
        );
        let (tx, feed) = tokio::sync::broadcast::channel(4);
        tx.send(Change::User(2)).expect("send");
        tx.send(Change::All).expect("send");
        drop(tx);
        cache.follow(feed).await;
        for id in 1..=5 {
            let s = cache.get(id, store).await.expect("get").expect("exists");
            assert_eq!(s.is_active, id != 2 && id != 4, "user {id}");
        }
    }
}
