//! The mail outbox on PostgreSQL (SPEC §10): a mail is inserted by the same transaction as
//! the user write that causes it, and senders on any replica claim due mails with a lease
//! (`FOR UPDATE SKIP LOCKED`), so each mail is sent by one of them.

use super::{pg_error, pool_error, to_i64, to_u64, PgStore};
use crate::store::{MailOutbox, OutboxEntry, OutboxMail, StoreError};
use async_trait::async_trait;
use tokio_postgres::{GenericClient, Row};

/// Inserts `mails` through `client` (the caller's transaction), each due from its
/// `created_at`.
pub(super) async fn insert_mails(
    client: &impl GenericClient,
    mails: &[OutboxMail],
) -> Result<(), StoreError> {
    for mail in mails {
        let not_before = to_i64(mail.created_at, "created_at")?;
        let mail = serde_json::to_string(mail)
            .map_err(|e| StoreError::Io(format!("cannot encode a mail: {e}")))?;
        client
            .execute(
                "INSERT INTO outbox (mail, not_before) VALUES ($1, $2)",
                &[&mail, &not_before],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

fn decode_entry(row: &Row) -> Result<OutboxEntry, StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Io(format!("corrupt outbox row: {e}"));
    let mail: String = row.try_get("mail").map_err(get_err)?;
    let mail: OutboxMail = serde_json::from_str(&mail)
        .map_err(|e| StoreError::Io(format!("corrupt outbox mail: {e}")))?;
    let attempts: i32 = row.try_get("attempts").map_err(get_err)?;
    Ok(OutboxEntry {
        id: to_u64(row.try_get("id").map_err(get_err)?, "outbox id")?,
        mail,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Io(format!("corrupt outbox attempts {attempts}")))?,
        not_before: to_u64(row.try_get("not_before").map_err(get_err)?, "not_before")?,
        lease_until: to_u64(row.try_get("lease_until").map_err(get_err)?, "lease_until")?,
    })
}

#[async_trait]
impl MailOutbox for PgStore {
    async fn claim_mails(
        &self,
        now: u64,
        lease_seconds: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let now = to_i64(now, "now")?;
        let until = now.saturating_add(to_i64(lease_seconds, "lease")?);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("claim_mails", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let rows = client
                .query(
                    "UPDATE outbox SET lease_until = $2 WHERE id IN ( \
                         SELECT id FROM outbox WHERE not_before <= $1 AND lease_until <= $1 \
                         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, mail, attempts, not_before, lease_until",
                    &[&now, &until, &limit],
                )
                .await
                .map_err(pg_error)?;
            let mut entries = rows
                .iter()
                .map(decode_entry)
                .collect::<Result<Vec<_>, _>>()?;
            entries.sort_by_key(|e| e.id);
            Ok(entries)
        })
        .await
    }

    async fn ack_mail(&self, id: u64) -> Result<(), StoreError> {
        let id = to_i64(id, "outbox id")?;
        self.run("ack_mail", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute("DELETE FROM outbox WHERE id = $1", &[&id])
                .await
                .map_err(pg_error)?;
            Ok(())
        })
        .await
    }

    async fn retry_mail(&self, id: u64, attempts: u32, not_before: u64) -> Result<(), StoreError> {
        let id = to_i64(id, "outbox id")?;
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        let not_before = to_i64(not_before, "not_before")?;
        self.run("retry_mail", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "UPDATE outbox SET attempts = $2, not_before = $3, lease_until = 0 WHERE id = $1",
                    &[&id, &attempts, &not_before],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })
        .await
    }

    async fn outbox_depth(&self) -> Result<usize, StoreError> {
        self.run("outbox_depth", |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_one("SELECT count(*) FROM outbox", &[])
                .await
                .map_err(pg_error)?;
            let n = to_u64(row.get(0), "outbox depth")?;
            usize::try_from(n).map_err(|_| StoreError::Io(format!("outbox depth {n} overflows")))
        })
        .await
    }

    async fn outbox_entries(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let after = i64::try_from(after_id).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("outbox_entries", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let rows = client
                .query(
                    "SELECT id, mail, attempts, not_before, lease_until FROM outbox \
                     WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after, &limit],
                )
                .await
                .map_err(pg_error)?;
            rows.iter().map(decode_entry).collect()
        })
        .await
    }
}
