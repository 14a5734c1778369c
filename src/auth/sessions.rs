//! Browser sessions as a credential (SPEC §15): the cookie's opaque id, its hash (all the
//! store keeps), and the check of a presented id through a memory cache of the immutable
//! session facts. What can change (revoked, user inactive, password changed) is decided by
//! the user-state cache, so a revocation reaches every replica the way a deactivation does.

use super::cache::UserState;
use crate::store::{Session, StoreError, UserStore};
use base64::Engine;
use moka::sync::Cache;
use sha2::Digest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes of randomness in a session id (256 bits).
const ID_BYTES: usize = 32;
/// Its length in the cookie (unpadded URL-safe base64).
const ID_CHARS: usize = 43;
/// "Last seen" is written at most this often per session.
pub const TOUCH_EVERY_SECONDS: u64 = 60;

/// A new session id: the cookie value and the hash the store keys the session by.
pub fn new_id() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; ID_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_of(&value);
    (value, hash)
}

/// The store key of a cookie value; `None` for anything gatehouse never issued (no store or
/// cache read is spent on garbage).
pub fn id_hash(cookie: &str) -> Option<String> {
    let well_formed = cookie.len() == ID_CHARS
        && cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hash_of(cookie))
}

fn hash_of(value: &str) -> String {
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// Why a presented session is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, expired, ended, or from before a password change.
    Invalid,
    UserInactive,
}

/// Whether a known session may still be used by a user in `state` at `now`.
pub fn decide(session: &Session, state: &UserState, now: u64, idle: u64) -> Result<(), Refusal> {
    if !session.live_at(now, idle)
        || session.token_version != state.token_version
        || state.ended.iter().any(|e| e == &session.id_hash)
    {
        return Err(Refusal::Invalid);
    }
    if !state.is_active {
        return Err(Refusal::UserInactive);
    }
    Ok(())
}

/// A cached session: the facts as stored, and when this process last saw it used and last
/// wrote that down.
struct Entry {
    session: Session,
    seen: AtomicU64,
    written: AtomicU64,
}

/// The sessions this process has seen, by id hash.
pub struct SessionCache {
    cache: Cache<String, Arc<Entry>>,
    idle: u64,
}

impl SessionCache {
    pub fn new(capacity: u64, idle: u64) -> SessionCache {
        SessionCache {
            cache: Cache::builder()
                .max_capacity(capacity)
                // An entry is never kept longer than a session may stay idle: after that the
                // store says whether another replica saw it used.
                .time_to_idle(Duration::from_secs(idle.max(1)))
                .build(),
            idle,
        }
    }

    /// The session with this id hash as of `now` (`None`: unknown or no longer live), with
    /// its last-seen time moved to `now` (written to the store at most once a minute).
    pub async fn get(
        &self,
        hash: &str,
        now: u64,
        store: &dyn UserStore,
    ) -> Result<Option<Session>, StoreError> {
        let mut entry = match self.cache.get(hash) {
            Some(entry) => entry,
            None => match self.load(hash, store).await? {
                Some(entry) => entry,
                None => return Ok(None),
            },
        };
        let mut session = entry.session.clone();
        session.last_seen = entry.seen.load(Ordering::Relaxed).max(session.last_seen);
        if !session.live_at(now, self.idle) {
            // Idle here; another replica may have seen it since: the store decides, and this
            // use is recorded on the entry now cached (not the one just dropped).
            self.cache.invalidate(hash);
            let Some(fresh) = self.load(hash, store).await? else {
                return Ok(None);
            };
            session = fresh.session.clone();
            if !session.live_at(now, self.idle) {
                self.cache.invalidate(hash);
                return Ok(None);
            }
            entry = fresh;
        }
        entry.seen.fetch_max(now, Ordering::Relaxed);
        let written = entry.written.load(Ordering::Relaxed);
        if now.saturating_sub(written) >= TOUCH_EVERY_SECONDS
            && entry
                .written
                .compare_exchange(written, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if let Err(e) = store.touch_session(hash, now).await {
                log::warn!("sessions: could not record a session's last use: {e}");
            }
        }
        session.last_seen = now;
        Ok(Some(session))
    }

    async fn load(
        &self,
        hash: &str,
        store: &dyn UserStore,
    ) -> Result<Option<Arc<Entry>>, StoreError> {
        let Some(session) = store.get_session(hash).await? else {
            return Ok(None);
        };
        let entry = Arc::new(Entry {
            seen: AtomicU64::new(session.last_seen),
            written: AtomicU64::new(session.last_seen),
            session,
        });
        self.cache.insert(hash.to_string(), Arc::clone(&entry));
        Ok(Some(entry))
    }
}

/// How often expired sessions are deleted from the store.
const CLEANUP_EVERY: Duration = Duration::from_secs(600);

/// Deletes expired sessions from the store every ten minutes, on a thread of its own (no
/// request waits for it). Any replica may run it: deleting what is expired is idempotent.
pub fn start_cleanup(store: Arc<dyn UserStore>, idle: u64) -> Result<(), String> {
    crate::housekeeping::every("session cleanup", CLEANUP_EVERY, move || {
        let store = Arc::clone(&store);
        async move {
            match store
                .delete_expired_sessions(crate::clock::now(), idle)
                .await
            {
                Ok(0) => {}
                Ok(n) => log::info!("sessions: {n} expired sessions deleted"),
                Err(e) => log::warn!("sessions: cannot delete expired sessions: {e}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(hash: &str) -> Session {
        Session {
            id_hash: hash.into(),
            user_id: 1,
            created: 1_000,
            last_seen: 1_000,
            expires_at: 1_000 + 12 * 3600,
            client_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            remember: false,
            method: "pwd".into(),
            token_version: 3,
        }
    }

    fn state() -> UserState {
        let mut u = crate::store::test_user(1, "alice", "a@example.com");
        u.token_version = 3;
        UserState::from(&u)
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// The last-seen time the store keeps for `hash`.
    fn stored(store: &dyn UserStore, hash: &str) -> u64 {
        block(store.get_session(hash))
            .expect("read")
            .expect("the session is stored")
            .last_seen
    }

    #[test]
    fn a_use_on_one_replica_keeps_the_session_alive_for_another() {
        // Two replicas' caches on one store, an idle limit of 30 minutes.
        let (_dir, store) = crate::store::temp_store();
        let store = store.as_ref();
        let idle = 1_800;
        let (a, b) = (SessionCache::new(100, idle), SessionCache::new(100, idle));
        let effects = crate::store::Effects {
            sessions: vec![session("kept"), session("left")],
            ..crate::store::Effects::none()
        };
        block(store.record(effects)).expect("record");
        for hash in ["kept", "left"] {
            assert!(block(a.get(hash, 1_000, store)).expect("get").is_some());
        }
        // B alone uses `kept` every 10 s for 33 minutes; the store hears of it at most once
        // a minute.
        let mut writes = vec![stored(store, "kept")];
        for now in (1_010..=3_000).step_by(10) {
            assert!(
                block(b.get("kept", now, store)).expect("get").is_some(),
                "B at {now}"
            );
            let seen = stored(store, "kept");
            if writes.last() != Some(&seen) {
                writes.push(seen);
            }
        }
        assert!(
            writes
                .windows(2)
                .all(|w| w[1] - w[0] >= TOUCH_EVERY_SECONDS),
            "{writes:?}"
        );
        assert!(writes.len() >= 33, "{writes:?}");
        // A last saw both at 1 000, over 30 minutes ago: it asks the store, which knows of
        // B's use of one of them.
        assert!(block(a.get("kept", 3_500, store)).expect("get").is_some());
        assert_eq!(block(a.get("left", 3_500, store)).expect("get"), None);
        // A recorded its own use then, and not again within the minute.
        assert_eq!(stored(store, "kept"), 3_500);
        assert!(block(a.get("kept", 3_530, store)).expect("get").is_some());
        assert_eq!(stored(store, "kept"), 3_500);
    }

    #[test]
    fn ids_are_256_bits_and_only_well_formed_ones_are_looked_up() {
        let (value, hash) = new_id();
        assert_eq!(value.len(), ID_CHARS);
        assert_eq!(id_hash(&value).as_deref(), Some(hash.as_str()));
        assert_eq!(hash.len(), 64);
        assert_ne!(new_id().0, value);
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}!", &value[..42]),
            &"é".repeat(43),
        ] {
            assert_eq!(id_hash(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_session_lives_while_its_user_and_password_and_limits_say_so() {
        let s = session("h");
        let st = state();
        assert_eq!(decide(&s, &st, 1_100, 1_800), Ok(()));
        assert_eq!(
            decide(&s, &st, 1_000 + 1_801, 1_800),
            Err(Refusal::Invalid),
            "idle"
        );
        let mut changed = state();
        changed.token_version = 4;
        assert_eq!(
            decide(&s, &changed, 1_100, 1_800),
            Err(Refusal::Invalid),
            "password changed"
        );
        let mut inactive = state();
        inactive.is_active = false;
        assert_eq!(
            decide(&s, &inactive, 1_100, 1_800),
            Err(Refusal::UserInactive)
        );
        let mut ended = state();
        ended.ended = Arc::from(vec!["h".to_string()]);
        assert_eq!(
            decide(&s, &ended, 1_100, 1_800),
            Err(Refusal::Invalid),
            "ended"
        );
    }
}
