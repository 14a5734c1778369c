//! `gatehouse store copy --to URL`: everything in the configured sled store (users with their
//! ids, refresh-token families, browser sessions, second factors, API keys, the queued mail of the outbox, the audit
//! trail with its ids, the generated JWT secret and assertion key) into an empty PostgreSQL
//! database, migrated first; the id sequences end above the highest ids. Refuses a target that
//! already holds users, families or events. The sled store must not be in use. Queued mails
//! keep their order and the time of the change that caused them (so the 24 h retry limit
//! still counts from it); their tries start again.

use crate::config::Config;
use crate::store::{
    Effects, EventFilter, ListFilter, MailOutbox, PgOptions, PgStore, SledStore, UserStore,
};
use std::time::Duration;

/// Users read and written per round trip.
const PAGE: usize = 1000;

pub fn run(config: &Config, to: &str) -> Result<(), String> {
    let sled = SledStore::open(
        &crate::store::sled_dir(config),
        config.store.cache_capacity_mib * 1024 * 1024,
    )
    .map_err(|e| e.to_string())?;
    let options = PgOptions {
        pool_size: 2,
        freshness: Duration::from_millis(config.store.freshness_ms),
        check_schema: false,
    };
    let target = crate::store::postgres::redact_url(to);
    let pg = PgStore::open(to, options).map_err(|e| format!("{target}: {e}"))?;
    pg.migrate().map_err(|e| format!("{target}: {e}"))?;
    if !pg.is_empty().map_err(|e| e.to_string())? {
        return Err(format!(
            "{target} already holds users, refresh-token families or audit events: store copy only fills an empty database"
        ));
    }
    let total = super::block_on(sled.count_users(&crate::store::StateFilter::All))?
        .map_err(|e| e.to_string())?;
    eprintln!("copying {total} users from sled to {target}");
    let all = ListFilter::default();
    let (mut after, mut copied) = (0u64, 0usize);
    loop {
        let page =
            super::block_on(sled.users_after(&all, after, PAGE))?.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let n = page.len();
        let results = super::block_on(pg.insert_users(page))?.map_err(|e| e.to_string())?;
        for r in results {
            r.map_err(|e| format!("copying users after id {after}: {e}"))?;
        }
        copied += n;
        eprintln!("users: {copied}/{total}");
    }
    let families = sled.family_count();
    let mut done = 0usize;
    for item in sled.families() {
        let (family, record) = item.map_err(|e| e.to_string())?;
        let inserted =
            super::block_on(pg.swap_family(&family, None, &record))?.map_err(|e| e.to_string())?;
        if !inserted {
            return Err(format!(
                "family {family} appeared in the target during the copy"
            ));
        }
        done += 1;
        if done % PAGE == 0 || done == families {
            eprintln!("refresh-token families: {done}/{families}");
        }
    }
    // Browser sessions: people stay signed in across the switch (the cookie holds the id,
    // the store its hash; users come first, so each session's user is there).
    let sessions = copy_sessions(&sled, &pg)?;
    // Second factors, pending or on, sealed as they are (the key comes from the JWT secret
    // copied below): without them a user's sign-in would need the password alone on the copy.
    let factors = copy_second_factors(&sled, &pg)?;
    // API keys (their hashes: the keys themselves were never kept), revoked ones included.
    let keys = copy_api_keys(&sled, &pg)?;
    // The queued mail: sent by the replicas once they run on the copy.
    let queued = super::block_on(sled.outbox_depth())?.map_err(|e| e.to_string())?;
    let (mut after_mail, mut mails) = (0u64, 0usize);
    loop {
        let page =
            super::block_on(sled.outbox_entries(after_mail, PAGE))?.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after_mail = last.id;
        let n = page.len();
        super::block_on(async {
            for entry in page {
                pg.record(entry.mail.into()).await?;
            }
            Ok::<(), crate::store::StoreError>(())
        })?
        .map_err(|e| format!("copying the queued mails up to id {after_mail}: {e}"))?;
        mails += n;
        eprintln!("queued mails: {mails}/{queued}");
    }
    // The audit trail: its history and ids go on in the copy.
    let events = copy_events(&sled, &pg)?;
    // The generated keys: tokens signed before the switch stay valid on every replica.
    for (file, name) in [
        (crate::auth::secret::GENERATED_FILE, "jwt_secret"),
        (crate::auth::keys::ASSERTION_KEY_FILE, "assertion_key"),
    ] {
        let path = config.server.data_dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let value = if name == "jwt_secret" {
                    String::from_utf8(bytes)
                        .map_err(|_| format!("{} is not text", path.display()))?
                        .trim()
                        .as_bytes()
                        .to_vec()
                } else {
                    bytes
                };
                let kept = pg
                    .shared_key(name, value.clone())
                    .map_err(|e| e.to_string())?;
                if kept.as_ref() != Some(&value) {
                    eprintln!(
                        "warning: {target} already keeps a {name} (a replica started on it): tokens signed with sled's {file} will not verify there"
                    );
                } else {
                    eprintln!("key: {file}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    println!("copied {copied} users and {done} refresh-token families to {target}");
    println!("copied {mails} queued mails");
    println!("copied {sessions} browser sessions");
    println!("copied {factors} second factors");
    println!("copied {keys} API keys");
    println!("copied {events} audit events");
    Ok(())
}

/// Every second-factor record of `sled` into `pg`, each as its user's first record.
fn copy_second_factors(sled: &SledStore, pg: &PgStore) -> Result<usize, String> {
    let mut done = 0usize;
    for item in sled.second_factors() {
        let (user_id, record) = item.map_err(|e| e.to_string())?;
        let inserted = super::block_on(pg.swap_mfa(user_id, None, Some(&record), Effects::none()))?
            .map_err(|e| format!("copying the second factor of user {user_id}: {e}"))?;
        if !inserted {
            return Err(format!(
                "the second factor of user {user_id} appeared in the target during the copy"
            ));
        }
        done += 1;
    }
    eprintln!("second factors: {done}");
    Ok(done)
}

/// Every API key of `sled` into `pg`, `PAGE` per transaction, in id order; how many.
fn copy_api_keys(sled: &SledStore, pg: &PgStore) -> Result<usize, String> {
    let (mut after, mut done) = (String::new(), 0usize);
    loop {
        let page =
            super::block_on(sled.api_keys_after(&after, PAGE))?.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        done += page.len();
        let effects = Effects {
            api_keys: page,
            ..Effects::none()
        };
        super::block_on(pg.record(effects))?
            .map_err(|e| format!("copying the API keys up to id {after}: {e}"))?;
    }
    eprintln!("API keys: {done}");
    Ok(done)
}

/// Every audit event of `sled` into `pg` with its id, `PAGE` per transaction, oldest first;
/// how many were copied. Checks that the copy ends on sled's newest event.
fn copy_events(sled: &SledStore, pg: &PgStore) -> Result<usize, String> {
    let total = sled.event_count();
    let (mut after, mut done) = (0u64, 0usize);
    loop {
        let page = super::block_on(sled.events_after(after, PAGE))?.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        let first = after;
        after = last.id;
        let n = page.len();
        super::block_on(pg.insert_events(page))?
            .map_err(|e| format!("copying the audit events after id {first}: {e}"))?;
        done += n;
        eprintln!("audit events: {done}/{total}");
    }
    let newest = super::block_on(pg.list_events(&EventFilter::default(), None, 1))?
        .map_err(|e| e.to_string())?;
    let newest = newest.first().map_or(0, |e| e.id);
    if newest != after {
        return Err(format!(
            "the copied audit trail ends at event {newest}, sled's at {after}"
        ));
    }
    Ok(done)
}

/// Every session of `sled` into `pg`, `PAGE` per transaction; how many were copied.
fn copy_sessions(sled: &SledStore, pg: &PgStore) -> Result<usize, String> {
    let total = sled.session_count();
    let mut done = 0usize;
    let mut page = Vec::with_capacity(PAGE.min(total));
    let mut items = sled.sessions().peekable();
    while let Some(item) = items.next() {
        page.push(item.map_err(|e| e.to_string())?);
        if page.len() < PAGE && items.peek().is_some() {
            continue;
        }
        let n = page.len();
        let effects = Effects {
            sessions: std::mem::take(&mut page),
            ..Effects::none()
        };
        super::block_on(pg.record(effects))?
            .map_err(|e| format!("copying browser sessions after the first {done}: {e}"))?;
        done += n;
        eprintln!("browser sessions: {done}/{total}");
    }
    Ok(done)
}
