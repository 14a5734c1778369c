//! The PostgreSQL store: several replicas on one database. It owns a small tokio runtime
//! (each Pingora service has its own, and a socket belongs to the runtime that made it): every
//! query runs there and is awaited from whichever runtime asks. Uniqueness is decided by
//! unique indexes on keys computed in Rust (`name_key`), ids by an identity column, family
//! rotation by one conditional UPDATE; changes other replicas make arrive through `feed`.

mod apikeys;
mod audit;
mod feed;
mod mfa;
mod outbox;
pub mod schema;
mod sessions;
mod user_list;
mod writes;

use super::{
    name_key, Change, ChangeEffects, ChangeFeed, Effects, Event, EventFilter, EventTap, Family,
    ListFilter, Mfa, NewUser, NewUserEffects, Session, StateFilter, StoreError, User, UserChange,
    UserStore, MAX_SWAP_ATTEMPTS,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// How long a request waits for a pooled connection or a new one before the store says
/// unavailable (503 with Retry-After), instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Changes buffered for a slow follower before it is told to drop everything.
const FEED_CAPACITY: usize = 4096;

/// What opening needs beyond the URL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub pool_size: usize,
    /// How stale the replica's cache may be; the feed reconnects when its heartbeats stall
    /// this long.
    pub freshness: Duration,
    /// Check the schema version (everything but `migrate` does).
    pub check_schema: bool,
}

pub struct PgStore {
    pool: Pool,
    handle: tokio::runtime::Handle,
    /// Owned so it lives as long as the store; shut down without blocking on drop (the
    /// store may be dropped inside another runtime).
    runtime: Option<tokio::runtime::Runtime>,
    changes: broadcast::Sender<Change>,
    /// Told of committed events; shared with the tasks that commit on the store's runtime.
    event_tap: Arc<OnceLock<EventTap>>,
    /// The search index's statistics (`user_list::piece_shares`).
    piece_shares: user_list::SharesCache,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A TLS connector for `sslmode=require|prefer` (rustls with the ring provider, the
/// platform's roots); without TLS in the URL it is never used.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Ok(path) = std::env::var(CA_FILE_VAR) {
        let pem = std::fs::read(&path)
            .map_err(|e| StoreError::Io(format!("{CA_FILE_VAR} {path}: {e}")))?;
        let mut reader = std::io::Cursor::new(pem);
        for cert in rustls_pemfile_certs(&mut reader) {
            roots
                .add(cert.map_err(|e| StoreError::Io(format!("{CA_FILE_VAR} {path}: {e}")))?)
                .map_err(|e| StoreError::Io(format!("{CA_FILE_VAR} {path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Io(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

use crate::config::env::STORE_CA_FILE_VAR as CA_FILE_VAR;

fn rustls_pemfile_certs(
    reader: &mut dyn std::io::BufRead,
) -> impl Iterator<Item = Result<rustls::pki_types::CertificateDer<'static>, String>> + '_ {
    use rustls::pki_types::pem::PemObject;
    let mut all = Vec::new();
    let mut text = Vec::new();
    if let Err(e) = reader.read_to_end(&mut text) {
        all.push(Err(e.to_string()));
    } else {
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&text) {
            all.push(c.map_err(|e| format!("{e:?}")));
        }
    }
    all.into_iter()
}

/// The text of a driver error with the server's message when there is one (never the URL).
pub(crate) fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    // The driver's own text names only the kind ("error performing TLS handshake"); the
    // reason (rustls' verdict on the certificate, the refused connect) is in its sources.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A driver error as the store's: a lost or refused connection is `Unavailable` (503, worth
/// a retry); what the server refused is `Io`.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    match e.code() {
        None => StoreError::Unavailable(format!("database: {}", describe_pg_error(&e))),
        Some(code)
            if code.code().starts_with("08")
                || code.code().starts_with("57P")
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreError::Unavailable(format!("database: {}", describe_pg_error(&e)))
        }
        Some(_) => StoreError::Io(format!("database: {}", describe_pg_error(&e))),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::Unavailable(format!("database pool: {other}")),
    }
}

/// A unique-index violation as the name it protects.
fn taken(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
            match db.constraint() {
                Some("users_username_key") => return StoreError::UsernameTaken,
                Some("users_email_key") => return StoreError::EmailTaken,
                _ => {}
            }
        }
    }
    pg_error(e)
}

fn is_pkey_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && db.constraint() == Some("users_pkey")
    })
}

fn to_i64(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n)
        .map_err(|_| StoreError::Io(format!("{what} {n} is too large for the database")))
}

fn to_u64(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Io(format!("corrupt {what} {n} in the database")))
}

const USER_COLUMNS: &str = "id, username, email, first_name, last_name, password, is_active, \
     is_staff, date_joined, last_login, deleted_at, token_version, groups, email_verified, ended, \
     is_service, rev";

fn decode_user(row: &Row) -> Result<(User, i64), StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Io(format!("corrupt user row: {e}"));
    let opt = |v: Option<i64>, what: &str| v.map(|n| to_u64(n, what)).transpose();
    let user = User {
        id: to_u64(row.try_get("id").map_err(get_err)?, "user id")?,
        username: row.try_get("username").map_err(get_err)?,
        email: row.try_get("email").map_err(get_err)?,
        first_name: row.try_get("first_name").map_err(get_err)?,
        last_name: row.try_get("last_name").map_err(get_err)?,
        password: row.try_get("password").map_err(get_err)?,
        is_active: row.try_get("is_active").map_err(get_err)?,
        is_staff: row.try_get("is_staff").map_err(get_err)?,
        date_joined: to_u64(row.try_get("date_joined").map_err(get_err)?, "date_joined")?,
        last_login: opt(row.try_get("last_login").map_err(get_err)?, "last_login")?,
        deleted_at: opt(row.try_get("deleted_at").map_err(get_err)?, "deleted_at")?,
        token_version: to_u64(
            row.try_get("token_version").map_err(get_err)?,
            "token_version",
        )?,
        groups: row.try_get("groups").map_err(get_err)?,
        email_verified: row.try_get("email_verified").map_err(get_err)?,
        ended: serde_json::from_str(row.try_get("ended").map_err(get_err)?)
            .map_err(|e| StoreError::Io(format!("corrupt user row: ended: {e}")))?,
        is_service: row.try_get("is_service").map_err(get_err)?,
    };
    Ok((user, row.try_get("rev").map_err(get_err)?))
}

/// A user as the parameters of an INSERT or UPDATE (the order of `USER_VALUES`).
struct UserParams {
    username: String,
    username_key: String,
    email: String,
    email_key: String,
    first_name: String,
    last_name: String,
    password: String,
    is_active: bool,
    is_staff: bool,
    date_joined: i64,
    last_login: Option<i64>,
    deleted_at: Option<i64>,
    token_version: i64,
    groups: Vec<String>,
    email_verified: bool,
    /// `User::ended` as JSON.
    ended: String,
    /// `store::names_key`: what the list's search looks in beside the name and address.
    names_key: String,
    is_service: bool,
}

/// How many parameters a user takes (`UserParams::as_params`, `USER_FIELDS`): the INSERT's
/// and UPDATE's further parameters are numbered after them.
const USER_PARAMS: usize = 18;

impl UserParams {
    fn new(u: &User) -> Result<UserParams, StoreError> {
        let opt = |v: Option<u64>, what: &str| v.map(|n| to_i64(n, what)).transpose();
        Ok(UserParams {
            username: u.username.clone(),
            username_key: name_key(&u.username),
            email: u.email.clone(),
            email_key: name_key(&u.email),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            password: u.password.clone(),
            is_active: u.is_active,
            is_staff: u.is_staff,
            date_joined: to_i64(u.date_joined, "date_joined")?,
            last_login: opt(u.last_login, "last_login")?,
            deleted_at: opt(u.deleted_at, "deleted_at")?,
            token_version: to_i64(u.token_version, "token_version")?,
            groups: u.groups.clone(),
            email_verified: u.email_verified,
            ended: serde_json::to_string(&u.ended)
                .map_err(|e| StoreError::Io(format!("cannot encode ended sessions: {e}")))?,
            names_key: super::names_key(u),
            is_service: u.is_service,
        })
    }

    fn as_params(&self) -> [&(dyn ToSql + Sync); USER_PARAMS] {
        [
            &self.username,
            &self.username_key,
            &self.email,
            &self.email_key,
            &self.first_name,
            &self.last_name,
            &self.password,
            &self.is_active,
            &self.is_staff,
            &self.date_joined,
            &self.last_login,
            &self.deleted_at,
            &self.token_version,
            &self.groups,
            &self.email_verified,
            &self.ended,
            &self.names_key,
            &self.is_service,
        ]
    }
}

const USER_FIELDS: &str = "username, username_key, email, email_key, first_name, last_name, \
     password, is_active, is_staff, date_joined, last_login, deleted_at, token_version, groups, \
     email_verified, ended, names_key, is_service";

/// `USER_FIELDS`' parameters typed (an INSERT ... SELECT does not infer them).
const CAST_VALUES: &str = "$1::text, $2::text, $3::text, $4::text, $5::text, $6::text, \
     $7::text, $8::boolean, $9::boolean, $10::bigint, $11::bigint, $12::bigint, $13::bigint, \
     $14::text[], $15::boolean, $16::text, $17::text, \
     $18::boolean";

/// The WHERE conditions of a list filter, with its parameters numbered from `first`.
fn filter_sql(
    filter: &ListFilter,
    first: usize,
    shares: &user_list::PieceShares,
) -> (String, Vec<user_list::Param>) {
    let mut conds = Vec::new();
    match filter.state {
        StateFilter::All => {}
        StateFilter::Active => conds.push("is_active".to_string()),
        StateFilter::Inactive => conds.push("NOT is_active".to_string()),
    }
    let mut params = Vec::new();
    if let Some(s) = &filter.search {
        // ListFilter::matches: the lower-cased search inside the lower-cased name, which is
        // exactly name_key.
        let (cond, search_params) =
            user_list::search_sql(&name_key(s), first, &["username_key", "email_key"], shares);
        conds.push(cond);
        params.extend(search_params);
    }
    let sql = if conds.is_empty() {
        "true".to_string()
    } else {
        conds.join(" AND ")
    };
    (sql, params)
}

impl PgStore {
    /// Connects to `url` (checking the schema unless `check_schema` is off) and starts the
    /// change feed. Blocks until the database answered once.
    pub fn open(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let pg_config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Io(format!("{}: {e}", crate::config::env::STORE_URL_VAR)))?;
        let tls = tls()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gatehouse-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("cannot start the store's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            pg_config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Io(format!("database pool: {e}")))?;
        let (changes, _) = broadcast::channel(FEED_CAPACITY);
        let store = PgStore {
            pool,
            handle,
            runtime: Some(runtime),
            changes,
            event_tap: Arc::new(OnceLock::new()),
            piece_shares: user_list::SharesCache::default(),
        };
        if options.check_schema {
            let pool = store.pool.clone();
            store.block(async move {
                let client = pool.get().await.map_err(pool_error)?;
                schema::check(&client).await
            })?;
            feed::start(
                &store.handle,
                pg_config,
                tls,
                store.changes.clone(),
                options.freshness,
            );
        }
        Ok(store)
    }

    /// Runs `f` on the store's runtime and waits for it from a synchronous caller (opening,
    /// commands), inside another runtime or not.
    pub fn block<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Io("the store's runtime stopped".into()))?
    }

    /// Runs `f` with the pool on the store's runtime; awaitable from any runtime.
    async fn run<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let result = self
            .handle
            .spawn(f(self.pool.clone()))
            .await
            .map_err(|e| StoreError::Io(format!("store task failed: {e}")))?;
        crate::metrics::STORE_QUERY_SECONDS
            .with_label_values(&[what])
            .observe(started.elapsed().as_secs_f64());
        let status = self.pool.status();
        crate::metrics::STORE_POOL_CONNECTIONS
            .with_label_values(&["open"])
            .set(status.size as i64);
        crate::metrics::STORE_POOL_CONNECTIONS
            .with_label_values(&["idle"])
            .set(status.available as i64);
        result
    }

    /// `gatehouse migrate`: creates or upgrades the schema; `(from, to)` versions.
    pub fn migrate(&self) -> Result<(i32, i32), StoreError> {
        let pool = self.pool.clone();
        self.block(async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            schema::migrate(&mut client).await
        })
    }

    /// Whether the database holds no user, no family and no audit event (`store copy`
    /// refuses otherwise).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let pool = self.pool.clone();
        self.block(async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM families) \
                     AND NOT EXISTS (SELECT 1 FROM audit_events)",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(row.get(0))
        })
    }

    async fn read_user(&self, id: u64) -> Result<Option<(User, i64)>, StoreError> {
        let id = to_i64(id, "user id")?;
        self.run("get_user", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
                    &[&id],
                )
                .await
                .map_err(pg_error)?;
            row.as_ref().map(decode_user).transpose()
        })
        .await
    }

    /// Each user with the effects its creation causes, each in its own transaction.
    async fn insert(
        &self,
        users: Vec<(User, Effects)>,
        allocate_id: bool,
    ) -> Result<Vec<Result<User, StoreError>>, StoreError> {
        let params = users
            .iter()
            .map(|(u, _)| Ok((to_i64(u.id, "user id")?, UserParams::new(u)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let tap = self.event_tap.clone();
        self.run("insert_user", move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let mut results = Vec::with_capacity(users.len());
            for ((mut user, effects), (id, p)) in users.into_iter().zip(params) {
                results.push(
                    insert_one(&mut client, &mut user, id, &p, allocate_id, effects)
                        .await
                        .map(|events| {
                            audit::tell(&tap, &events);
                            user
                        }),
                );
            }
            Ok(results)
        })
        .await
    }
}

/// One user in its own transaction: a new id from the sequence, or the given one with the
/// sequence moved above it.
/// `effects` (about this user: they take its id) are written by the same transaction; its
/// events come back with their ids once committed.
async fn insert_one(
    client: &mut deadpool_postgres::Client,
    user: &mut User,
    id: i64,
    p: &UserParams,
    allocate_id: bool,
    effects: Effects,
) -> Result<Vec<Event>, StoreError> {
    // A name already taken draws no id (as with sled), and is reported before a taken id
    // (sled's order): the row, and so nextval, exists only when neither key is held. A
    // racing writer is still stopped by the unique indexes.
    let guard = "WHERE NOT EXISTS (SELECT 1 FROM users WHERE username_key = $2) \
                 AND NOT EXISTS (SELECT 1 FROM users WHERE email_key = $4)";
    if allocate_id {
        // An imported id the sequence has not passed yet can collide: take the next one.
        let sql =
            format!("INSERT INTO users ({USER_FIELDS}) SELECT {CAST_VALUES} {guard} RETURNING id");
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let tx = client.transaction().await.map_err(pg_error)?;
            match tx.query_opt(&sql, &p.as_params()).await {
                Ok(Some(row)) => {
                    let new_id = to_u64(row.get(0), "user id")?;
                    let events = writes::write_effects(&*tx, &effects.about(new_id)).await?;
                    tx.commit().await.map_err(pg_error)?;
                    user.id = new_id;
                    return Ok(events);
                }
                Ok(None) => {
                    drop(tx);
                    return Err(which_taken(client, &p.username_key).await?);
                }
                Err(e) if is_pkey_violation(&e) => continue,
                Err(e) => return Err(taken(e)),
            }
        }
        return Err(StoreError::Conflict);
    }
    let tx = client.transaction().await.map_err(pg_error)?;
    let sql = format!(
        "INSERT INTO users (id, {USER_FIELDS}) SELECT ${}::bigint, {CAST_VALUES} {guard}",
        USER_PARAMS + 1
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = p.as_params().to_vec();
    params.push(&id);
    let inserted = tx.execute(&sql, &params).await.map_err(|e| {
        if is_pkey_violation(&e) {
            StoreError::Io(format!("user id {id} exists"))
        } else {
            taken(e)
        }
    })?;
    if inserted == 0 {
        drop(tx);
        return Err(which_taken(client, &p.username_key).await?);
    }
    let events = writes::write_effects(&*tx, &effects.about(user.id)).await?;
    // Later ids continue above the highest (setval is not rolled back; that only skips ids).
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('users', 'id'), $1) \
         WHERE $1 > (SELECT last_value FROM users_id_seq)",
        &[&id],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(events)
}

/// Which key a refused insert ran into: the username is checked first, as sled does.
async fn which_taken(
    client: &deadpool_postgres::Client,
    username_key: &str,
) -> Result<StoreError, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE username_key = $1)",
            &[&username_key],
        )
        .await
        .map_err(pg_error)?;
    Ok(if row.get(0) {
        StoreError::UsernameTaken
    } else {
        StoreError::EmailTaken
    })
}

fn decode_family(row: &Row) -> Result<Family, StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Io(format!("corrupt family row: {e}"));
    Ok(Family {
        user_id: to_u64(row.try_get("user_id").map_err(get_err)?, "user id")?,
        current: row.try_get("current").map_err(get_err)?,
        parent: row.try_get("parent").map_err(get_err)?,
        rotated_at: to_u64(row.try_get("rotated_at").map_err(get_err)?, "rotated_at")?,
        revoked: row.try_get("revoked").map_err(get_err)?,
        expires_at: to_u64(row.try_get("expires_at").map_err(get_err)?, "expires_at")?,
        created: to_u64(row.try_get("created").map_err(get_err)?, "created")?,
        client_ip: row.try_get("client_ip").map_err(get_err)?,
        user_agent: row.try_get("user_agent").map_err(get_err)?,
    })
}

/// The columns `decode_family` reads (after the family id).
const FAMILY_COLUMNS: &str =
    "user_id, current, parent, rotated_at, revoked, expires_at, created, client_ip, user_agent";

/// A family as parameters $2..$10 (after the family id), in `FAMILY_COLUMNS` order.
struct FamilyParams {
    user_id: i64,
    current: String,
    parent: Option<String>,
    rotated_at: i64,
    revoked: bool,
    expires_at: i64,
    created: i64,
    client_ip: String,
    user_agent: String,
}

impl FamilyParams {
    fn new(f: &Family) -> Result<FamilyParams, StoreError> {
        Ok(FamilyParams {
            user_id: to_i64(f.user_id, "user id")?,
            current: f.current.clone(),
            parent: f.parent.clone(),
            rotated_at: to_i64(f.rotated_at, "rotated_at")?,
            revoked: f.revoked,
            expires_at: to_i64(f.expires_at, "expires_at")?,
            created: to_i64(f.created, "created")?,
            client_ip: f.client_ip.clone(),
            user_agent: f.user_agent.clone(),
        })
    }

    /// The values of `FAMILY_COLUMNS`.
    fn as_params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.user_id,
            &self.current,
            &self.parent,
            &self.rotated_at,
            &self.revoked,
            &self.expires_at,
            &self.created,
            &self.client_ip,
            &self.user_agent,
        ]
    }
}

/// Writes a family record, over the one it replaces, through `client` (a transaction of a
/// user write's effects).
async fn put_family(
    client: &impl tokio_postgres::GenericClient,
    family: &str,
    record: &Family,
) -> Result<(), StoreError> {
    let p = FamilyParams::new(record)?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&family];
    params.extend(p.as_params());
    client
        .execute(
            &format!(
                "INSERT INTO families (family, {FAMILY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (family) DO UPDATE SET user_id = $2, current = $3, parent = $4, \
                 rotated_at = $5, revoked = $6, expires_at = $7, created = $8, client_ip = $9, \
                 user_agent = $10"
            ),
            &params,
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

#[async_trait]
impl UserStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client.execute("SELECT 1", &[]).await.map_err(pg_error)?;
            Ok(())
        })
        .await
    }

    fn changes(&self) -> Option<ChangeFeed> {
        Some(self.changes.subscribe())
    }

    /// The first replica to start keeps its generated key; every other one takes that.
    fn shared_key(&self, name: &str, generated: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let pool = self.pool.clone();
        let name = name.to_string();
        self.block(async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    &[&name, &generated],
                )
                .await
                .map_err(pg_error)?;
            let row = client
                .query_one("SELECT value FROM secrets WHERE name = $1", &[&name])
                .await
                .map_err(pg_error)?;
            Ok(Some(row.get(0)))
        })
    }

    async fn throttle_window(
        &self,
        key: &str,
        now: u64,
        window: u64,
        count: bool,
    ) -> Result<Option<(u64, u32)>, StoreError> {
        let key = key.to_string();
        let now = to_i64(now, "time")?;
        let window = to_i64(window, "window")?;
        self.run("throttle", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = if count {
                // One statement: a new window, or one more event in the current one.
                let row = client
                    .query_one(
                        "INSERT INTO throttle AS t (key, window_start, count) VALUES ($1, $2, 1) \
                         ON CONFLICT (key) DO UPDATE SET \
                         window_start = CASE WHEN t.window_start + $3 <= $2 THEN $2 ELSE t.window_start END, \
                         count = CASE WHEN t.window_start + $3 <= $2 THEN 1 ELSE t.count + 1 END \
                         RETURNING window_start, count",
                        &[&key, &now, &window],
                    )
                    .await
                    .map_err(pg_error)?;
                // Now and then, forget windows that ended (a flood of distinct keys): those
                // older than a day, since other keys count in longer windows than this one
                // (the mail caps: an hour).
                if rand::random::<u16>() < 64 {
                    let forget = window.max(86_400);
                    client
                        .execute(
                            "DELETE FROM throttle WHERE window_start + $2 <= $1",
                            &[&now, &forget],
                        )
                        .await
                        .map_err(pg_error)?;
                }
                Some(row)
            } else {
                client
                    .query_opt(
                        "SELECT window_start, count FROM throttle WHERE key = $1",
                        &[&key],
                    )
                    .await
                    .map_err(pg_error)?
            };
            Ok(Some(match row {
                Some(r) => {
                    let start: i64 = r.get(0);
                    let n: i32 = r.get(1);
                    (
                        to_u64(start, "window start")?,
                        u32::try_from(n).map_err(|_| {
                            StoreError::Io(format!("corrupt throttle count {n}"))
                        })?,
                    )
                }
                None => (0, 0),
            }))
        })
        .await
    }

    async fn reserve_rate(
        &self,
        key: &str,
        interval_us: u64,
        capacity: u64,
        want: u64,
    ) -> Result<Option<crate::store::RateGrant>, StoreError> {
        let key = key.to_string();
        let interval = to_i64(interval_us.max(1), "rate interval")?;
        let capacity = to_i64(capacity, "rate capacity")?;
        let want = to_i64(want, "rate slice")?;
        // How far ahead of now the bucket may run, kept far from overflowing a bigint.
        let tolerance = i64::try_from(i128::from(interval) * i128::from(capacity))
            .unwrap_or(i64::MAX / 4)
            .min(i64::MAX / 4);
        self.run("rate limit", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            // One statement, on the database's clock: GCRA for `want` requests at once.
            // The grant is what fits in the bucket (`capacity * interval` ahead of now at
            // most); every SET expression reads the row as it was, under the row's lock.
            let row = client
                .query_one(
                    "WITH c AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now) \
                     INSERT INTO rate_limits AS r (key, tat, granted, seen) \
                     SELECT $1::text, c.now + least($4::bigint, $3::bigint) * $2::bigint, least($4::bigint, $3::bigint), c.now FROM c \
                     ON CONFLICT (key) DO UPDATE SET \
                     granted = least($4::bigint, greatest(0, ($5::bigint - (greatest(r.tat, excluded.seen) - excluded.seen)) / $2::bigint)), \
                     tat = greatest(r.tat, excluded.seen) \
                         + least($4::bigint, greatest(0, ($5::bigint - (greatest(r.tat, excluded.seen) - excluded.seen)) / $2::bigint)) * $2::bigint, \
                     seen = excluded.seen \
                     RETURNING granted, tat, seen",
                    &[&key, &interval, &capacity, &want, &tolerance],
                )
                .await
                .map_err(pg_error)?;
            let read = |i: usize| -> Result<u64, StoreError> {
                let v: i64 = row.try_get(i).map_err(pg_error)?;
                to_u64(v, "rate limit row")
            };
            let grant = crate::store::RateGrant {
                granted: read(0)?,
                tat_us: read(1)?,
                now_us: read(2)?,
            };
            // Now and then, forget buckets full for an hour (a flood of distinct callers):
            // a missing row is a full bucket.
            if rand::random::<u16>() < 64 {
                client
                    .execute(
                        "DELETE FROM rate_limits WHERE tat + 3600000000 < $1",
                        &[&to_i64(grant.now_us, "time")?],
                    )
                    .await
                    .map_err(pg_error)?;
            }
            Ok(Some(grant))
        })
        .await
    }

    async fn create_user(
        &self,
        new: NewUser,
        effects: NewUserEffects<'_>,
    ) -> Result<User, StoreError> {
        let user = new.into_user();
        // The id is drawn inside the insert (a refused name draws none, as with sled), so
        // the effects are decided here for the user as it will be and take its id in the
        // same transaction (`Effects::about`): the decision is a closure and cannot travel
        // to the runtime.
        let caused = effects(&user);
        let mut results = self.insert(vec![(user, caused)], true).await?;
        results
            .pop()
            .unwrap_or_else(|| Err(StoreError::Io("insert returned nothing".into())))
    }

    async fn insert_user(&self, user: User) -> Result<User, StoreError> {
        let mut results = self.insert(vec![(user, Effects::none())], false).await?;
        results
            .pop()
            .unwrap_or_else(|| Err(StoreError::Io("insert returned nothing".into())))
    }

    async fn insert_users(
        &self,
        users: Vec<User>,
    ) -> Result<Vec<Result<User, StoreError>>, StoreError> {
        self.insert(
            users.into_iter().map(|u| (u, Effects::none())).collect(),
            false,
        )
        .await
    }

    async fn get_user(&self, id: u64) -> Result<Option<User>, StoreError> {
        Ok(self.read_user(id).await?.map(|(u, _)| u))
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let key = name_key(username);
        self.run("find_by_username", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"),
                    &[&key],
                )
                .await
                .map_err(pg_error)?;
            Ok(row.as_ref().map(decode_user).transpose()?.map(|(u, _)| u))
        })
        .await
    }

    async fn email_owner(&self, email: &str) -> Result<Option<u64>, StoreError> {
        let key = name_key(email);
        self.run("email_owner", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt("SELECT id FROM users WHERE email_key = $1", &[&key])
                .await
                .map_err(pg_error)?;
            row.map(|r| to_u64(r.get(0), "user id")).transpose()
        })
        .await
    }

    async fn update_user(
        &self,
        id: u64,
        change: UserChange<'_>,
        effects: ChangeEffects<'_>,
    ) -> Result<User, StoreError> {
        self.update(id, change, effects).await
    }

    async fn record(&self, effects: Effects) -> Result<(), StoreError> {
        self.record_effects(effects).await
    }

    async fn count_users(&self, state: &StateFilter) -> Result<usize, StoreError> {
        let cond = match state {
            StateFilter::All => "true",
            StateFilter::Active => "active",
            StateFilter::Inactive => "NOT active",
        };
        self.run("count_users", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_one(
                    &format!("SELECT coalesce(sum(n), 0)::bigint FROM user_counts WHERE {cond}"),
                    &[],
                )
                .await
                .map_err(pg_error)?;
            let n = to_u64(row.get(0), "user count")?;
            usize::try_from(n).map_err(|_| StoreError::Io(format!("user counter {n} overflows")))
        })
        .await
    }

    async fn list_users(
        &self,
        filter: &ListFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<User>), StoreError> {
        let count = match filter.search {
            None => Some(self.count_users(&filter.state).await?),
            Some(_) => None,
        };
        let search = filter.search.as_deref().map(name_key);
        let shares = self.piece_shares(search.as_deref()).await?;
        let (cond, params) = filter_sql(filter, 1, &shares);
        let offset = to_i64(offset as u64, "offset")?;
        let limit = to_i64(limit as u64, "limit")?;
        self.run("list_users", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let mut args: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let n = args.len();
            args.push(&offset);
            args.push(&limit);
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {cond} ORDER BY id OFFSET ${} LIMIT ${}",
                n + 1,
                n + 2
            );
            let rows = client.query(&sql, &args).await.map_err(pg_error)?;
            let page = rows
                .iter()
                .map(|r| decode_user(r).map(|(u, _)| u))
                .collect::<Result<Vec<_>, _>>()?;
            let count = match count {
                Some(c) => c,
                None => {
                    let row = client
                        .query_one(
                            &format!("SELECT count(*) FROM users WHERE {cond}"),
                            &args[..n],
                        )
                        .await
                        .map_err(pg_error)?;
                    let c: i64 = row.get(0);
                    usize::try_from(c).map_err(|_| StoreError::Io(format!("count {c}")))?
                }
            };
            Ok((count, page))
        })
        .await
    }

    async fn users_after(
        &self,
        filter: &ListFilter,
        after: u64,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let search = filter.search.as_deref().map(name_key);
        let shares = self.piece_shares(search.as_deref()).await?;
        let (cond, params) = filter_sql(filter, 1, &shares);
        // Ids in the database stop at i64::MAX: nothing is above a larger cursor.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = to_i64(limit as u64, "limit")?;
        self.run("users_after", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let mut args: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let n = args.len();
            args.push(&after);
            args.push(&limit);
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id > ${} AND {cond} ORDER BY id LIMIT ${}",
                n + 1,
                n + 2
            );
            let rows = client.query(&sql, &args).await.map_err(pg_error)?;
            rows.iter()
                .map(|r| decode_user(r).map(|(u, _)| u))
                .collect()
        })
        .await
    }

    async fn query_users(
        &self,
        query: &super::UserQuery,
        after: Option<&super::UserCursor>,
        limit: usize,
    ) -> Result<super::UserPage, StoreError> {
        self.users_page(query, after, limit).await
    }

    async fn count_query(&self, query: &super::UserQuery) -> Result<super::UserCount, StoreError> {
        self.count_of(query).await
    }

    async fn group_counts(&self, limit: usize) -> Result<Vec<super::GroupCount>, StoreError> {
        self.group_counts_of(limit).await
    }

    async fn get_family(&self, family: &str) -> Result<Option<Family>, StoreError> {
        let family = family.to_string();
        self.run("get_family", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt(
                    &format!("SELECT {FAMILY_COLUMNS} FROM families WHERE family = $1"),
                    &[&family],
                )
                .await
                .map_err(pg_error)?;
            row.as_ref().map(decode_family).transpose()
        })
        .await
    }

    async fn get_mfa(&self, user_id: u64) -> Result<Option<Mfa>, StoreError> {
        self.read_mfa(user_id).await
    }

    async fn factors_on(&self, user_ids: &[u64]) -> Result<Vec<bool>, StoreError> {
        self.read_factors_on(user_ids).await
    }

    async fn swap_mfa(
        &self,
        user_id: u64,
        expected: Option<&Mfa>,
        new: Option<&Mfa>,
        effects: Effects,
    ) -> Result<bool, StoreError> {
        self.swap_mfa_record(user_id, expected, new, effects).await
    }

    async fn swap_family(
        &self,
        family: &str,
        expected: Option<&Family>,
        new: &Family,
    ) -> Result<bool, StoreError> {
        let family = family.to_string();
        let old = expected.map(FamilyParams::new).transpose()?;
        let new = FamilyParams::new(new)?;
        self.run("swap_family", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&family];
            params.extend(new.as_params());
            let n = match &old {
                None => client
                    .execute(
                        &format!(
                            "INSERT INTO families (family, {FAMILY_COLUMNS}) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                             ON CONFLICT (family) DO NOTHING"
                        ),
                        &params,
                    )
                    .await
                    .map_err(pg_error)?,
                // The compare-and-swap: one UPDATE that matches only the record the caller
                // decided on; a concurrent rotation makes it match nothing.
                Some(old) => {
                    params.extend(old.as_params());
                    client
                        .execute(
                            "UPDATE families SET user_id = $2, current = $3, parent = $4, \
                             rotated_at = $5, revoked = $6, expires_at = $7, created = $8, \
                             client_ip = $9, user_agent = $10 \
                             WHERE family = $1 AND user_id = $11 AND current = $12 \
                             AND parent IS NOT DISTINCT FROM $13 AND rotated_at = $14 \
                             AND revoked = $15 AND expires_at = $16 AND created = $17 \
                             AND client_ip = $18 AND user_agent = $19",
                            &params,
                        )
                        .await
                        .map_err(pg_error)?
                }
            };
            Ok(n == 1)
        })
        .await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<super::ApiKey>, StoreError> {
        self.read_api_key(id).await
    }

    async fn find_api_key(&self, sha256: &str) -> Result<Option<super::ApiKey>, StoreError> {
        self.api_key_by_hash(sha256).await
    }

    async fn list_api_keys(&self, user_id: u64) -> Result<Vec<super::ApiKey>, StoreError> {
        self.api_keys_of(user_id).await
    }

    async fn touch_api_keys(&self, used: &[(String, u64)]) -> Result<(), StoreError> {
        self.touch_keys(used).await
    }

    async fn api_keys_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<super::ApiKey>, StoreError> {
        self.api_keys_from(after, limit).await
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        self.read_session(id_hash).await
    }

    async fn touch_session(&self, id_hash: &str, last_seen: u64) -> Result<(), StoreError> {
        self.touch(id_hash, last_seen).await
    }

    async fn list_sessions(&self, user_id: u64) -> Result<Vec<Session>, StoreError> {
        self.sessions_of(user_id).await
    }

    async fn list_families(&self, user_id: u64) -> Result<Vec<(String, Family)>, StoreError> {
        self.families_of(user_id).await
    }

    async fn delete_expired_sessions(&self, now: u64, idle: u64) -> Result<usize, StoreError> {
        self.delete_expired(now, idle).await
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.events_before(filter, before, limit).await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.events_from(after, limit).await
    }

    async fn insert_events(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.insert_keeping_ids(events).await
    }

    async fn delete_events_before(&self, time: u64) -> Result<usize, StoreError> {
        self.delete_events_older(time).await
    }

    fn tap_events(&self, tap: EventTap) {
        // Set once, when the process starts; a second tap would be a wiring mistake.
        if self.event_tap.set(tap).is_err() {
            log::warn!("the store's event tap was set twice; the first stays");
        }
    }
}

/// The URL with its password (in the userinfo or a `password=` parameter) replaced, for logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let parts: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", parts.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://gh:s3cr%40t@db:5432/gh?sslmode=require"),
            "postgres://gh:***@db:5432/gh?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://db/gh?user=gh&password=hunter2&sslmode=require"),
            "postgresql://db/gh?user=gh&password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://gh@db/gh"), "postgres://gh@db/gh");
        assert!(!redact_url("postgres://a:b@c@d/e").contains("b@c"));
    }

    #[test]
    fn searches_are_literal_substrings_of_the_folded_names() {
        let filter = ListFilter {
            state: StateFilter::Active,
            search: Some("A_b%".into()),
        };
        let (sql, params) = filter_sql(&filter, 3, &user_list::PieceShares::new());
        assert_eq!(
            sql,
            "is_active AND (username_key || E'\\n' || email_key || E'\\n' || names_key) \
             LIKE $3 AND (username_key LIKE $3 OR email_key LIKE $3)"
        );
        let shown: Vec<String> = params.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(shown, [r#""%a\\_b\\%%""#]);
        // Five letters or more: the candidates from the five-letter pieces.
        let filter = ListFilter {
            state: StateFilter::All,
            search: Some("Zoë_1".into()),
        };
        let (sql, params) = filter_sql(&filter, 1, &user_list::PieceShares::new());
        assert_eq!(
            sql,
            "(gatehouse_grams(username_key) || gatehouse_grams(email_key) || \
             gatehouse_grams(names_key)) @> $2::text[] AND \
             (username_key LIKE $1 OR email_key LIKE $1)"
        );
        let shown: Vec<String> = params.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(shown, [r#""%zoë\\_1%""#, r#"["zoë_1"]"#]);
    }
}
