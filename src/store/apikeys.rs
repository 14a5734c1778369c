//! API keys as the store keeps them (SPEC §19): never the key, only its SHA-256 (what a
//! presented key is looked up by) and its display prefix, with the owner, what the key may
//! carry, its expiry, its revocation and when it was last used. Created and revoked as a
//! write's `Effects` (with their audit events and notices); `last_used` is written in
//! batches (`UseBatch`), at most once a minute per key (`touch_due`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// 32 hex characters (`ids::new_id`): what the API and the console name a key by.
    pub id: String,
    /// The owner: a user or a service account.
    pub user_id: u64,
    pub name: String,
    /// `auth::apikey::hash` of the key, lower-case hex.
    pub sha256: String,
    /// The key's first characters (`auth::apikey::display_prefix`).
    pub prefix: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds after which the key is refused.
    pub expires_at: u64,
    /// The owner's groups the key carries (empty: every group the owner holds).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Path prefixes the key may reach (empty: every route its identity may).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Carries staff (only ever on a staff owner's key).
    #[serde(default)]
    pub staff: bool,
    /// Unix seconds of the last use written (at most once a minute).
    #[serde(default)]
    pub last_used: Option<u64>,
    /// Unix seconds the key was revoked.
    #[serde(default)]
    pub revoked: Option<u64>,
}

impl ApiKey {
    /// Usable at `now`: not revoked, not expired.
    pub fn live_at(&self, now: u64) -> bool {
        self.revoked.is_none() && now < self.expires_at
    }
}

/// How often `last_used` is written per key, at most (seconds).
pub const TOUCH_INTERVAL: u64 = 60;

/// Whether a use at `now` of a key last written as used at `last_written` is worth a write:
/// the first use, and then once a minute.
pub fn touch_due(last_written: Option<u64>, now: u64) -> bool {
    last_written.is_none_or(|at| now >= at.saturating_add(TOUCH_INTERVAL))
}

/// The uses of keys waiting for their batched `last_used` write
/// (`UserStore::touch_api_keys`): a key is noted when its stored `last_used` is a minute old
/// (`touch_due`), once per batch however often it is used meanwhile.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UseBatch {
    /// `(key id, when)`, in the order first noted.
    pending: Vec<(String, u64)>,
}

impl UseBatch {
    /// `key` was used at `now`; whether the use joins the batch (else nothing is to write).
    pub fn note(&mut self, key: &ApiKey, now: u64) -> bool {
        if !touch_due(key.last_used, now) {
            return false;
        }
        match self.pending.iter_mut().find(|(id, _)| *id == key.id) {
            Some((_, at)) => {
                *at = (*at).max(now);
                false
            }
            None => {
                self.pending.push((key.id.clone(), now));
                true
            }
        }
    }

    /// What to write now; the batch starts empty again.
    pub fn take(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.pending)
    }

    /// Puts back uses whose write failed (the later use wins where a key was noted since).
    pub fn restore(&mut self, used: Vec<(String, u64)>) {
        for (id, when) in used {
            match self.pending.iter_mut().find(|(k, _)| *k == id) {
                Some((_, at)) => *at = (*at).max(when),
                None => self.pending.push((id, when)),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, last_used: Option<u64>) -> ApiKey {
        ApiKey {
            id: id.into(),
            user_id: 1,
            name: "ci".into(),
            sha256: "00".into(),
            prefix: "gk_abcde".into(),
            created: 0,
            expires_at: 10_000,
            groups: Vec::new(),
            routes: Vec::new(),
            staff: false,
            last_used,
            revoked: None,
        }
    }

    #[test]
    fn a_batch_holds_each_due_key_once_with_its_latest_use() {
        let mut batch = UseBatch::default();
        assert!(batch.note(&key("a", None), 100));
        assert!(!batch.note(&key("a", None), 130), "already in the batch");
        assert!(
            !batch.note(&key("b", Some(100)), 130),
            "written a moment ago"
        );
        assert!(batch.note(&key("c", Some(100)), 160));
        assert_eq!(
            batch.take(),
            [("a".to_string(), 130), ("c".to_string(), 160)]
        );
        assert!(batch.is_empty());
        assert!(batch.note(&key("a", Some(130)), 190));
    }

    #[test]
    fn last_used_is_written_at_most_once_a_minute() {
        assert!(touch_due(None, 0));
        assert!(!touch_due(Some(100), 100));
        assert!(!touch_due(Some(100), 159));
        assert!(touch_due(Some(100), 160));
        // A clock that went back writes nothing.
        assert!(!touch_due(Some(100), 50));
    }

    #[test]
    fn a_key_is_live_until_it_expires_or_is_revoked() {
        let mut k = ApiKey {
            id: "a".into(),
            user_id: 1,
            name: "ci".into(),
            sha256: "00".into(),
            prefix: "gk_abcde".into(),
            created: 0,
            expires_at: 10,
            groups: Vec::new(),
            routes: Vec::new(),
            staff: false,
            last_used: None,
            revoked: None,
        };
        assert!(k.live_at(9) && !k.live_at(10));
        k.revoked = Some(5);
        assert!(!k.live_at(6));
    }

    #[test]
    fn records_without_the_optional_fields_decode() {
        let old = r#"{"id":"a","user_id":1,"name":"ci","sha256":"00","prefix":"gk_abcde",
            "created":1,"expires_at":2}"#;
        let k: ApiKey = serde_json::from_str(old).expect("decodes");
        assert_eq!(
            (k.groups.len(), k.staff, k.last_used, k.revoked),
            (0, false, None, None)
        );
    }
}
