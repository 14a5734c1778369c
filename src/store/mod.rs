//! Users and refresh-token families behind the async `UserStore` trait, the only way to the
//! data: the embedded sled backend today, a networked one (PostgreSQL) beside it. Every write
//! is durable when it returns, with its `Effects` (the mails it causes) written by the same
//! transaction. `open` is the one place that picks the configured backend.

mod apikeys;
mod audit;
mod effects;
mod group_commit;
mod mfa;
pub mod postgres;
mod query;
mod sessions;
mod sled_store;

pub use apikeys::{touch_due, ApiKey, UseBatch, TOUCH_INTERVAL};
pub use audit::{Action, Event, EventFilter, EventTap};
pub use effects::{ChangeEffects, Effects, NewUserEffects};
pub use mfa::{Mfa, PendingStep};
pub use postgres::{PgOptions, PgStore};
pub use query::{
    capped_count, estimate, names_key, CountPlan, Counted, GroupCount, SortKey, UserBatches,
    UserCount, UserCursor, UserPage, UserQuery, UserSort, COUNT_BUDGET, COUNT_CAP,
};
pub use sessions::{Ended, Session, METHOD_PASSWORD, METHOD_PASSWORD_OTP};
pub use sled_store::SledStore;

use crate::config::{Config, StoreBackend};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// PHC string (argon2id), or an imported Django hash; never returned or logged.
    pub password: String,
    pub is_active: bool,
    pub is_staff: bool,
    /// Unix seconds.
    pub date_joined: u64,
    pub last_login: Option<u64>,
    pub deleted_at: Option<u64>,
    /// Bumped on soft delete and password change: every token carrying an older one is dead.
    pub token_version: u64,
    /// Django group names, sorted and each once (`group_names`). Records written before
    /// groups existed have none.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The address was proven by a verification (or reset) link. Records written before mail
    /// existed, like imported users (Django keeps no such flag), count as verified.
    #[serde(default = "verified_before_mail_existed")]
    pub email_verified: bool,
    /// Sessions and refresh families the user ended, until they would have expired anyway
    /// (SPEC §15). Records written before sessions existed have none.
    #[serde(default)]
    pub ended: Vec<Ended>,
    /// A service account (SPEC §19): no password, no sign-in, API keys only; made by staff.
    /// Records written before service accounts existed are people.
    #[serde(default)]
    pub is_service: bool,
}

fn verified_before_mail_existed() -> bool {
    true
}

/// Django's limit on a group name (`auth.Group.name`, `max_length=150`).
pub const GROUP_NAME_MAX: usize = 150;

/// A user's groups as they are stored and shown: sorted (by bytes), each name once.
pub fn group_names(mut names: Vec<String>) -> Vec<String> {
    names.sort_unstable();
    names.dedup();
    names
}

/// What registration supplies; the store assigns the id.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password: String,
    pub is_staff: bool,
    pub date_joined: u64,
    /// A service account (no password, no sign-in).
    pub is_service: bool,
}

impl NewUser {
    /// The user a registration creates: active, no login yet, unverified, in no group; the
    /// store assigns the id (0 until then).
    pub fn into_user(self) -> User {
        User {
            id: 0,
            username: self.username,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            password: self.password,
            is_active: true,
            is_staff: self.is_staff,
            date_joined: self.date_joined,
            last_login: None,
            deleted_at: None,
            token_version: 0,
            groups: Vec::new(),
            email_verified: false,
            ended: Vec::new(),
            is_service: self.is_service,
        }
    }
}

/// One login's chain of refresh tokens. The root token's jti names the family; a family
/// without a record is a root that was never rotated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub user_id: u64,
    /// jti of the only refresh token of the family that may be used.
    pub current: String,
    /// jti of the token `current` was rotated from, replayable within the grace period.
    pub parent: Option<String>,
    /// Unix seconds of the last rotation.
    pub rotated_at: u64,
    pub revoked: bool,
    /// When the newest token expires; the record is useless after it.
    pub expires_at: u64,
    /// The device the family belongs to (SPEC §15 "sessions and devices"): when its root
    /// token was minted (unix seconds), from where, by what. Records written before devices
    /// were kept have zero and empty.
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub client_ip: String,
    #[serde(default)]
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateFilter {
    #[default]
    All,
    Active,
    Inactive,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: StateFilter,
    /// Case-insensitive substring of username or email.
    pub search: Option<String>,
}

impl ListFilter {
    pub fn matches(&self, u: &User) -> bool {
        let state_ok = match self.state {
            StateFilter::All => true,
            StateFilter::Active => u.is_active,
            StateFilter::Inactive => !u.is_active,
        };
        state_ok
            && self.search.as_ref().is_none_or(|s| {
                let s = s.to_lowercase();
                u.username.to_lowercase().contains(&s) || u.email.to_lowercase().contains(&s)
            })
    }
}

/// The case-insensitive key of a username or an email: what uniqueness is decided on. Every
/// backend stores and compares this, computed here, so all of them fold case alike.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    #[error("the data directory {0} is in use by another gatehouse process; stop it first (sled allows one process per store)")]
    InUse(String),
    /// The store cannot answer right now (unreachable, overloaded): worth a retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Concurrent writers kept changing the record; the caller may retry.
    #[error("the record kept changing under concurrent writes")]
    Conflict,
    /// The store answered with an error (a damaged record, a failed disk).
    #[error("store error: {0}")]
    Io(String),
}

/// What a backend saw change that was not written through this process (another replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This user's state changed: drop what is cached of it.
    User(u64),
    /// Changes may have been missed (the feed reconnected): drop everything cached.
    All,
    /// Every change committed before this instant has been delivered above it (a heartbeat
    /// came back through the feed): the cache is fresh as of then.
    Seen(std::time::Instant),
}

/// Changes made elsewhere, in the order they were committed.
pub type ChangeFeed = tokio::sync::broadcast::Receiver<Change>;

/// How many times a compare-and-swap is retried against concurrent writers before the
/// caller gets `StoreError::Conflict` (each retry means another writer made progress).
pub const MAX_SWAP_ATTEMPTS: usize = 16;

/// A change to one user, decided by the caller, applied atomically with the indexes.
pub type UserChange<'a> = &'a (dyn Fn(&mut User) + Sync);

#[async_trait]
pub trait UserStore: MailOutbox + Send + Sync {
    /// Answers when the store can serve reads and writes (`/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Changes other processes make (`None`: every write goes through this process, as with
    /// sled, so the callers' own cache updates are the whole story).
    fn changes(&self) -> Option<ChangeFeed>;
    /// Creates a user (the store assigns the id) and records the effects `effects(&created)`
    /// returns, in one transaction; fails with `UsernameTaken`/`EmailTaken` (and records
    /// nothing) if a name is held.
    async fn create_user(
        &self,
        new: NewUser,
        effects: NewUserEffects<'_>,
    ) -> Result<User, StoreError>;
    /// Creates a user with a given id (import); later ids continue after the highest.
    async fn insert_user(&self, user: User) -> Result<User, StoreError>;
    /// Many `insert_user`s, each its own transaction, made durable by one flush at the end
    /// (bulk import and benchmark loading).
    async fn insert_users(
        &self,
        users: Vec<User>,
    ) -> Result<Vec<Result<User, StoreError>>, StoreError>;
    async fn get_user(&self, id: u64) -> Result<Option<User>, StoreError>;
    /// Case-insensitive (`name_key`).
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Case-insensitive (`name_key`); the id that holds the address.
    async fn email_owner(&self, email: &str) -> Result<Option<u64>, StoreError>;
    /// Applies `change`, keeping the username and email indexes in step, and records the
    /// effects `effects(&before, &after)` returns, in one transaction; fails with
    /// `UsernameTaken`/`EmailTaken` (and records nothing) if the new name belongs to someone
    /// else. A change that changes nothing still records its effects.
    async fn update_user(
        &self,
        id: u64,
        change: UserChange<'_>,
        effects: ChangeEffects<'_>,
    ) -> Result<User, StoreError>;
    /// Records effects no user change causes (a reset link, a resent verification), in one
    /// transaction.
    async fn record(&self, effects: Effects) -> Result<(), StoreError>;
    /// Users in a state, without a scan.
    async fn count_users(&self, state: &StateFilter) -> Result<usize, StoreError>;
    /// Users matching `filter` in id order: the total count and the page `[offset, offset+limit)`.
    async fn list_users(
        &self,
        filter: &ListFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<User>), StoreError>;
    /// Keyset page: up to `limit` users matching `filter` with ids above `after`, in id order.
    async fn users_after(
        &self,
        filter: &ListFilter,
        after: u64,
        limit: usize,
    ) -> Result<Vec<User>, StoreError>;
    /// The console's users list (SPEC §18): up to `limit` users matching `query` after
    /// `after` (from the start when `None`) in the query's order, and the cursor of the next
    /// page when there is one. Keyset: a page costs the same on page 1 and page 10,000.
    async fn query_users(
        &self,
        query: &UserQuery,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<UserPage, StoreError>;
    /// How many users match `query`. Exact at any size when the counters answer it
    /// (`UserQuery::count_plan`: the state and at most one filter); otherwise exact when at
    /// most `COUNT_BUDGET` candidates had to be examined, else `About` (an estimate from the
    /// part examined, or the planner's), or `AtLeast(COUNT_CAP)`.
    async fn count_query(&self, query: &UserQuery) -> Result<UserCount, StoreError>;
    /// The groups users hold, sorted by name (bytes), each with its members counted up to
    /// the cap (`GroupCount`): all of them when there are at most `limit`, else `limit` of
    /// them (which ones is the backend's choice; callers ask one more than they show to
    /// know). sled walks its group index (work bounded by `limit` times the cap);
    /// PostgreSQL reads the `groups` column of every user.
    async fn group_counts(&self, limit: usize) -> Result<Vec<GroupCount>, StoreError>;
    async fn get_family(&self, family: &str) -> Result<Option<Family>, StoreError>;
    /// Compare-and-swap of a family record: `Ok(false)` when `expected` is no longer current.
    async fn swap_family(
        &self,
        family: &str,
        expected: Option<&Family>,
        new: &Family,
    ) -> Result<bool, StoreError>;
    /// The user's second factor (SPEC §17), pending or enabled.
    async fn get_mfa(&self, user_id: u64) -> Result<Option<Mfa>, StoreError>;
    /// Whether each of `user_ids` (a page of a list) has its second factor on, in order: one
    /// round trip on PostgreSQL (the console's users page and CSV), local reads on sled.
    async fn factors_on(&self, user_ids: &[u64]) -> Result<Vec<bool>, StoreError> {
        let mut on = Vec::with_capacity(user_ids.len());
        for id in user_ids {
            on.push(self.get_mfa(*id).await?.is_some_and(|m| m.enabled));
        }
        Ok(on)
    }
    /// Compare-and-swap of a user's second factor (`None`: no record), recording `effects`
    /// in the same transaction: `Ok(false)` (and nothing recorded) when `expected` is no
    /// longer what is stored. Two writers racing from the same record: one wins.
    async fn swap_mfa(
        &self,
        user_id: u64,
        expected: Option<&Mfa>,
        new: Option<&Mfa>,
        effects: Effects,
    ) -> Result<bool, StoreError>;
    /// API key `id` (SPEC §19), revoked and expired ones included. Keys are created and
    /// revoked as a write's `Effects`.
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;
    /// The key whose SHA-256 (`auth::apikey::hash`) is `sha256`.
    async fn find_api_key(&self, sha256: &str) -> Result<Option<ApiKey>, StoreError>;
    /// The keys of user `user_id`, newest first (equal `created` in id order), revoked and
    /// expired ones included.
    async fn list_api_keys(&self, user_id: u64) -> Result<Vec<ApiKey>, StoreError>;
    /// Sets `last_used` of each `(id, when)` where `when` is later than the stored one (never
    /// back); unknown ids are no error. One batch, one durable write.
    async fn touch_api_keys(&self, used: &[(String, u64)]) -> Result<(), StoreError>;
    /// Up to `limit` keys with ids above `after` (`""`: from the first), in id order (`store
    /// copy`, which writes them back as `Effects::api_keys`).
    async fn api_keys_after(&self, after: &str, limit: usize) -> Result<Vec<ApiKey>, StoreError>;
    async fn get_session(&self, id_hash: &str) -> Result<Option<Session>, StoreError>;
    /// Sets last_seen (no-op if the session is gone; never moves it back, so two replicas
    /// touching at once keep the later visit).
    async fn touch_session(&self, id_hash: &str, last_seen: u64) -> Result<(), StoreError>;
    /// The user's sessions, newest first (expired ones included; callers filter with live_at).
    /// Equal `created` are in id-hash order.
    async fn list_sessions(&self, user_id: u64) -> Result<Vec<Session>, StoreError>;
    /// The user's refresh families that have a record (id, record), newest first (by
    /// `created`; equal ones, such as records from before devices were kept, in id order).
    async fn list_families(&self, user_id: u64) -> Result<Vec<(String, Family)>, StoreError>;
    /// Deletes sessions not live at `now` (idle `idle` seconds); how many went.
    async fn delete_expired_sessions(&self, now: u64, idle: u64) -> Result<usize, StoreError>;
    /// Audit events matching `filter`, newest first (by id): up to `limit` with ids below
    /// `before` (all when `None`).
    async fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// Up to `limit` events with ids above `after`, oldest first (`store copy`).
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// Writes events with the ids they carry (`store copy`); ids the store assigns later
    /// continue above the highest. Told to nobody: they were told where they were made.
    async fn insert_events(&self, events: Vec<Event>) -> Result<(), StoreError>;
    /// Deletes the events older than `time` (unix milliseconds; retention); how many went.
    async fn delete_events_before(&self, time: u64) -> Result<usize, StoreError>;
    /// From now on, `tap` is told of the events of every committed write, with their ids.
    fn tap_events(&self, tap: EventTap);
    /// Key material every process of this store shares (several replicas): the key kept
    /// under `name`, which is `generated` if none was kept yet. `None`: this store keeps no
    /// keys (one process: they live in the data directory). Called once at start, blocking.
    fn shared_key(&self, name: &str, generated: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = (name, generated);
        Ok(None)
    }
    /// A throttle window every process of this store shares: `(start, count)` of `key`'s
    /// fixed window of `window` seconds at `now`, after counting one event when `count`.
    /// `None`: this store keeps no counters (one process counts in its memory).
    async fn throttle_window(
        &self,
        key: &str,
        now: u64,
        window: u64,
        count: bool,
    ) -> Result<Option<(u64, u32)>, StoreError> {
        let _ = (key, now, window, count);
        Ok(None)
    }
    /// A slice of a shared rate limit (SPEC §20): up to `want` requests of `key`'s bucket
    /// (GCRA: one request is `interval_us`, the bucket holds `capacity`), granted to this
    /// replica at once, on the store's clock. `None`: this store shares nothing (sled, one
    /// process: a shared limit is the local one).
    async fn reserve_rate(
        &self,
        key: &str,
        interval_us: u64,
        capacity: u64,
        want: u64,
    ) -> Result<Option<RateGrant>, StoreError> {
        let _ = (key, interval_us, capacity, want);
        Ok(None)
    }
}

/// What `reserve_rate` granted, and the shared bucket after it, on the store's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateGrant {
    pub granted: u64,
    /// The bucket's theoretical arrival time after the grant, in microseconds.
    pub tat_us: u64,
    /// The store's time of the grant, in microseconds.
    pub now_us: u64,
}

/// Which mail an outbox entry is (SPEC §10); the sender renders it from the templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    PasswordChanged,
    EmailChanged,
    PasswordReset,
    VerifyEmail,
    /// SPEC §17's notices: a second factor turned on, turned off (by the user or an admin),
    /// new recovery codes, a refused replay of a still-valid code, the second step locked.
    MfaEnabled,
    MfaDisabled,
    RecoveryCodesRenewed,
    MfaReplayRefused,
    MfaLocked,
    /// A notice to an API key's owner (or, for a service account, its maker) that a key was
    /// made (SPEC §19).
    ApikeyCreated,
}

impl MailKind {
    /// The metrics label and the stored name.
    pub fn label(self) -> &'static str {
        match self {
            MailKind::PasswordChanged => "password_changed",
            MailKind::EmailChanged => "email_changed",
            MailKind::PasswordReset => "password_reset",
            MailKind::VerifyEmail => "verify_email",
            MailKind::MfaEnabled => "mfa_enabled",
            MailKind::MfaDisabled => "mfa_disabled",
            MailKind::RecoveryCodesRenewed => "recovery_codes_renewed",
            MailKind::MfaReplayRefused => "mfa_replay_refused",
            MailKind::MfaLocked => "mfa_locked",
            MailKind::ApikeyCreated => "apikey_created",
        }
    }
}

/// A mail to send, as the outbox records it: who and what, never a rendered body, a link or
/// a token (the sender makes those from the user's state when it sends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub kind: MailKind,
    pub user_id: u64,
    /// The recipient (for `EmailChanged`, the old address).
    pub to: String,
    /// `EmailChanged`: the new address, for the notice's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
    /// `ApikeyCreated`: the key's name and display prefix (never the key), for the notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `ApikeyCreated`: the username of the account the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Unix seconds of the change that caused it (retries stop 24 h after it).
    pub created_at: u64,
}

/// An outbox entry as a sender claims it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Assigned by the store, increasing.
    pub id: u64,
    pub mail: OutboxMail,
    /// Failed sends so far.
    pub attempts: u32,
    /// Unix seconds before which it is not tried (backoff).
    pub not_before: u64,
    /// Unix seconds until which a claimer holds it; nobody else claims it before.
    pub lease_until: u64,
}

/// The sender's side of the durable outbox (SPEC §10): mails are recorded as `Effects` by the
/// same transaction as the change that causes them (`UserStore::create_user`, `update_user`,
/// `record`), and sent by a background sender that claims them with a lease, so that with
/// several replicas each mail is sent by one of them. Every write is durable when it returns.
///
/// For a SQL backend: one `outbox` table (id bigserial, kind, user_id, to, new_email,
/// created_at, attempts, not_before, lease_until), inserted into in the user write's
/// transaction; `claim_mails` as `UPDATE outbox SET lease_until = $now + $lease WHERE id IN
/// (SELECT id FROM outbox WHERE not_before <= $now AND lease_until <= $now ORDER BY id LIMIT
/// $limit FOR UPDATE SKIP LOCKED) RETURNING *`.
#[async_trait]
pub trait MailOutbox: Send + Sync {
    /// Up to `limit` entries due at `now` (`not_before <= now`) and not held by anyone
    /// (`lease_until <= now`), oldest first, each now held until `now + lease_seconds`: two
    /// claimers never get the same entry while its lease runs.
    async fn claim_mails(
        &self,
        now: u64,
        lease_seconds: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// The entry was sent (or given up on): it leaves the outbox. Unknown ids are no error.
    async fn ack_mail(&self, id: u64) -> Result<(), StoreError>;
    /// The send failed: record `attempts`, release the lease, try again at `not_before`.
    async fn retry_mail(&self, id: u64, attempts: u32, not_before: u64) -> Result<(), StoreError>;
    /// Entries waiting (sent ones are gone).
    async fn outbox_depth(&self) -> Result<usize, StoreError>;
    /// Up to `limit` entries with ids above `after_id`, oldest first, whether due, held or
    /// not, read without claiming them (`store copy` moves the queued mail with them).
    async fn outbox_entries(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
}

/// Where sled keeps its files inside the data directory (the secret sits beside it).
pub fn sled_dir(config: &Config) -> PathBuf {
    config.server.data_dir.join("db")
}

/// Opens the configured backend: the one place that names one.
pub fn open(config: &Config) -> Result<Arc<dyn UserStore>, StoreError> {
    if config.store.backend == StoreBackend::Postgres {
        return Ok(Arc::new(open_postgres(config, true)?));
    }
    let dir = &config.server.data_dir;
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| {
        StoreError::Io(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })?;
    // It holds the user store and the signing secret: the owner's alone. An existing
    // directory keeps the permissions its operator chose.
    #[cfg(unix)]
    if created {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            StoreError::Io(format!(
                "cannot restrict data directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let store = SledStore::open(
        &sled_dir(config),
        config.store.cache_capacity_mib * 1024 * 1024,
    )?;
    Ok(Arc::new(store))
}

/// The PostgreSQL URL of the configured store (from the environment only).
pub fn postgres_url() -> Result<String, StoreError> {
    let var = crate::config::env::STORE_URL_VAR;
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => Err(StoreError::Io(format!(
            "[store] backend = \"postgres\" needs the database URL in {var}"
        ))),
    }
}

/// The configured PostgreSQL store; `check_schema` off for `gatehouse migrate`.
pub fn open_postgres(config: &Config, check_schema: bool) -> Result<PgStore, StoreError> {
    let options = PgOptions {
        pool_size: config.store.pool_size,
        freshness: std::time::Duration::from_millis(config.store.freshness_ms),
        check_schema,
    };
    PgStore::open(&postgres_url()?, options)
}

/// A short description of the configured store for logs (never a password).
pub fn describe(config: &Config) -> String {
    match config.store.backend {
        StoreBackend::Sled => format!("sled in {}", sled_dir(config).display()),
        StoreBackend::Postgres => match postgres_url() {
            Ok(url) => format!("postgres {}", postgres::redact_url(&url)),
            Err(_) => "postgres (no URL)".into(),
        },
    }
}

/// An empty store in a temp dir, for unit tests of the modules above the store (they never
/// name a backend).
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Arc<dyn UserStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path(), 1 << 20).expect("open a temp store");
    (dir, Arc::new(store))
}

/// A registration of `name` (address `name@example.com`), for unit tests.
#[cfg(test)]
pub(crate) fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        first_name: String::new(),
        last_name: String::new(),
        password: "x".into(),
        is_staff: false,
        date_joined: 0,
        is_service: false,
    }
}

/// User `id`, active, verified, in no group, for unit tests.
#[cfg(test)]
pub(crate) fn test_user(id: u64, username: &str, email: &str) -> User {
    let mut user = NewUser {
        email: email.into(),
        ..new_user(username)
    }
    .into_user();
    user.id = id;
    user.email_verified = true;
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_groups_existed_still_decode() {
        let old = r#"{"id":3,"username":"a","email":"a@example.com","first_name":"","last_name":"",
            "password":"!","is_active":true,"is_staff":false,"date_joined":0,"last_login":null,
            "deleted_at":null,"token_version":2}"#;
        let u: User = serde_json::from_str(old).expect("an old record decodes");
        assert_eq!((u.id, u.token_version, u.groups.len()), (3, 2, 0));
        assert!(
            u.email_verified,
            "records from before mail count as verified"
        );
    }

    #[test]
    fn records_written_before_sessions_existed_still_decode() {
        let old = r#"{"id":3,"username":"a","email":"a@example.com","first_name":"","last_name":"",
            "password":"!","is_active":true,"is_staff":false,"date_joined":0,"last_login":null,
            "deleted_at":null,"token_version":2,"groups":["ops"],"email_verified":false}"#;
        let u: User = serde_json::from_str(old).expect("an old user record decodes");
        assert_eq!((u.groups.len(), u.email_verified), (1, false));
        assert!(u.ended.is_empty(), "nothing ended before sessions existed");
        let old = r#"{"user_id":3,"current":"b","parent":"a","rotated_at":5,"revoked":false,
            "expires_at":9}"#;
        let f: Family = serde_json::from_str(old).expect("an old family record decodes");
        assert_eq!((f.user_id, f.expires_at), (3, 9));
        assert_eq!(
            (f.created, f.client_ip.as_str(), f.user_agent.as_str()),
            (0, "", "")
        );
    }

    #[test]
    fn records_written_before_service_accounts_existed_are_people() {
        let old = r#"{"id":3,"username":"a","email":"a@example.com","first_name":"","last_name":"",
            "password":"!","is_active":true,"is_staff":false,"date_joined":0,"last_login":null,
            "deleted_at":null,"token_version":2,"groups":[],"email_verified":true,"ended":[]}"#;
        let u: User = serde_json::from_str(old).expect("an old user record decodes");
        assert!(!u.is_service);
    }

    #[test]
    fn group_names_are_sorted_once_each() {
        let names = ["ops", "Billing", "billing", "ops"]
            .map(String::from)
            .to_vec();
        assert_eq!(group_names(names), ["Billing", "billing", "ops"]);
    }
}
