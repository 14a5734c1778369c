//! The user writes on PostgreSQL with their `Effects`: a change and what it causes commit in
//! one transaction, or neither does. A change is a closure, which cannot travel to the
//! store's runtime: it is applied here to the row read with its revision, and the
//! transaction is the conditional UPDATE plus the effects. The events a write recorded are
//! told to the tap after its COMMIT, on the store's runtime: a caller that stops waiting
//! (a client gone) does not keep a committed event from the sink.

use super::{
    apikeys, audit, outbox, pg_error, pool_error, put_family, sessions, taken, to_i64, PgStore,
    UserParams, USER_FIELDS, USER_PARAMS,
};
use crate::store::{
    ChangeEffects, Effects, Event, StoreError, User, UserChange, MAX_SWAP_ATTEMPTS,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

/// Records `effects` through `client` (the caller's transaction); returns its events as
/// stored, with their ids, for the tap once the transaction commits.
pub(super) async fn write_effects(
    client: &impl GenericClient,
    effects: &Effects,
) -> Result<Vec<Event>, StoreError> {
    let Effects {
        mails,
        sessions: created,
        end_sessions,
        families,
        mfa_removed,
        events,
        api_keys: new_keys,
        api_keys_revoked,
    } = effects;
    remove_mfa(client, mfa_removed).await?;
    sessions::insert_sessions(client, created).await?;
    sessions::delete_sessions(client, end_sessions).await?;
    for (family, record) in families {
        put_family(client, family, record).await?;
    }
    apikeys::put_keys(client, new_keys).await?;
    apikeys::revoke_keys(client, api_keys_revoked).await?;
    outbox::insert_mails(client, mails).await?;
    audit::insert_new(client, events).await
}

/// Locks the rows of users `ids` (in id order, `FOR NO KEY UPDATE`) through `client` (the
/// caller's transaction), before it touches their second factors: the `mfa` trigger writes
/// the user's `mfa_on` (migration 11) after the factor's row is locked, so a writer taking
/// the factor first and the user second, against a user write (which holds the user)
/// deleting the factor, would wait on each other; and two writers holding the user only
/// shared would both wait to write it. Every store path takes the user first, exclusively.
pub(super) async fn lock_users_first(
    client: &impl GenericClient,
    ids: &[i64],
) -> Result<(), StoreError> {
    client
        .execute(
            "SELECT 1 FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&ids],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Deletes the second factors of `users` through `client` (the caller's transaction), their
/// users locked first (`lock_users_first`).
async fn remove_mfa(client: &impl GenericClient, users: &[u64]) -> Result<(), StoreError> {
    if users.is_empty() {
        return Ok(());
    }
    let ids = users
        .iter()
        .map(|id| to_i64(*id, "user id"))
        .collect::<Result<Vec<i64>, _>>()?;
    lock_users_first(client, &ids).await?;
    client
        .execute("DELETE FROM mfa WHERE user_id = ANY($1)", &[&ids])
        .await
        .map_err(pg_error)?;
    Ok(())
}

impl PgStore {
    /// `UserStore::update_user`. Optimistic: read with its revision, apply the caller's
    /// change, write only if nobody wrote in between (else read again).
    pub(super) async fn update(
        &self,
        id: u64,
        change: UserChange<'_>,
        effects: ChangeEffects<'_>,
    ) -> Result<User, StoreError> {
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let Some((old, rev)) = self.read_user(id).await? else {
                return Err(StoreError::NotFound);
            };
            let mut new = old.clone();
            change(&mut new);
            new.id = id;
            if new == old {
                // Nothing to write to the user, but what it causes (a session at a second
                // sign-in within the same second) is still recorded.
                let caused = effects(&old, &new);
                if !caused.is_empty() {
                    self.record_effects(caused).await?;
                }
                return Ok(new);
            }
            let caused = effects(&old, &new);
            let p = UserParams::new(&new)?;
            let db_id = to_i64(id, "user id")?;
            let tap = self.event_tap.clone();
            let written = self
                .run("update_user", move |pool| async move {
                    let mut client = pool.get().await.map_err(pool_error)?;
                    let tx = client.transaction().await.map_err(pg_error)?;
                    let sets: Vec<String> = USER_FIELDS
                        .split(", ")
                        .map(str::trim)
                        .enumerate()
                        .map(|(i, f)| format!("{f} = ${}", i + 1))
                        .collect();
                    let sql = format!(
                        "UPDATE users SET {}, rev = rev + 1 WHERE id = ${} AND rev = ${}",
                        sets.join(", "),
                        USER_PARAMS + 1,
                        USER_PARAMS + 2
                    );
                    let mut params: Vec<&(dyn ToSql + Sync)> = p.as_params().to_vec();
                    params.push(&db_id);
                    params.push(&rev);
                    let written = tx.execute(&sql, &params).await.map_err(taken)?;
                    let events = if written == 1 {
                        write_effects(&*tx, &caused).await?
                    } else {
                        Vec::new()
                    };
                    tx.commit().await.map_err(pg_error)?;
                    audit::tell(&tap, &events);
                    Ok(written)
                })
                .await?;
            if written == 1 {
                return Ok(new);
            }
        }
        Err(StoreError::Conflict)
    }

    /// `UserStore::record`: effects without a user change, in one transaction.
    pub(super) async fn record_effects(&self, effects: Effects) -> Result<(), StoreError> {
        if effects.is_empty() {
            return Ok(());
        }
        let tap = self.event_tap.clone();
        self.run("record", move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(pg_error)?;
            let events = write_effects(&*tx, &effects).await?;
            tx.commit().await.map_err(pg_error)?;
            audit::tell(&tap, &events);
            Ok(())
        })
        .await
    }
}
