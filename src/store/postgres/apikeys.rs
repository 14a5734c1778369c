//! API keys on PostgreSQL (SPEC §19): one row per key (never the key: its SHA-256, unique,
//! is what a presented key is looked up by), created and revoked by the transaction that
//! records their events (`writes::write_effects`); `last_used` moves forward only.

use super::{pg_error, pool_error, to_i64, to_u64, PgStore};
use crate::store::{ApiKey, StoreError};
use tokio_postgres::{GenericClient, Row};

const KEY_COLUMNS: &str = "id, user_id, name, sha256, prefix, created, expires_at, groups, \
     routes, staff, last_used, revoked";

fn decode_key(row: &Row) -> Result<ApiKey, StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Io(format!("corrupt API key row: {e}"));
    let time = |name: &str| -> Result<u64, StoreError> {
        to_u64(row.try_get(name).map_err(get_err)?, name)
    };
    let opt = |name: &str| -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = row.try_get(name).map_err(get_err)?;
        v.map(|n| to_u64(n, name)).transpose()
    };
    Ok(ApiKey {
        id: row.try_get("id").map_err(get_err)?,
        user_id: time("user_id")?,
        name: row.try_get("name").map_err(get_err)?,
        sha256: row.try_get("sha256").map_err(get_err)?,
        prefix: row.try_get("prefix").map_err(get_err)?,
        created: time("created")?,
        expires_at: time("expires_at")?,
        groups: row.try_get("groups").map_err(get_err)?,
        routes: row.try_get("routes").map_err(get_err)?,
        staff: row.try_get("staff").map_err(get_err)?,
        last_used: opt("last_used")?,
        revoked: opt("revoked")?,
    })
}

/// Writes `keys` (over the rows with their ids) through `client` (the caller's transaction).
pub(super) async fn put_keys(
    client: &impl GenericClient,
    keys: &[ApiKey],
) -> Result<(), StoreError> {
    for k in keys {
        let user_id = to_i64(k.user_id, "user id")?;
        let created = to_i64(k.created, "created")?;
        let expires_at = to_i64(k.expires_at, "expires_at")?;
        let last_used = k.last_used.map(|t| to_i64(t, "last_used")).transpose()?;
        let revoked = k.revoked.map(|t| to_i64(t, "revoked")).transpose()?;
        client
            .execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (id) DO UPDATE SET user_id = $2, name = $3, sha256 = $4, \
                     prefix = $5, created = $6, expires_at = $7, groups = $8, routes = $9, \
                     staff = $10, last_used = $11, revoked = $12"
                ),
                &[
                    &k.id,
                    &user_id,
                    &k.name,
                    &k.sha256,
                    &k.prefix,
                    &created,
                    &expires_at,
                    &k.groups,
                    &k.routes,
                    &k.staff,
                    &last_used,
                    &revoked,
                ],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

/// Marks the keys revoked (each at its time) unless they already are, through `client`, and
/// announces each key's owner on the change feed in the same transaction: every replica
/// drops the owner's cached keys at commit.
pub(super) async fn revoke_keys(
    client: &impl GenericClient,
    revoked: &[(String, u64)],
) -> Result<(), StoreError> {
    let sql = format!(
        "WITH r AS (UPDATE api_keys SET revoked = $2 WHERE id = $1 AND revoked IS NULL \
         RETURNING user_id) SELECT pg_notify('{}', 'u:' || user_id) FROM r",
        super::schema::CHANNEL
    );
    for (id, at) in revoked {
        let at = to_i64(*at, "revoked")?;
        client.execute(&sql, &[id, &at]).await.map_err(pg_error)?;
    }
    Ok(())
}

impl PgStore {
    /// The keys `WHERE {cond}` with `param`, in `order`, at most `limit`.
    async fn select_keys(
        &self,
        what: &'static str,
        cond: &'static str,
        param: Param,
        limit: i64,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.run(what, move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE {cond} LIMIT $2");
            let rows = match &param {
                Param::Text(t) => client.query(&sql, &[t, &limit]).await,
                Param::Id(n) => client.query(&sql, &[n, &limit]).await,
            }
            .map_err(pg_error)?;
            rows.iter().map(decode_key).collect()
        })
        .await
    }

    /// `UserStore::get_api_key`.
    pub(super) async fn read_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut keys = self
            .select_keys("get_api_key", "id = $1", Param::Text(id.to_string()), 1)
            .await?;
        Ok(keys.pop())
    }

    /// `UserStore::find_api_key`.
    pub(super) async fn api_key_by_hash(&self, sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut keys = self
            .select_keys(
                "find_api_key",
                "sha256 = $1",
                Param::Text(sha256.to_string()),
                1,
            )
            .await?;
        Ok(keys.pop())
    }

    /// `UserStore::list_api_keys`.
    pub(super) async fn api_keys_of(&self, user_id: u64) -> Result<Vec<ApiKey>, StoreError> {
        let id = to_i64(user_id, "user id")?;
        self.select_keys(
            "list_api_keys",
            "user_id = $1 ORDER BY created DESC, id COLLATE \"C\"",
            Param::Id(id),
            i64::MAX,
        )
        .await
    }

    /// `UserStore::api_keys_after`.
    pub(super) async fn api_keys_from(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.select_keys(
            "api_keys_after",
            "id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\"",
            Param::Text(after.to_string()),
            limit,
        )
        .await
    }

    /// `UserStore::touch_api_keys`: one statement for the batch.
    pub(super) async fn touch_keys(&self, used: &[(String, u64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = used.iter().map(|(id, _)| id.clone()).collect();
        let times = used
            .iter()
            .map(|(_, t)| to_i64(*t, "last_used"))
            .collect::<Result<Vec<i64>, _>>()?;
        self.run("touch_api_keys", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "UPDATE api_keys k SET last_used = u.at \
                     FROM unnest($1::text[], $2::bigint[]) AS u(id, at) \
                     WHERE k.id = u.id AND (k.last_used IS NULL OR k.last_used < u.at)",
                    &[&ids, &times],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })
        .await
    }
}

/// The one parameter of a key query.
enum Param {
    Text(String),
    Id(i64),
}
