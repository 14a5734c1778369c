//! The embedded store: one sled tree per concern, multi-tree writes in transactions, and a
//! flush before any write returns (sled alone fsyncs only every 500 ms; `group_commit.rs`).

use super::group_commit::GroupCommit;
mod search_index;
mod user_list;
use super::{
    name_key, ApiKey, ChangeEffects, ChangeFeed, Effects, Event, EventFilter, EventTap, Family,
    ListFilter, MailOutbox, Mfa, NewUser, NewUserEffects, OutboxEntry, Session, StateFilter,
    StoreError, User, UserChange, UserCount, UserCursor, UserPage, UserQuery, UserStore,
};
use async_trait::async_trait;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

const NEXT_ID: &[u8] = b"next_id";
/// The next outbox entry id.
const NEXT_MAIL_ID: &[u8] = b"next_mail_id";
/// Users by state, kept in the same transactions as the users, so counts and the admin
/// list's first pages never scan the whole tree.
const COUNT_ACTIVE: &[u8] = b"count_active";
const COUNT_INACTIVE: &[u8] = b"count_inactive";
/// Set once the `inactive` index holds every inactive user (stores written before the index
/// existed get it built when opened).
const INACTIVE_INDEXED: &[u8] = b"inactive_indexed";
/// Set once the `user_families` index holds every family record (stores written before the
/// index existed get it built when opened).
const FAMILIES_INDEXED: &[u8] = b"families_indexed";
/// Set once the `user_index` tree holds every user's entries (stores written before it get
/// it built when opened).
pub(super) const USER_INDEX_BUILT: &[u8] = b"user_index_built";
/// Set once the `user_index` tree holds the list's counters and search keys too (stores
/// written before them get the whole index rebuilt when opened).
const USER_COUNTS_BUILT: &[u8] = b"user_counts_built";
/// Set once the search index is posting blocks (`search_index`; stores with the earlier one
/// key per trigram and user get the whole index rebuilt when opened).
const USER_SEARCH_BLOCKS: &[u8] = b"user_search_blocks";
/// Set once the `user_index` keeps each selective set in every sort order (`o` keys) and
/// each user's sort keys as a value (`k` id); stores without it get the whole index rebuilt
/// when opened.
const USER_SET_ORDER: &[u8] = b"user_set_order";
/// The name of the `user_index` tree (dropped and rebuilt whole by `ensure_user_index`).
const USER_INDEX_TREE: &str = "user_index";
/// How far, in milliseconds, an event's time may trail one written before it (writers racing
/// between taking the time and committing, a clock stepped back): the retention sweep looks
/// this far past the first event it keeps.
const EVENT_TIME_SLACK_MS: u64 = 10 * 60 * 1000;

fn state_key(is_active: bool) -> &'static [u8] {
    if is_active {
        COUNT_ACTIVE
    } else {
        COUNT_INACTIVE
    }
}

/// Adds `delta` to a counter inside a transaction.
fn bump(
    meta: &sled::transaction::TransactionalTree,
    key: &[u8],
    delta: i64,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    let current = meta.get(key)?.and_then(|v| decode_id(&v)).unwrap_or(0);
    let next = current.saturating_add_signed(delta);
    meta.insert(key, &id_key(next))?;
    Ok(())
}

pub struct SledStore {
    db: sled::Db,
    /// id (u64 big-endian) -> User JSON.
    users: sled::Tree,
    /// lower-case username -> id.
    usernames: sled::Tree,
    /// lower-case email -> id.
    emails: sled::Tree,
    /// family id -> Family JSON.
    families: sled::Tree,
    /// user id (u64 big-endian) ++ family id -> empty: a user's families without a scan,
    /// written with the family records.
    user_families: sled::Tree,
    /// id hash -> Session JSON: browser sessions.
    sessions: sled::Tree,
    /// user id (u64 big-endian) ++ id hash -> empty: a user's sessions without a scan,
    /// written in the same transactions as the sessions.
    user_sessions: sled::Tree,
    /// id of every inactive (soft-deleted) user -> empty, kept in the user transactions: the
    /// `status=` pages of the admin list find their rows without decoding every user.
    inactive: sled::Tree,
    /// counters.
    meta: sled::Tree,
    /// outbox entry id (u64 big-endian) -> OutboxEntry JSON: mails not sent yet, written in
    /// the transactions of the changes that cause them.
    outbox: sled::Tree,
    /// event id (u64 big-endian) -> Event JSON: the audit trail, written in the transactions
    /// of the changes the events describe.
    audit: sled::Tree,
    /// b'a' or b't' ++ actor or target id ++ event id (all u64 big-endian) -> empty: a user's
    /// events without a scan.
    audit_index: sled::Tree,
    /// user id (u64 big-endian) -> Mfa JSON: second factors, changed by compare-and-swap.
    mfa: sled::Tree,
    /// The users list's indexes (`sled_store/user_list.rs`), tagged keys to empty values, written
    /// in the user transactions and the second factor's compare-and-swap.
    user_index: sled::Tree,
    /// API keys (SPEC §19), tagged keys: b'k' ++ key id -> ApiKey JSON; b'h' ++ SHA-256 ->
    /// key id; b'o' ++ owner id (u64 big-endian) ++ key id -> empty. Written by `record`.
    api_keys: sled::Tree,
    /// The next event id: one process holds a sled store, so it counts in memory from the
    /// highest id written (an id taken by a write that failed is never seen).
    next_event: AtomicU64,
    /// Told of committed events.
    event_tap: OnceLock<EventTap>,
    /// Makes writes durable before they return; concurrent writers share a flush.
    commits: GroupCommit,
}

/// Whether a write goes ahead, decided inside its transaction from the second factors' tree
/// and the users list's index (which the decision may change too).
type Proceed<'a> = dyn Fn(
        &TransactionalTree,
        &TransactionalTree,
    ) -> Result<bool, ConflictableTransactionError<StoreError>>
    + Sync
    + 'a;

/// The trees a write's effects go to, inside its transaction.
struct EffectTrees<'a> {
    next_event: &'a AtomicU64,
    audit: &'a TransactionalTree,
    audit_index: &'a TransactionalTree,
    meta: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    sessions: &'a TransactionalTree,
    user_sessions: &'a TransactionalTree,
    families: &'a TransactionalTree,
    user_families: &'a TransactionalTree,
    mfa: &'a TransactionalTree,
    user_index: &'a TransactionalTree,
    /// `None` in the user writes (sled's transactions take at most 14 trees, which they
    /// use): API-key effects there are refused, and go through `record` instead.
    api_keys: Option<&'a TransactionalTree>,
}

/// A key of an index by user: the user id (big-endian, so one user's keys are adjacent) and
/// the indexed record's key.
fn user_index_key(user_id: u64, key: &str) -> Vec<u8> {
    let mut k = id_key(user_id).to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// The keys of `event` in the audit index (by actor, by target).
fn event_index_keys(event: &Event) -> Vec<Vec<u8>> {
    let key = |tag: u8, user: u64| {
        let mut k = vec![tag];
        k.extend_from_slice(&id_key(user));
        k.extend_from_slice(&id_key(event.id));
        k
    };
    let mut keys = Vec::with_capacity(2);
    // An event by a user on themselves (a sign-in, a password change: most of them) is
    // indexed once, by target; a search by actor reads the target entries too.
    if let Some(actor) = event.actor_id.filter(|a| Some(*a) != event.target_id) {
        keys.push(key(b'a', actor));
    }
    if let Some(target) = event.target_id {
        keys.push(key(b't', target));
    }
    keys
}

/// Writes `event` (its id set) and its index entries.
fn put_event_tx(
    audit: &TransactionalTree,
    audit_index: &TransactionalTree,
    event: &Event,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let bytes = match encode(event) {
        Ok(b) => b,
        Err(e) => return abort(e),
    };
    audit.insert(&id_key(event.id), bytes)?;
    for key in event_index_keys(event) {
        audit_index.insert(key, &[])?;
    }
    Ok(())
}

/// Records a write's `effects` inside its transaction: the mails go to the outbox, sessions
/// and family records to their trees with their indexes, events to the audit trail with
/// their ids, which it returns.
fn effects_tx(
    trees: &EffectTrees<'_>,
    effects: Effects,
) -> Result<Vec<Event>, ConflictableTransactionError<StoreError>> {
    let EffectTrees {
        next_event,
        audit,
        audit_index,
        meta,
        outbox,
        sessions,
        user_sessions,
        families,
        user_families,
        mfa,
        user_index,
        api_keys,
    } = *trees;
    let Effects {
        mails,
        sessions: created,
        end_sessions,
        families: family_records,
        mfa_removed,
        events,
        api_keys: new_keys,
        api_keys_revoked,
    } = effects;
    if !new_keys.is_empty() || !api_keys_revoked.is_empty() {
        let Some(tree) = api_keys else {
            return abort(StoreError::Io(
                "API keys are written by `record`, not with a user change".into(),
            ));
        };
        for key in &new_keys {
            put_api_key_tx(tree, key)?;
        }
        for (id, at) in &api_keys_revoked {
            revoke_api_key_tx(tree, id, *at)?;
        }
    }
    for user_id in mfa_removed {
        mfa.remove(&id_key(user_id))?;
        user_list::set_mfa_tx(user_index, user_id, false)?;
    }
    for session in created {
        put_session_tx(sessions, user_sessions, &session)?;
    }
    for id_hash in end_sessions {
        delete_session_tx(sessions, user_sessions, &id_hash)?;
    }
    for (family, record) in family_records {
        put_family_tx(families, user_families, &family, &record)?;
    }
    for mail in mails {
        let id = meta
            .get(NEXT_MAIL_ID)?
            .and_then(|v| decode_id(&v))
            .unwrap_or(1);
        meta.insert(NEXT_MAIL_ID, &id_key(id + 1))?;
        let entry = OutboxEntry {
            id,
            not_before: mail.created_at,
            mail,
            attempts: 0,
            lease_until: 0,
        };
        let bytes = match encode(&entry) {
            Ok(b) => b,
            Err(e) => return abort(e),
        };
        outbox.insert(&id_key(id), bytes)?;
    }
    let mut written = Vec::with_capacity(events.len());
    for mut event in events {
        event.id = next_event.fetch_add(1, Ordering::Relaxed);
        put_event_tx(audit, audit_index, &event)?;
        written.push(event);
    }
    Ok(written)
}

fn api_key_key(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// The owner index's key of `key`.
fn api_key_owner_key(key: &ApiKey) -> Vec<u8> {
    api_key_key(b'o', &user_index_key(key.user_id, &key.id))
}

fn decode_api_key(bytes: &[u8]) -> Result<ApiKey, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Io(format!("corrupt API key: {e}")))
}

/// Writes `key` (over the record with its id) with its hash and owner entries.
fn put_api_key_tx(
    tree: &TransactionalTree,
    key: &ApiKey,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let record = api_key_key(b'k', key.id.as_bytes());
    if let Some(old) = tree.get(&record)? {
        match decode_api_key(&old) {
            Ok(old) => {
                tree.remove(api_key_key(b'h', old.sha256.as_bytes()))?;
                tree.remove(api_key_owner_key(&old))?;
            }
            Err(e) => return abort(e),
        }
    }
    let bytes = match encode(key) {
        Ok(b) => b,
        Err(e) => return abort(e),
    };
    tree.insert(record, bytes)?;
    tree.insert(api_key_key(b'h', key.sha256.as_bytes()), key.id.as_bytes())?;
    tree.insert(api_key_owner_key(key), &[])?;
    Ok(())
}

/// Marks key `id` revoked at `at` unless it already is (or is unknown).
fn revoke_api_key_tx(
    tree: &TransactionalTree,
    id: &str,
    at: u64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let record = api_key_key(b'k', id.as_bytes());
    let Some(bytes) = tree.get(&record)? else {
        return Ok(());
    };
    let mut key = match decode_api_key(&bytes) {
        Ok(k) => k,
        Err(e) => return abort(e),
    };
    if key.revoked.is_some() {
        return Ok(());
    }
    key.revoked = Some(at);
    match encode(&key) {
        Ok(b) => tree.insert(record, b)?,
        Err(e) => return abort(e),
    };
    Ok(())
}

/// Writes `session` (over one with the same id hash) and its index entry.
fn put_session_tx(
    sessions: &TransactionalTree,
    user_sessions: &TransactionalTree,
    session: &Session,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if let Some(old) = sessions.get(session.id_hash.as_bytes())? {
        if let Ok(old) = decode_session(&old) {
            user_sessions.remove(user_index_key(old.user_id, &old.id_hash))?;
        }
    }
    let bytes = match encode(session) {
        Ok(b) => b,
        Err(e) => return abort(e),
    };
    sessions.insert(session.id_hash.as_bytes(), bytes)?;
    user_sessions.insert(user_index_key(session.user_id, &session.id_hash), &[])?;
    Ok(())
}

/// Deletes a session and its index entry; an unknown one is no error.
fn delete_session_tx(
    sessions: &TransactionalTree,
    user_sessions: &TransactionalTree,
    id_hash: &str,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if let Some(old) = sessions.remove(id_hash.as_bytes())? {
        match decode_session(&old) {
            Ok(old) => {
                user_sessions.remove(user_index_key(old.user_id, id_hash))?;
            }
            Err(e) => return abort(e),
        }
    }
    Ok(())
}

/// Writes a family record (over the one it replaces) and its index entry.
fn put_family_tx(
    families: &TransactionalTree,
    user_families: &TransactionalTree,
    family: &str,
    record: &Family,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if let Some(old) = families.get(family.as_bytes())? {
        if let Ok(old) = decode_family(&old) {
            if old.user_id != record.user_id {
                user_families.remove(user_index_key(old.user_id, family))?;
            }
        }
    }
    let bytes = match encode(record) {
        Ok(b) => b,
        Err(e) => return abort(e),
    };
    families.insert(family.as_bytes(), bytes)?;
    user_families.insert(user_index_key(record.user_id, family), &[])?;
    Ok(())
}

fn decode_session(bytes: &[u8]) -> Result<Session, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Io(format!("corrupt session: {e}")))
}

/// Up to `limit` values of `tree` (keyed by big-endian ids) with ids above `after`, in id
/// order, each decoded by `decode`.
fn values_after<T>(
    tree: &sled::Tree,
    after: u64,
    limit: usize,
    decode: fn(&[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let Some(start) = after.checked_add(1) else {
        return Ok(Vec::new());
    };
    tree.range(id_key(start)..)
        .take(limit)
        .map(|item| decode(&item.map_err(io)?.1))
        .collect()
}

/// Two newest-first id streams as one, each id once (an error ends it).
fn newest_first(
    a: impl Iterator<Item = Result<u64, StoreError>>,
    b: impl Iterator<Item = Result<u64, StoreError>>,
) -> impl Iterator<Item = Result<u64, StoreError>> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let next = match (a.peek(), b.peek()) {
            (Some(Err(_)), _) => a.next(),
            (_, Some(Err(_))) => b.next(),
            (Some(Ok(x)), Some(Ok(y))) if x == y => {
                b.next();
                a.next()
            }
            (Some(Ok(x)), Some(Ok(y))) if x > y => a.next(),
            (Some(Ok(_)), Some(Ok(_))) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => None,
        };
        next
    })
}

fn decode_event(bytes: &[u8]) -> Result<Event, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Io(format!("corrupt event: {e}")))
}

fn decode_family(bytes: &[u8]) -> Result<Family, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Io(format!("corrupt family record: {e}")))
}

/// The record key of an index-by-user key (what follows the user id).
fn indexed_key(index_key: &[u8]) -> Result<&str, StoreError> {
    index_key
        .get(8..)
        .and_then(|k| std::str::from_utf8(k).ok())
        .ok_or_else(|| StoreError::Io("corrupt index by user".into()))
}

fn decode_entry(bytes: &[u8]) -> Result<OutboxEntry, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Io(format!("corrupt outbox entry: {e}")))
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn decode_id(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn decode_user(bytes: &[u8]) -> Result<User, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Io(format!("corrupt user record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(io)
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_result<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => io(e),
    })
}

impl SledStore {
    fn read_user(&self, id: u64) -> Result<Option<User>, StoreError> {
        match self.users.get(id_key(id)).map_err(io)? {
            Some(bytes) => Ok(Some(decode_user(&bytes)?)),
            None => Ok(None),
        }
    }

    fn count(&self, state: &StateFilter) -> Result<usize, StoreError> {
        let get = |key: &[u8]| -> Result<u64, StoreError> {
            Ok(self
                .meta
                .get(key)
                .map_err(io)?
                .and_then(|v| decode_id(&v))
                .unwrap_or(0))
        };
        let n = match state {
            StateFilter::Active => get(COUNT_ACTIVE)?,
            StateFilter::Inactive => get(COUNT_INACTIVE)?,
            StateFilter::All => get(COUNT_ACTIVE)? + get(COUNT_INACTIVE)?,
        };
        usize::try_from(n).map_err(|_| StoreError::Io(format!("user counter {n} overflows")))
    }

    /// The unfiltered list without a scan: ids are assigned in order and rows are never
    /// removed (soft delete), so while no id was skipped (imports can skip), the user at
    /// position `offset` has id `offset + 1`; otherwise the start is found by skipping.
    fn list_all_by_id(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<User>), StoreError> {
        let count = self.count(&StateFilter::All)?;
        let dense = self.ids_dense()?;
        let mut page = Vec::new();
        let items: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if dense {
            Box::new(
                self.users
                    .range(id_key((offset as u64).saturating_add(1))..),
            )
        } else {
            Box::new(self.users.iter().skip(offset))
        };
        for item in items.take(limit) {
            let (_, bytes) = item.map_err(io)?;
            page.push(decode_user(&bytes)?);
        }
        Ok((count, page))
    }

    /// `status=deleted`: the rows straight from the (small) inactive index.
    fn list_inactive(&self, offset: usize, limit: usize) -> Result<(usize, Vec<User>), StoreError> {
        let count = self.count(&StateFilter::Inactive)?;
        let mut page = Vec::new();
        for key in self.inactive.iter().keys().skip(offset).take(limit) {
            let key = key.map_err(io)?;
            let id =
                decode_id(&key).ok_or_else(|| StoreError::Io("corrupt inactive index".into()))?;
            // A row deleted under our feet (no hard delete exists) is skipped, not an error.
            page.extend(self.read_user(id)?);
        }
        Ok((count, page))
    }

    /// `status=active` with dense ids: the active user at position `offset` is the one whose
    /// id minus the inactive ids below it is `offset + 1`, found by walking the inactive
    /// index (soft-deleted users, normally few), then the page is read from there.
    /// `None` when ids are not dense (imports can skip ids).
    fn list_active_dense(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Option<(usize, Vec<User>)>, StoreError> {
        if !self.ids_dense()? {
            return Ok(None);
        }
        let count = self.count(&StateFilter::Active)?;
        let mut start = (offset as u64).saturating_add(1);
        for key in self.inactive.iter().keys() {
            let key = key.map_err(io)?;
            match decode_id(&key) {
                Some(id) if id <= start => start = start.saturating_add(1),
                Some(_) => break,
                None => return Err(StoreError::Io("corrupt inactive index".into())),
            }
        }
        let mut page = Vec::new();
        for item in self.users.range(id_key(start)..) {
            if page.len() >= limit {
                break;
            }
            let (_, bytes) = item.map_err(io)?;
            let user = decode_user(&bytes)?;
            if user.is_active {
                page.push(user);
            }
        }
        Ok(Some((count, page)))
    }

    /// Ids run 1..=count without a gap, so position `offset` (0-based) is id `offset + 1`.
    fn ids_dense(&self) -> Result<bool, StoreError> {
        let count = self.count(&StateFilter::All)?;
        let next = self
            .meta
            .get(NEXT_ID)
            .map_err(io)?
            .and_then(|v| decode_id(&v))
            .unwrap_or(1);
        Ok(next.saturating_sub(1) == count as u64)
    }

    /// Builds the inactive index of a store written before it existed (one pass over the
    /// users, once), or rebuilds it if it disagrees with the inactive counter (a store
    /// written meanwhile by an older gatehouse that did not keep it).
    fn ensure_inactive_index(&self) -> Result<(), StoreError> {
        let indexed = self.meta.get(INACTIVE_INDEXED).map_err(io)?.is_some();
        if indexed && self.inactive.len() == self.count(&StateFilter::Inactive)? {
            return Ok(());
        }
        self.inactive.clear().map_err(io)?;
        for item in self.users.iter() {
            let (key, bytes) = item.map_err(io)?;
            if !decode_user(&bytes)?.is_active {
                self.inactive.insert(key, &[]).map_err(io)?;
            }
        }
        self.meta.insert(INACTIVE_INDEXED, &[1]).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    /// Builds the families-by-user index of a store written before it existed (one pass over
    /// the family records, once).
    fn ensure_families_index(&self) -> Result<(), StoreError> {
        if self.meta.get(FAMILIES_INDEXED).map_err(io)?.is_some() {
            return Ok(());
        }
        for item in self.families.iter() {
            let (key, bytes) = item.map_err(io)?;
            let family = std::str::from_utf8(&key)
                .map_err(|_| StoreError::Io("corrupt family key".into()))?;
            let record = decode_family(&bytes)?;
            self.user_families
                .insert(user_index_key(record.user_id, family), &[])
                .map_err(io)?;
        }
        self.meta.insert(FAMILIES_INDEXED, &[1]).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    /// Every browser session (`gatehouse store copy`), in key order.
    pub fn sessions(&self) -> impl Iterator<Item = Result<Session, StoreError>> + '_ {
        self.sessions
            .iter()
            .values()
            .map(|item| decode_session(&item.map_err(io)?))
    }

    /// How many sessions there are (progress of `store copy`).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Opens (or creates) the store in `dir`. Another process holding it is a clear error.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref ioe) if ioe.to_string().contains("could not acquire lock") => {
                    StoreError::InUse(dir.display().to_string())
                }
                other => StoreError::Io(format!("cannot open store in {}: {other}", dir.display())),
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let mut store = SledStore {
            users: tree("users")?,
            usernames: tree("usernames")?,
            emails: tree("emails")?,
            families: tree("families")?,
            user_families: tree("user_families")?,
            sessions: tree("sessions")?,
            user_sessions: tree("user_sessions")?,
            inactive: tree("inactive")?,
            meta: tree("meta")?,
            outbox: tree("outbox")?,
            audit: tree("audit")?,
            audit_index: tree("audit_index")?,
            mfa: tree("mfa")?,
            user_index: tree(USER_INDEX_TREE)?,
            api_keys: tree("api_keys")?,
            next_event: AtomicU64::new(1),
            event_tap: OnceLock::new(),
            commits: GroupCommit::start(db.clone())?,
            db,
        };
        store.ensure_inactive_index()?;
        store.ensure_families_index()?;
        store.ensure_user_index()?;
        if let Some((key, _)) = store.audit.last().map_err(io)? {
            let last = decode_id(&key).ok_or_else(|| StoreError::Io("corrupt event key".into()))?;
            store.next_event.store(last + 1, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// Every second factor with its user's id (`gatehouse store copy`), in id order.
    pub fn second_factors(&self) -> impl Iterator<Item = Result<(u64, Mfa), StoreError>> + '_ {
        self.mfa.iter().map(|item| {
            let (key, bytes) = item.map_err(io)?;
            let id = decode_id(&key)
                .ok_or_else(|| StoreError::Io("corrupt second-factor key".into()))?;
            let record = serde_json::from_slice(&bytes).map_err(io)?;
            Ok((id, record))
        })
    }

    /// Every refresh-token family record (`gatehouse store copy`), in key order.
    pub fn families(&self) -> impl Iterator<Item = Result<(String, Family), StoreError>> + '_ {
        self.families.iter().map(|item| {
            let (key, bytes) = item.map_err(io)?;
            let family = String::from_utf8(key.to_vec())
                .map_err(|_| StoreError::Io("corrupt family key".into()))?;
            Ok((family, decode_family(&bytes)?))
        })
    }

    /// How many family records there are (progress of `store copy`).
    pub fn family_count(&self) -> usize {
        self.families.len()
    }

    /// How many audit events there are (progress of `store copy`).
    pub fn event_count(&self) -> usize {
        self.audit.len()
    }

    /// The ids of user `user`'s index entries under `tag` below `end`, newest first.
    fn indexed(
        &self,
        tag: u8,
        user: u64,
        end: &[u8; 8],
    ) -> impl Iterator<Item = Result<u64, StoreError>> {
        let mut prefix = vec![tag];
        prefix.extend_from_slice(&id_key(user));
        let mut upper = prefix.clone();
        upper.extend_from_slice(end);
        self.audit_index.range(prefix..upper).rev().map(|item| {
            let (key, _) = item.map_err(io)?;
            key.get(9..)
                .and_then(decode_id)
                .ok_or_else(|| StoreError::Io("corrupt audit index key".into()))
        })
    }

    /// Tells the tap of committed events.
    fn told(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        if let Some(tap) = self.event_tap.get() {
            tap(events);
        }
    }

    /// Event `id`, if it is there.
    fn read_event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        self.audit
            .get(id_key(id))
            .map_err(io)?
            .map(|b| decode_event(&b))
            .transpose()
    }

    /// Waits until everything written so far is on disk; concurrent writers share one flush.
    async fn flush(&self) -> Result<(), StoreError> {
        self.commits.flush().await
    }

    /// Records `effects` in one transaction if `proceed` (given the second factors' tree,
    /// inside the transaction) says so; whether it did. Durable and told when it returns.
    async fn effects_if(
        &self,
        proceed: &Proceed<'_>,
        effects: &Effects,
    ) -> Result<bool, StoreError> {
        let (done, events) = tx_result(
            (
                &self.meta,
                &self.outbox,
                &self.sessions,
                &self.user_sessions,
                &self.families,
                &self.user_families,
                &self.audit,
                &self.audit_index,
                &self.mfa,
                &self.user_index,
                &self.api_keys,
            )
                .transaction(
                    |(
                        meta,
                        outbox,
                        sessions,
                        user_sessions,
                        families,
                        user_families,
                        audit,
                        audit_index,
                        mfa,
                        user_index,
                        api_keys,
                    )| {
                        if !proceed(mfa, user_index)? {
                            return Ok((false, Vec::new()));
                        }
                        let trees = EffectTrees {
                            next_event: &self.next_event,
                            audit,
                            audit_index,
                            meta,
                            outbox,
                            sessions,
                            user_sessions,
                            families,
                            user_families,
                            mfa,
                            user_index,
                            api_keys: Some(api_keys),
                        };
                        Ok((true, effects_tx(&trees, effects.clone())?))
                    },
                ),
        )?;
        if done {
            self.flush().await?;
            self.told(&events);
        }
        Ok(done)
    }

    /// Inserts `user` with its id under the indexes (its search postings too when
    /// `postings`; else the caller wrote them) and records the effects it causes, in one
    /// transaction.
    fn insert_tx(
        &self,
        user: &User,
        allocate_id: bool,
        postings: bool,
        effects: NewUserEffects<'_>,
    ) -> Result<(User, Vec<Event>), StoreError> {
        let uname = name_key(&user.username);
        let email = name_key(&user.email);
        tx_result(
            (
                &self.users,
                &self.usernames,
                &self.emails,
                &self.meta,
                &self.inactive,
                &self.outbox,
                &self.sessions,
                &self.user_sessions,
                &self.families,
                &self.user_families,
                &self.audit,
                &self.audit_index,
                &self.mfa,
                &self.user_index,
            )
                .transaction(|trees| {
                    let (users, usernames, emails, meta, inactive, outbox) =
                        (&trees.0, &trees.1, &trees.2, &trees.3, &trees.4, &trees.5);
                    let effect_trees = EffectTrees {
                        next_event: &self.next_event,
                        audit: &trees.10,
                        audit_index: &trees.11,
                        meta,
                        outbox,
                        sessions: &trees.6,
                        user_sessions: &trees.7,
                        families: &trees.8,
                        user_families: &trees.9,
                        mfa: &trees.12,
                        user_index: &trees.13,
                        api_keys: None,
                    };
                    if usernames.get(uname.as_bytes())?.is_some() {
                        return abort(StoreError::UsernameTaken);
                    }
                    if emails.get(email.as_bytes())?.is_some() {
                        return abort(StoreError::EmailTaken);
                    }
                    let next = meta.get(NEXT_ID)?.and_then(|v| decode_id(&v)).unwrap_or(1);
                    let mut user = user.clone();
                    if allocate_id {
                        user.id = next;
                    } else if users.get(id_key(user.id))?.is_some() {
                        return abort(StoreError::Io(format!("user id {} exists", user.id)));
                    }
                    meta.insert(NEXT_ID, &id_key(next.max(user.id + 1)))?;
                    let bytes = match encode(&user) {
                        Ok(b) => b,
                        Err(e) => return abort(e),
                    };
                    users.insert(&id_key(user.id), bytes)?;
                    usernames.insert(uname.as_bytes(), &id_key(user.id))?;
                    emails.insert(email.as_bytes(), &id_key(user.id))?;
                    bump(meta, state_key(user.is_active), 1)?;
                    if !user.is_active {
                        inactive.insert(&id_key(user.id), &[])?;
                    }
                    user_list::insert_index_tx(&trees.13, &user, postings)?;
                    // As PostgreSQL does, which decides them before the id exists.
                    let events = effects_tx(&effect_trees, effects(&user).about(user.id))?;
                    Ok((user, events))
                }),
        )
    }

    /// Applies `change` with the indexes and records the effects it causes, in one
    /// transaction.
    fn update_tx(
        &self,
        id: u64,
        change: UserChange<'_>,
        effects: ChangeEffects<'_>,
    ) -> Result<(User, Vec<Event>), StoreError> {
        tx_result(
            (
                &self.users,
                &self.usernames,
                &self.emails,
                &self.meta,
                &self.inactive,
                &self.outbox,
                &self.sessions,
                &self.user_sessions,
                &self.families,
                &self.user_families,
                &self.audit,
                &self.audit_index,
                &self.mfa,
                &self.user_index,
            )
                .transaction(|trees| {
                    let (users, usernames, emails, meta, inactive, outbox) =
                        (&trees.0, &trees.1, &trees.2, &trees.3, &trees.4, &trees.5);
                    let effect_trees = EffectTrees {
                        next_event: &self.next_event,
                        audit: &trees.10,
                        audit_index: &trees.11,
                        meta,
                        outbox,
                        sessions: &trees.6,
                        user_sessions: &trees.7,
                        families: &trees.8,
                        user_families: &trees.9,
                        mfa: &trees.12,
                        user_index: &trees.13,
                        api_keys: None,
                    };
                    let Some(bytes) = users.get(id_key(id))? else {
                        return abort(StoreError::NotFound);
                    };
                    let old = match decode_user(&bytes) {
                        Ok(u) => u,
                        Err(e) => return abort(e),
                    };
                    let mut new = old.clone();
                    change(&mut new);
                    new.id = id;
                    for (tree, before, after, taken) in [
                        (
                            usernames,
                            &old.username,
                            &new.username,
                            StoreError::UsernameTaken,
                        ),
                        (emails, &old.email, &new.email, StoreError::EmailTaken),
                    ] {
                        let (before, after) = (name_key(before), name_key(after));
                        if before == after {
                            continue;
                        }
                        if let Some(owner) = tree.get(after.as_bytes())? {
                            if decode_id(&owner) != Some(id) {
                                return abort(taken);
                            }
                        }
                        tree.remove(before.as_bytes())?;
                        tree.insert(after.as_bytes(), &id_key(id))?;
                    }
                    let bytes = match encode(&new) {
                        Ok(b) => b,
                        Err(e) => return abort(e),
                    };
                    users.insert(&id_key(id), bytes)?;
                    if old.is_active != new.is_active {
                        bump(meta, state_key(new.is_active), 1)?;
                        bump(meta, state_key(old.is_active), -1)?;
                        if new.is_active {
                            inactive.remove(&id_key(id))?;
                        } else {
                            inactive.insert(&id_key(id), &[])?;
                        }
                    }
                    user_list::move_index_tx(&trees.13, &old, &new)?;
                    let events = effects_tx(&effect_trees, effects(&old, &new))?;
                    Ok((new, events))
                }),
        )
    }
}

#[async_trait]
impl UserStore for SledStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.meta.get(NEXT_ID).map(|_| ()).map_err(io)
    }

    /// One process holds a sled store: there is nobody else to hear from.
    fn changes(&self) -> Option<ChangeFeed> {
        None
    }

    async fn create_user(
        &self,
        new: NewUser,
        effects: NewUserEffects<'_>,
    ) -> Result<User, StoreError> {
        let (user, events) = self.insert_tx(&new.into_user(), true, true, effects)?;
        self.flush().await?;
        self.told(&events);
        Ok(user)
    }

    async fn insert_user(&self, user: User) -> Result<User, StoreError> {
        let (user, _) = self.insert_tx(&user, false, true, &|_| Effects::none())?;
        self.flush().await?;
        Ok(user)
    }

    async fn insert_users(
        &self,
        users: Vec<User>,
    ) -> Result<Vec<Result<User, StoreError>>, StoreError> {
        // The batch's postings first, as whole blocks (`search_index::Gathered`): a user
        // whose insert then fails leaves a posting its record check skips, never a user
        // the search misses.
        let mut postings = search_index::Gathered::default();
        for u in &users {
            postings.add(&user_list::user_trigrams(u), u.id);
        }
        if !postings.is_empty() {
            postings.write(&self.user_index)?;
        }
        let results = users
            .iter()
            .map(|u| {
                self.insert_tx(u, false, false, &|_| Effects::none())
                    .map(|(u, _)| u)
            })
            .collect();
        self.flush().await?;
        Ok(results)
    }

    async fn get_user(&self, id: u64) -> Result<Option<User>, StoreError> {
        self.read_user(id)
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let key = name_key(username);
        match self.usernames.get(key.as_bytes()).map_err(io)? {
            Some(id) => match decode_id(&id) {
                Some(id) => self.read_user(id),
                None => Err(StoreError::Io("corrupt username index".into())),
            },
            None => Ok(None),
        }
    }

    async fn email_owner(&self, email: &str) -> Result<Option<u64>, StoreError> {
        let key = name_key(email);
        Ok(self
            .emails
            .get(key.as_bytes())
            .map_err(io)?
            .and_then(|v| decode_id(&v)))
    }

    async fn update_user(
        &self,
        id: u64,
        change: UserChange<'_>,
        effects: ChangeEffects<'_>,
    ) -> Result<User, StoreError> {
        let (updated, events) = self.update_tx(id, change, effects)?;
        self.flush().await?;
        self.told(&events);
        Ok(updated)
    }

    async fn record(&self, effects: Effects) -> Result<(), StoreError> {
        if effects.is_empty() {
            return Ok(());
        }
        self.effects_if(&|_, _| Ok(true), &effects)
            .await
            .map(|_| ())
    }

    async fn count_users(&self, state: &StateFilter) -> Result<usize, StoreError> {
        self.count(state)
    }

    async fn list_users(
        &self,
        filter: &ListFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<User>), StoreError> {
        if filter.search.is_none() {
            match filter.state {
                StateFilter::All => return self.list_all_by_id(offset, limit),
                StateFilter::Inactive => return self.list_inactive(offset, limit),
                StateFilter::Active => {
                    if let Some(listed) = self.list_active_dense(offset, limit)? {
                        return Ok(listed);
                    }
                }
            }
        }
        // A search (a substring of username or email, no index can serve it), or active
        // users with gaps in the ids: a scan. Without a search the count is the counter's
        // and the scan stops at the end of the page.
        let known_count = match filter.search {
            None => Some(self.count(&filter.state)?),
            Some(_) => None,
        };
        let mut count = 0;
        let mut page = Vec::new();
        for item in self.users.iter() {
            if known_count.is_some() && page.len() >= limit {
                break;
            }
            let (_, bytes) = item.map_err(io)?;
            let user = decode_user(&bytes)?;
            if !filter.matches(&user) {
                continue;
            }
            if count >= offset && page.len() < limit {
                page.push(user);
            }
            count += 1;
        }
        Ok((known_count.unwrap_or(count), page))
    }

    async fn users_after(
        &self,
        filter: &ListFilter,
        after: u64,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let mut page = Vec::new();
        if filter.state == StateFilter::Inactive && filter.search.is_none() {
            for key in self
                .inactive
                .range(id_key(after.saturating_add(1))..)
                .keys()
            {
                if page.len() >= limit {
                    break;
                }
                let key = key.map_err(io)?;
                let id = decode_id(&key)
                    .ok_or_else(|| StoreError::Io("corrupt inactive index".into()))?;
                page.extend(self.read_user(id)?);
            }
            return Ok(page);
        }
        for item in self.users.range(id_key(after.saturating_add(1))..) {
            if page.len() >= limit {
                break;
            }
            let (_, bytes) = item.map_err(io)?;
            let user = decode_user(&bytes)?;
            if filter.matches(&user) {
                page.push(user);
            }
        }
        Ok(page)
    }

    async fn query_users(
        &self,
        query: &UserQuery,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<UserPage, StoreError> {
        let rows = self.query_rows(query, after, limit.saturating_add(1))?;
        Ok(query.page(rows, limit))
    }

    async fn count_query(&self, query: &UserQuery) -> Result<UserCount, StoreError> {
        self.count_matching(query)
    }

    async fn group_counts(&self, limit: usize) -> Result<Vec<super::GroupCount>, StoreError> {
        self.group_counts_of(limit)
    }

    async fn get_family(&self, family: &str) -> Result<Option<Family>, StoreError> {
        match self.families.get(family.as_bytes()).map_err(io)? {
            Some(bytes) => decode_family(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn swap_family(
        &self,
        family: &str,
        expected: Option<&Family>,
        new: &Family,
    ) -> Result<bool, StoreError> {
        // Records are written only from the same serializer, so the bytes of an equal record
        // are equal. A transaction rather than a compare_and_swap: the index moves with it.
        let old = expected.map(encode).transpose()?;
        let swapped = tx_result((&self.families, &self.user_families).transaction(
            |(families, user_families)| {
                let stored = families.get(family.as_bytes())?;
                if stored.as_deref() != old.as_deref() {
                    return Ok(false);
                }
                put_family_tx(families, user_families, family, new)?;
                Ok(true)
            },
        ))?;
        if swapped {
            self.flush().await?;
        }
        Ok(swapped)
    }

    async fn get_mfa(&self, user_id: u64) -> Result<Option<Mfa>, StoreError> {
        match self.mfa.get(id_key(user_id)).map_err(io)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io),
            None => Ok(None),
        }
    }

    async fn swap_mfa(
        &self,
        user_id: u64,
        expected: Option<&Mfa>,
        new: Option<&Mfa>,
        effects: Effects,
    ) -> Result<bool, StoreError> {
        // Records are written only from the same serializer: equal records, equal bytes.
        let old = expected.map(encode).transpose()?;
        let enabled = new.is_some_and(|m| m.enabled);
        let new = new.map(encode).transpose()?;
        let key = id_key(user_id);
        self.effects_if(
            &|mfa, user_index| {
                if mfa.get(key)?.as_deref() != old.as_deref() {
                    return Ok(false);
                }
                match &new {
                    Some(bytes) => mfa.insert(&key, bytes.as_slice())?,
                    None => mfa.remove(&key)?,
                };
                // The list's "second factor on" filter and its count move with the record.
                user_list::set_mfa_tx(user_index, user_id, enabled)?;
                Ok(true)
            },
            &effects,
        )
        .await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.api_keys
            .get(api_key_key(b'k', id.as_bytes()))
            .map_err(io)?
            .map(|b| decode_api_key(&b))
            .transpose()
    }

    async fn find_api_key(&self, sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some(id) = self
            .api_keys
            .get(api_key_key(b'h', sha256.as_bytes()))
            .map_err(io)?
        else {
            return Ok(None);
        };
        let id =
            std::str::from_utf8(&id).map_err(|_| StoreError::Io("corrupt API key id".into()))?;
        Ok(self.get_api_key(id).await?.filter(|k| k.sha256 == sha256))
    }

    async fn list_api_keys(&self, user_id: u64) -> Result<Vec<ApiKey>, StoreError> {
        let mut found = Vec::new();
        let prefix = api_key_key(b'o', &id_key(user_id));
        for key in self.api_keys.scan_prefix(&prefix).keys() {
            let key = key.map_err(io)?;
            let id = key
                .get(prefix.len()..)
                .and_then(|id| std::str::from_utf8(id).ok())
                .ok_or_else(|| StoreError::Io("corrupt API key index key".into()))?;
            if let Some(record) = self.get_api_key(id).await? {
                if record.user_id == user_id {
                    found.push(record);
                }
            }
        }
        found.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn touch_api_keys(&self, used: &[(String, u64)]) -> Result<(), StoreError> {
        let touched = tx_result(self.api_keys.transaction(|tree| {
            let mut touched = false;
            for (id, when) in used {
                let record = api_key_key(b'k', id.as_bytes());
                let Some(bytes) = tree.get(&record)? else {
                    continue;
                };
                let mut key = match decode_api_key(&bytes) {
                    Ok(k) => k,
                    Err(e) => return abort(e),
                };
                if key.last_used.is_some_and(|at| at >= *when) {
                    continue;
                }
                key.last_used = Some(*when);
                match encode(&key) {
                    Ok(b) => tree.insert(record, b)?,
                    Err(e) => return abort(e),
                };
                touched = true;
            }
            Ok(touched)
        }))?;
        if touched {
            self.flush().await?;
        }
        Ok(())
    }

    async fn api_keys_after(&self, after: &str, limit: usize) -> Result<Vec<ApiKey>, StoreError> {
        let start = api_key_key(b'k', after.as_bytes());
        let end = [b'k' + 1];
        let mut found = Vec::new();
        for item in self.api_keys.range(start.clone()..end.to_vec()) {
            if found.len() >= limit {
                break;
            }
            let (key, bytes) = item.map_err(io)?;
            if key.as_ref() == start.as_slice() {
                continue;
            }
            found.push(decode_api_key(&bytes)?);
        }
        Ok(found)
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        match self.sessions.get(id_hash.as_bytes()).map_err(io)? {
            Some(bytes) => decode_session(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn touch_session(&self, id_hash: &str, last_seen: u64) -> Result<(), StoreError> {
        let touched = tx_result(self.sessions.transaction(|sessions| {
            let Some(bytes) = sessions.get(id_hash.as_bytes())? else {
                return Ok(false);
            };
            let mut session = match decode_session(&bytes) {
                Ok(s) => s,
                Err(e) => return abort(e),
            };
            if session.last_seen >= last_seen {
                return Ok(false);
            }
            session.last_seen = last_seen;
            match encode(&session) {
                Ok(b) => sessions.insert(id_hash.as_bytes(), b)?,
                Err(e) => return abort(e),
            };
            Ok(true)
        }))?;
        if touched {
            self.flush().await?;
        }
        Ok(())
    }

    async fn list_sessions(&self, user_id: u64) -> Result<Vec<Session>, StoreError> {
        let mut found = Vec::new();
        for key in self.user_sessions.scan_prefix(id_key(user_id)).keys() {
            let key = key.map_err(io)?;
            // An entry whose session went under our feet is skipped.
            if let Some(session) = self.get_session(indexed_key(&key)?).await? {
                found.push(session);
            }
        }
        found.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then_with(|| a.id_hash.cmp(&b.id_hash))
        });
        Ok(found)
    }

    async fn list_families(&self, user_id: u64) -> Result<Vec<(String, Family)>, StoreError> {
        let mut found = Vec::new();
        for key in self.user_families.scan_prefix(id_key(user_id)).keys() {
            let key = key.map_err(io)?;
            let family = indexed_key(&key)?;
            match self.get_family(family).await? {
                Some(record) if record.user_id == user_id => {
                    found.push((family.to_string(), record));
                }
                _ => {}
            }
        }
        found
            .sort_by(|(a_id, a), (b_id, b)| b.created.cmp(&a.created).then_with(|| a_id.cmp(b_id)));
        Ok(found)
    }

    async fn delete_expired_sessions(&self, now: u64, idle: u64) -> Result<usize, StoreError> {
        // A sweep: the one reader of every session. Each deletion checks again in its
        // transaction, so a session touched meanwhile stays.
        let mut deleted = 0;
        for item in self.sessions.iter() {
            let (key, bytes) = item.map_err(io)?;
            if decode_session(&bytes)?.live_at(now, idle) {
                continue;
            }
            let gone = tx_result((&self.sessions, &self.user_sessions).transaction(
                |(sessions, user_sessions)| {
                    let Some(bytes) = sessions.get(&key)? else {
                        return Ok(false);
                    };
                    let session = match decode_session(&bytes) {
                        Ok(s) => s,
                        Err(e) => return abort(e),
                    };
                    if session.live_at(now, idle) {
                        return Ok(false);
                    }
                    delete_session_tx(sessions, user_sessions, &session.id_hash)?;
                    Ok(true)
                },
            ))?;
            if gone {
                deleted += 1;
            }
        }
        if deleted > 0 {
            self.flush().await?;
        }
        Ok(deleted)
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let end = id_key(before.unwrap_or(u64::MAX));
        let mut found = Vec::new();
        // By a user: that user's index entries, newest first; else the whole trail. By
        // actor alone: the actor entries and the user's target entries (an event on oneself
        // is indexed by target only), merged.
        let ids: Box<dyn Iterator<Item = Result<u64, StoreError>>> =
            match (filter.target, filter.actor) {
                (Some(target), _) => Box::new(self.indexed(b't', target, &end)),
                (None, Some(actor)) => Box::new(newest_first(
                    self.indexed(b'a', actor, &end),
                    self.indexed(b't', actor, &end),
                )),
                (None, None) => Box::new(std::iter::empty()),
            };
        if filter.target.is_some() || filter.actor.is_some() {
            for id in ids {
                if let Some(event) = self.read_event(id?)? {
                    if filter.matches(&event) {
                        found.push(event);
                        if found.len() >= limit {
                            break;
                        }
                    }
                }
            }
            return Ok(found);
        }
        for item in self.audit.range(..end).rev() {
            let (_, bytes) = item.map_err(io)?;
            let event = decode_event(&bytes)?;
            if filter.matches(&event) {
                found.push(event);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        values_after(&self.audit, after, limit, decode_event)
    }

    async fn insert_events(&self, events: Vec<Event>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        tx_result(
            (&self.audit, &self.audit_index).transaction(|(audit, audit_index)| {
                for event in &events {
                    // Refused, not overwritten (its index entries would stay behind).
                    if audit.get(id_key(event.id))?.is_some() {
                        return abort(StoreError::Io(format!("event id {} exists", event.id)));
                    }
                    put_event_tx(audit, audit_index, event)?;
                }
                Ok(())
            }),
        )?;
        let highest = events.iter().map(|e| e.id).max().unwrap_or(0);
        self.next_event.fetch_max(highest + 1, Ordering::Relaxed);
        self.flush().await
    }

    async fn delete_events_before(&self, time: u64) -> Result<usize, StoreError> {
        // Ids follow time closely: the oldest come first, and the sweep ends past the first
        // event young enough to keep, by the slack a later id's time may trail by.
        let mut deleted = 0;
        let stop = time.saturating_add(EVENT_TIME_SLACK_MS);
        for item in self.audit.iter() {
            let (_, bytes) = item.map_err(io)?;
            let event = decode_event(&bytes)?;
            if event.time >= stop {
                break;
            }
            if event.time >= time {
                continue;
            }
            tx_result(
                (&self.audit, &self.audit_index).transaction(|(audit, audit_index)| {
                    audit.remove(&id_key(event.id))?;
                    for key in event_index_keys(&event) {
                        audit_index.remove(key)?;
                    }
                    Ok(())
                }),
            )?;
            deleted += 1;
        }
        if deleted > 0 {
            self.flush().await?;
        }
        Ok(deleted)
    }

    fn tap_events(&self, tap: EventTap) {
        // Set once, when the process starts; a second tap would be a wiring mistake.
        if self.event_tap.set(tap).is_err() {
            log::warn!("the store's event tap was set twice; the first stays");
        }
    }
}

#[async_trait]
impl MailOutbox for SledStore {
    async fn claim_mails(
        &self,
        now: u64,
        lease_seconds: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut claimed = Vec::new();
        for item in self.outbox.iter() {
            if claimed.len() >= limit {
                break;
            }
            let (key, bytes) = item.map_err(io)?;
            let mut entry = decode_entry(&bytes)?;
            if entry.not_before > now || entry.lease_until > now {
                continue;
            }
            entry.lease_until = now.saturating_add(lease_seconds);
            // Another claimer in this process that won the entry first keeps it.
            let won = self
                .outbox
                .compare_and_swap(&key, Some(bytes), Some(encode(&entry)?))
                .map_err(io)?
                .is_ok();
            if won {
                claimed.push(entry);
            }
        }
        if !claimed.is_empty() {
            self.flush().await?;
        }
        Ok(claimed)
    }

    async fn ack_mail(&self, id: u64) -> Result<(), StoreError> {
        self.outbox.remove(id_key(id)).map_err(io)?;
        self.flush().await
    }

    async fn retry_mail(&self, id: u64, attempts: u32, not_before: u64) -> Result<(), StoreError> {
        let updated = self
            .outbox
            .fetch_and_update(id_key(id), |old| {
                let old = old?;
                // An entry that does not decode is left as it is (`None` would delete it).
                let Ok(mut entry) = decode_entry(old) else {
                    return Some(old.to_vec());
                };
                entry.attempts = attempts;
                entry.not_before = not_before;
                entry.lease_until = 0;
                Some(serde_json::to_vec(&entry).unwrap_or_else(|_| old.to_vec()))
            })
            .map_err(io)?;
        if updated.is_some() {
            self.flush().await?;
        }
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<usize, StoreError> {
        Ok(self.outbox.len())
    }

    async fn outbox_entries(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        values_after(&self.outbox, after_id, limit, decode_entry)
    }
}

/// Opens the store at `path` again after a test dropped it: sled's background flusher lets go
/// of the directory's lock a moment after the last handle, so a busy machine may need a retry.
#[cfg(test)]
pub(crate) fn reopen(path: &std::path::Path) -> SledStore {
    let mut tries = 0;
    loop {
        match SledStore::open(path, 1 << 20) {
            Ok(store) => return store,
            Err(_) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::new_user;
    use super::*;

    #[test]
    fn two_newest_first_streams_merge_once_each() {
        let ok = |v: Vec<u64>| v.into_iter().map(Ok::<u64, StoreError>);
        let merged: Vec<u64> = newest_first(ok(vec![9, 7, 4, 1]), ok(vec![8, 7, 2]))
            .collect::<Result<_, _>>()
            .expect("no error");
        assert_eq!(merged, [9, 8, 7, 4, 2, 1]);
        let broken = vec![Ok(5), Err(StoreError::Io("x".into()))].into_iter();
        let out: Vec<_> = newest_first(broken, ok(vec![6])).collect();
        assert_eq!(out[0], Ok(6));
        assert_eq!(out[1], Ok(5));
        assert!(out[2].is_err());
    }

    #[tokio::test]
    async fn ids_increase_and_names_are_unique_case_insensitively() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        {
            let a = store
                .create_user(new_user("alice"), &|_| Effects::none())
                .await
                .expect("alice");
            let b = store
                .create_user(new_user("bob"), &|_| Effects::none())
                .await
                .expect("bob");
            assert_eq!((a.id, b.id), (1, 2));
            assert_eq!(
                store
                    .create_user(new_user("ALICE"), &|_| Effects::none())
                    .await,
                Err(StoreError::UsernameTaken)
            );
            let mut dup_email = new_user("carol");
            dup_email.email = "Bob@Example.com".into();
            assert_eq!(
                store.create_user(dup_email, &|_| Effects::none()).await,
                Err(StoreError::EmailTaken)
            );
            assert_eq!(
                store
                    .find_by_username("Alice")
                    .await
                    .expect("lookup")
                    .map(|u| u.id),
                Some(1)
            );
        };
    }

    #[tokio::test]
    async fn update_moves_indexes_and_refuses_taken_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        {
            store
                .create_user(new_user("alice"), &|_| Effects::none())
                .await
                .expect("alice");
            store
                .create_user(new_user("bob"), &|_| Effects::none())
                .await
                .expect("bob");
            let r = store
                .update_user(1, &|u| u.username = "Bob".into(), &|_, _| Effects::none())
                .await;
            assert_eq!(r, Err(StoreError::UsernameTaken));
            let u = store
                .update_user(1, &|u| u.username = "alicia".into(), &|_, _| {
                    Effects::none()
                })
                .await
                .expect("rename");
            assert_eq!(u.username, "alicia");
            assert!(store
                .find_by_username("alice")
                .await
                .expect("lookup")
                .is_none());
            assert_eq!(
                store
                    .find_by_username("ALICIA")
                    .await
                    .expect("lookup")
                    .map(|u| u.id),
                Some(1)
            );
            assert_eq!(
                store
                    .update_user(99, &|_| {}, &|_, _| Effects::none())
                    .await,
                Err(StoreError::NotFound)
            );
        };
    }

    #[tokio::test]
    async fn second_open_of_a_held_store_says_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = SledStore::open(dir.path(), 1 << 20).expect("open");
        let err = SledStore::open(dir.path(), 1 << 20)
            .err()
            .expect("second open fails");
        assert!(matches!(err, StoreError::InUse(_)), "{err:?}");
    }

    #[tokio::test]
    async fn family_swap_is_compare_and_swap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let f1 = Family {
            user_id: 1,
            current: "b".into(),
            parent: Some("a".into()),
            rotated_at: 1,
            revoked: false,
            expires_at: 10,
            created: 1,
            client_ip: "192.0.2.1".into(),
            user_agent: "test".into(),
        };
        let mut f2 = f1.clone();
        f2.current = "c".into();
        {
            assert!(store.swap_family("a", None, &f1).await.expect("first"));
            assert!(!store.swap_family("a", None, &f2).await.expect("stale"));
            assert!(store.swap_family("a", Some(&f1), &f2).await.expect("cas"));
            assert_eq!(store.get_family("a").await.expect("get"), Some(f2));
        };
    }

    #[tokio::test]
    async fn counters_follow_state_and_dense_pages_skip_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        {
            create_users(&store, 10).await;
            store
                .update_user(4, &|u| u.is_active = false, &|_, _| Effects::none())
                .await
                .expect("deactivate");
            store
                .update_user(4, &|u| u.first_name = "x".into(), &|_, _| Effects::none())
                .await
                .expect("touch");
            // An imported user with a gap in the ids: pages must still be right.
            let mut gap = store.get_user(1).await.expect("get").expect("user");
            gap.id = 20;
            gap.username = "imported".into();
            gap.email = "imported@example.com".into();
            store.insert_user(gap).await.expect("insert");
        };
        assert_eq!(
            store
                .count_users(&StateFilter::Active)
                .await
                .expect("count"),
            10
        );
        assert_eq!(
            store
                .count_users(&StateFilter::Inactive)
                .await
                .expect("count"),
            1
        );
        let (count, page) = store
            .list_users(&ListFilter::default(), 8, 5)
            .await
            .expect("page");
        assert_eq!(count, 11);
        assert_eq!(
            page.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![9, 10, 20]
        );
    }

    /// Users `u0`..`u{n-1}`, ids 1..=n.
    async fn create_users(store: &SledStore, n: usize) {
        for i in 0..n {
            store
                .create_user(new_user(&format!("u{i}")), &|_| Effects::none())
                .await
                .expect("create");
        }
    }

    /// Every page of `filter` for every offset and a few limits, against filtering all users.
    async fn assert_pages_match_a_scan(store: &SledStore, filter: &ListFilter) {
        let all: Vec<User> = store
            .users
            .iter()
            .values()
            .map(|v| decode_user(&v.expect("read")).expect("decode"))
            .filter(|u| filter.matches(u))
            .collect();
        for limit in [0, 1, 2, 3, 50] {
            for offset in 0..=all.len() + 1 {
                let (count, page) = store.list_users(filter, offset, limit).await.expect("page");
                let want: Vec<u64> = all.iter().skip(offset).take(limit).map(|u| u.id).collect();
                assert_eq!(count, all.len(), "{filter:?} count");
                assert_eq!(
                    page.iter().map(|u| u.id).collect::<Vec<_>>(),
                    want,
                    "{filter:?} offset {offset} limit {limit}"
                );
            }
        }
    }

    fn by_state(state: StateFilter) -> ListFilter {
        ListFilter {
            state,
            search: None,
        }
    }

    #[tokio::test]
    async fn status_pages_come_from_the_inactive_index_and_match_a_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let states = [StateFilter::All, StateFilter::Active, StateFilter::Inactive];
        {
            create_users(&store, 12).await;
            for id in [1, 2, 5, 9, 12] {
                store
                    .update_user(id, &|u| u.is_active = false, &|_, _| Effects::none())
                    .await
                    .expect("deactivate");
            }
            store
                .update_user(5, &|u| u.is_active = true, &|_, _| Effects::none())
                .await
                .expect("restore");
            // Another change to an inactive user leaves the index alone.
            store
                .update_user(9, &|u| u.first_name = "x".into(), &|_, _| Effects::none())
                .await
                .expect("touch");
            // An imported inactive user keeps the ids dense.
            let mut imported = store.get_user(3).await.expect("get").expect("user");
            imported.id = 13;
            imported.username = "imported".into();
            imported.email = "imported@example.com".into();
            imported.is_active = false;
            store.insert_user(imported).await.expect("insert");
        };
        let index: Vec<u64> = store
            .inactive
            .iter()
            .keys()
            .map(|k| decode_id(&k.expect("key")).expect("id"))
            .collect();
        assert_eq!(index, vec![1, 2, 9, 12, 13]);
        assert!(store.ids_dense().expect("dense"));
        for state in &states {
            assert_pages_match_a_scan(&store, &by_state(state.clone())).await;
        }
        // A gap in the ids: active pages fall back to a scan and are still right.
        {
            let mut gap = store.get_user(4).await.expect("get").expect("user");
            gap.id = 40;
            gap.username = "gap".into();
            gap.email = "gap@example.com".into();
            store.insert_user(gap).await.expect("insert");
        };
        assert!(!store.ids_dense().expect("dense"));
        for state in &states {
            assert_pages_match_a_scan(&store, &by_state(state.clone())).await;
        }
        let search = ListFilter {
            state: StateFilter::Active,
            search: Some("U1".into()),
        };
        assert_pages_match_a_scan(&store, &search).await;
    }

    #[tokio::test]
    async fn a_store_without_the_inactive_index_gets_it_when_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SledStore::open(dir.path(), 1 << 20).expect("open");
            {
                create_users(&store, 5).await;
                store
                    .update_user(3, &|u| u.is_active = false, &|_, _| Effects::none())
                    .await
                    .expect("deactivate");
            };
            // As a store written before the index existed (or by an older gatehouse).
            store.inactive.clear().expect("clear");
            store.meta.remove(INACTIVE_INDEXED).expect("unmark");
            store.db.flush().expect("flush");
        }
        let store = super::reopen(dir.path());
        let (count, page) = store
            .list_users(&by_state(StateFilter::Inactive), 0, 10)
            .await
            .expect("page");
        assert_eq!(
            (count, page.iter().map(|u| u.id).collect::<Vec<_>>()),
            (1, vec![3])
        );
        assert_pages_match_a_scan(&store, &by_state(StateFilter::Active)).await;
        // An index that disagrees with the counter is rebuilt too.
        store.inactive.clear().expect("clear");
        store.db.flush().expect("flush");
        drop(store);
        let store = super::reopen(dir.path());
        assert_eq!(store.inactive.len(), 1);
    }

    #[tokio::test]
    async fn a_store_without_the_families_index_gets_it_when_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let family = |user_id| super::super::Family {
            user_id,
            current: "c".into(),
            parent: None,
            rotated_at: 0,
            revoked: false,
            expires_at: 10,
            created: 0,
            client_ip: String::new(),
            user_agent: String::new(),
        };
        {
            let store = SledStore::open(dir.path(), 1 << 20).expect("open");
            for (name, user) in [("a", 1), ("b", 2), ("c", 1)] {
                assert!(store
                    .swap_family(name, None, &family(user))
                    .await
                    .expect("swap"));
            }
            // As a store written before the index existed.
            store.user_families.clear().expect("clear");
            store.meta.remove(FAMILIES_INDEXED).expect("unmark");
            store.db.flush().expect("flush");
        }
        let store = super::reopen(dir.path());
        let listed = store.list_families(1).await.expect("list");
        assert_eq!(
            listed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        {
            for n in ["ann", "bob", "cat", "dan"] {
                store
                    .create_user(new_user(n), &|_| Effects::none())
                    .await
                    .expect("create");
            }
            store
                .update_user(2, &|u| u.is_active = false, &|_, _| Effects::none())
                .await
                .expect("deactivate");
        };
        let all = ListFilter::default();
        let (count, page) = store.list_users(&all, 1, 2).await.expect("list");
        assert_eq!(count, 4);
        assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), vec![2, 3]);
        let inactive = ListFilter {
            state: super::super::StateFilter::Inactive,
            search: None,
        };
        assert_eq!(store.list_users(&inactive, 0, 10).await.expect("list").0, 1);
        let search = ListFilter {
            state: Default::default(),
            search: Some("CA".into()),
        };
        let (n, users) = store.list_users(&search, 0, 10).await.expect("list");
        assert_eq!((n, users[0].username.as_str()), (1, "cat"));
    }
}
