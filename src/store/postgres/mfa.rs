//! Second factors on PostgreSQL (SPEC §17): one row per user holding the record as JSON
//! text, changed by compare-and-swap on that text (one conditional statement: two replicas
//! racing with the same code, one row matches once), with the write's effects in the same
//! transaction; removed by the user writes that turn the factor off (`writes::write_effects`).

use super::writes::{lock_users_first, write_effects};
use super::{audit, pg_error, pool_error, to_i64, PgStore};
use crate::store::{Effects, Mfa, StoreError};

fn encode(mfa: &Mfa) -> Result<String, StoreError> {
    serde_json::to_string(mfa).map_err(|e| StoreError::Io(format!("cannot encode: {e}")))
}

impl PgStore {
    /// `UserStore::get_mfa`.
    pub(super) async fn read_mfa(&self, user_id: u64) -> Result<Option<Mfa>, StoreError> {
        let id = to_i64(user_id, "user id")?;
        self.run("get_mfa", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt("SELECT record FROM mfa WHERE user_id = $1", &[&id])
                .await
                .map_err(pg_error)?;
            match row {
                Some(row) => {
                    let text: String = row.try_get(0).map_err(pg_error)?;
                    serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|e| StoreError::Io(format!("corrupt second factor: {e}")))
                }
                None => Ok(None),
            }
        })
        .await
    }

    /// `UserStore::factors_on`: one query for the whole page (the generated `enabled`
    /// column, its partial index).
    pub(super) async fn read_factors_on(&self, user_ids: &[u64]) -> Result<Vec<bool>, StoreError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = user_ids
            .iter()
            .map(|id| to_i64(*id, "user id"))
            .collect::<Result<Vec<i64>, _>>()?;
        let on: std::collections::HashSet<i64> = self
            .run("factors_on", move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let rows = client
                    .query(
                        "SELECT user_id FROM mfa WHERE user_id = ANY($1) AND enabled",
                        &[&ids],
                    )
                    .await
                    .map_err(pg_error)?;
                rows.iter()
                    .map(|r| r.try_get::<_, i64>(0).map_err(pg_error))
                    .collect()
            })
            .await?;
        Ok(user_ids
            .iter()
            .map(|id| i64::try_from(*id).is_ok_and(|id| on.contains(&id)))
            .collect())
    }

    /// `UserStore::swap_mfa`.
    pub(super) async fn swap_mfa_record(
        &self,
        user_id: u64,
        expected: Option<&Mfa>,
        new: Option<&Mfa>,
        effects: Effects,
    ) -> Result<bool, StoreError> {
        let id = to_i64(user_id, "user id")?;
        let old = expected.map(encode).transpose()?;
        let new = new.map(encode).transpose()?;
        let tap = self.event_tap.clone();
        self.run("swap_mfa", move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(pg_error)?;
            lock_users_first(&*tx, &[id]).await?;
            let n = match (&old, &new) {
                (None, Some(new)) => tx
                    .execute(
                        "INSERT INTO mfa (user_id, record) VALUES ($1, $2) \
                         ON CONFLICT (user_id) DO NOTHING",
                        &[&id, new],
                    )
                    .await
                    .map_err(pg_error)?,
                (Some(old), Some(new)) => tx
                    .execute(
                        "UPDATE mfa SET record = $2 WHERE user_id = $1 AND record = $3",
                        &[&id, new, old],
                    )
                    .await
                    .map_err(pg_error)?,
                (Some(old), None) => tx
                    .execute(
                        "DELETE FROM mfa WHERE user_id = $1 AND record = $2",
                        &[&id, old],
                    )
                    .await
                    .map_err(pg_error)?,
                (None, None) => {
                    let row = tx
                        .query_opt("SELECT 1 FROM mfa WHERE user_id = $1 FOR UPDATE", &[&id])
                        .await
                        .map_err(pg_error)?;
                    u64::from(row.is_none())
                }
            };
            if n != 1 {
                return Ok(false);
            }
            let events = write_effects(&*tx, &effects).await?;
            tx.commit().await.map_err(pg_error)?;
            audit::tell(&tap, &events);
            Ok(true)
        })
        .await
    }
}
