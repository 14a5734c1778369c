//! Browser sessions on PostgreSQL (SPEC §15): created and ended by the same transaction as
//! the user write they ride on (`writes::write_effects`), read by their id hash (the primary
//! key) and listed by user (an index); families listed by user beside them.

use super::{decode_family, pg_error, pool_error, to_i64, to_u64, PgStore, FAMILY_COLUMNS};
use crate::store::{Family, Session, StoreError};
use tokio_postgres::{GenericClient, Row};

const SESSION_COLUMNS: &str = "id_hash, user_id, created, last_seen, expires_at, client_ip, \
     user_agent, remember, method, token_version";

fn decode_session(row: &Row) -> Result<Session, StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Io(format!("corrupt session row: {e}"));
    let time = |name: &str| -> Result<u64, StoreError> {
        to_u64(row.try_get(name).map_err(get_err)?, name)
    };
    Ok(Session {
        id_hash: row.try_get("id_hash").map_err(get_err)?,
        user_id: time("user_id")?,
        created: time("created")?,
        last_seen: time("last_seen")?,
        expires_at: time("expires_at")?,
        client_ip: row.try_get("client_ip").map_err(get_err)?,
        user_agent: row.try_get("user_agent").map_err(get_err)?,
        remember: row.try_get("remember").map_err(get_err)?,
        method: row.try_get("method").map_err(get_err)?,
        token_version: time("token_version")?,
    })
}

/// Writes `sessions` (over ones with the same id hash) through `client` (the caller's
/// transaction).
pub(super) async fn insert_sessions(
    client: &impl GenericClient,
    sessions: &[Session],
) -> Result<(), StoreError> {
    for s in sessions {
        let user_id = to_i64(s.user_id, "user id")?;
        let created = to_i64(s.created, "created")?;
        let last_seen = to_i64(s.last_seen, "last_seen")?;
        let expires_at = to_i64(s.expires_at, "expires_at")?;
        let token_version = to_i64(s.token_version, "token_version")?;
        client
            .execute(
                &format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (id_hash) DO UPDATE SET user_id = $2, created = $3, \
                     last_seen = $4, expires_at = $5, client_ip = $6, user_agent = $7, \
                     remember = $8, method = $9, token_version = $10"
                ),
                &[
                    &s.id_hash,
                    &user_id,
                    &created,
                    &last_seen,
                    &expires_at,
                    &s.client_ip,
                    &s.user_agent,
                    &s.remember,
                    &s.method,
                    &token_version,
                ],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

/// Deletes the sessions of `id_hashes` through `client` (the caller's transaction).
pub(super) async fn delete_sessions(
    client: &impl GenericClient,
    id_hashes: &[String],
) -> Result<(), StoreError> {
    if id_hashes.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "DELETE FROM sessions WHERE id_hash = ANY($1)",
            &[&id_hashes],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

impl PgStore {
    pub(super) async fn read_session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        let id_hash = id_hash.to_string();
        self.run("get_session", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"),
                    &[&id_hash],
                )
                .await
                .map_err(pg_error)?;
            row.as_ref().map(decode_session).transpose()
        })
        .await
    }

    pub(super) async fn touch(&self, id_hash: &str, last_seen: u64) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        let last_seen = to_i64(last_seen, "last_seen")?;
        self.run("touch_session", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "UPDATE sessions SET last_seen = $2 WHERE id_hash = $1 AND last_seen < $2",
                    &[&id_hash, &last_seen],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn sessions_of(&self, user_id: u64) -> Result<Vec<Session>, StoreError> {
        let user_id = to_i64(user_id, "user id")?;
        self.run("list_sessions", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 \
                         ORDER BY created DESC, id_hash COLLATE \"C\""
                    ),
                    &[&user_id],
                )
                .await
                .map_err(pg_error)?;
            rows.iter().map(decode_session).collect()
        })
        .await
    }

    pub(super) async fn families_of(
        &self,
        user_id: u64,
    ) -> Result<Vec<(String, Family)>, StoreError> {
        let user_id = to_i64(user_id, "user id")?;
        self.run("list_families", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let rows = client
                .query(
                    &format!(
                        "SELECT family, {FAMILY_COLUMNS} FROM families WHERE user_id = $1 \
                         ORDER BY created DESC, family COLLATE \"C\""
                    ),
                    &[&user_id],
                )
                .await
                .map_err(pg_error)?;
            rows.iter()
                .map(|row| {
                    let family: String = row
                        .try_get("family")
                        .map_err(|e| StoreError::Io(format!("corrupt family row: {e}")))?;
                    Ok((family, decode_family(row)?))
                })
                .collect()
        })
        .await
    }

    /// `Session::live_at` in SQL: gone when `expires_at <= now`, or, without remember-me,
    /// when `last_seen + idle <= now`.
    pub(super) async fn delete_expired(&self, now: u64, idle: u64) -> Result<usize, StoreError> {
        let now = to_i64(now, "now")?;
        // An idle limit beyond the database's range never ends a session: as large as it goes.
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        self.run("delete_expired_sessions", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n = client
                .execute(
                    "DELETE FROM sessions WHERE expires_at <= $1 \
                     OR (NOT remember AND last_seen <= $1 - $2)",
                    &[&now, &idle],
                )
                .await
                .map_err(pg_error)?;
            usize::try_from(n).map_err(|_| StoreError::Io(format!("deleted count {n}")))
        })
        .await
    }
}
