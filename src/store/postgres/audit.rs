//! The audit trail on PostgreSQL (SPEC §16): events inserted by the transaction of the write
//! they describe (`writes::write_effects`), with ids from the one sequence every replica
//! draws from; listed newest first by a keyset over the id, narrowed by the filter's indexes.

use super::{pg_error, pool_error, to_i64, to_u64, PgStore};
use crate::store::{Action, Event, EventFilter, EventTap, StoreError};
use serde_json::{Map, Value};
use std::sync::OnceLock;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};

/// The columns `decode_event` reads, in the order of `EventColumns::typed`.
const EVENT_COLUMNS: &str = "id, time, action, actor_id, actor_username, target_id, ip, \
     user_agent, request_id, details";

/// A write's events, ids drawn from the sequence: one statement however many there are, with
/// its parameters typed so it costs one round trip (no prepare). The whole rows come back, so
/// the tap is told exactly what was stored.
const INSERT_NEW: &str = "INSERT INTO audit_events (time, action, actor_id, actor_username, \
     target_id, ip, user_agent, request_id, details) \
     SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     RETURNING id, time, action, actor_id, actor_username, target_id, ip, user_agent, \
     request_id, details";

/// Events that keep their ids (`store copy`).
const INSERT_KEEPING_IDS: &str = "INSERT INTO audit_events (time, action, actor_id, \
     actor_username, target_id, ip, user_agent, request_id, details, id) \
     SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

fn decode_event(row: &Row) -> Result<Event, StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Io(format!("corrupt event row: {e}"));
    let opt_id = |v: Option<i64>, what: &str| v.map(|n| to_u64(n, what)).transpose();
    let action: String = row.try_get("action").map_err(get_err)?;
    let details: String = row.try_get("details").map_err(get_err)?;
    Ok(Event {
        id: to_u64(row.try_get("id").map_err(get_err)?, "event id")?,
        time: to_u64(row.try_get("time").map_err(get_err)?, "event time")?,
        action: Action::parse(&action)
            .ok_or_else(|| StoreError::Io(format!("corrupt event row: action {action:?}")))?,
        actor_id: opt_id(row.try_get("actor_id").map_err(get_err)?, "actor id")?,
        actor_username: row.try_get("actor_username").map_err(get_err)?,
        target_id: opt_id(row.try_get("target_id").map_err(get_err)?, "target id")?,
        ip: row.try_get("ip").map_err(get_err)?,
        user_agent: row.try_get("user_agent").map_err(get_err)?,
        request_id: row.try_get("request_id").map_err(get_err)?,
        details: serde_json::from_str::<Map<String, Value>>(&details)
            .map_err(|e| StoreError::Io(format!("corrupt event row: details: {e}")))?,
    })
}

/// Events as one array per column (the parameters of `INSERT_NEW`/`INSERT_KEEPING_IDS`).
/// `details` is kept as JSON text: jsonb refuses a `\u0000` a caller may well put in a
/// detail (an attempted username), and that would fail the write it rides on.
struct EventColumns<'a> {
    time: Vec<i64>,
    action: Vec<&'static str>,
    actor_id: Vec<Option<i64>>,
    actor_username: Vec<&'a str>,
    target_id: Vec<Option<i64>>,
    ip: Vec<Option<&'a str>>,
    user_agent: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
    details: Vec<String>,
    id: Vec<i64>,
}

impl<'a> EventColumns<'a> {
    fn new(events: &'a [Event]) -> Result<EventColumns<'a>, StoreError> {
        let opt = |v: Option<u64>, what: &str| v.map(|n| to_i64(n, what)).transpose();
        let mut c = EventColumns {
            time: Vec::with_capacity(events.len()),
            action: Vec::with_capacity(events.len()),
            actor_id: Vec::with_capacity(events.len()),
            actor_username: Vec::with_capacity(events.len()),
            target_id: Vec::with_capacity(events.len()),
            ip: Vec::with_capacity(events.len()),
            user_agent: Vec::with_capacity(events.len()),
            request_id: Vec::with_capacity(events.len()),
            details: Vec::with_capacity(events.len()),
            id: Vec::with_capacity(events.len()),
        };
        for e in events {
            c.time.push(to_i64(e.time, "event time")?);
            c.action.push(e.action.as_str());
            c.actor_id.push(opt(e.actor_id, "actor id")?);
            c.actor_username.push(&e.actor_username);
            c.target_id.push(opt(e.target_id, "target id")?);
            c.ip.push(e.ip.as_deref());
            c.user_agent.push(e.user_agent.as_deref());
            c.request_id.push(e.request_id.as_deref());
            c.details.push(
                serde_json::to_string(&e.details)
                    .map_err(|e| StoreError::Io(format!("cannot encode event details: {e}")))?,
            );
            c.id.push(to_i64(e.id, "event id")?);
        }
        Ok(c)
    }

    /// The columns with their array types, in the order of the INSERTs' parameters; the ids
    /// last, only when they are kept.
    fn typed(&self, with_ids: bool) -> Vec<(&(dyn ToSql + Sync), Type)> {
        let mut p: Vec<(&(dyn ToSql + Sync), Type)> = vec![
            (&self.time, Type::INT8_ARRAY),
            (&self.action, Type::TEXT_ARRAY),
            (&self.actor_id, Type::INT8_ARRAY),
            (&self.actor_username, Type::TEXT_ARRAY),
            (&self.target_id, Type::INT8_ARRAY),
            (&self.ip, Type::TEXT_ARRAY),
            (&self.user_agent, Type::TEXT_ARRAY),
            (&self.request_id, Type::TEXT_ARRAY),
            (&self.details, Type::TEXT_ARRAY),
        ];
        if with_ids {
            p.push((&self.id, Type::INT8_ARRAY));
        }
        p
    }
}

/// Inserts a write's `events` through `client` (its transaction), ids drawn from the
/// sequence; returns them as stored, in id order. No statement when there are none.
pub(super) async fn insert_new(
    client: &impl GenericClient,
    events: &[Event],
) -> Result<Vec<Event>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let columns = EventColumns::new(events)?;
    let rows = client
        .query_typed(INSERT_NEW, &columns.typed(false))
        .await
        .map_err(pg_error)?;
    let mut written = rows
        .iter()
        .map(decode_event)
        .collect::<Result<Vec<_>, _>>()?;
    written.sort_by_key(|e| e.id);
    Ok(written)
}

/// Tells `tap` (when one is set) of committed `events`.
pub(super) fn tell(tap: &OnceLock<EventTap>, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    if let Some(tap) = tap.get() {
        tap(events);
    }
}

/// One parameter of a `list_events` query.
#[derive(Debug, PartialEq, Eq)]
enum Arg {
    Int(i64),
    Text(&'static str),
}

impl Arg {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Arg::Int(n) => n,
            Arg::Text(s) => s,
        }
    }
}

/// The WHERE conditions of `filter` and the keyset cursor `before`, with their parameters
/// ($1...); `None` when nothing can match (a bound past what the database holds: every id
/// and time there is at most i64::MAX).
fn event_conditions(filter: &EventFilter, before: Option<u64>) -> Option<(String, Vec<Arg>)> {
    let EventFilter {
        actor,
        target,
        action,
        since,
        until,
    } = filter;
    let mut conds = Vec::new();
    let mut args = Vec::new();
    let mut push = |cond: &str, arg: Arg| {
        args.push(arg);
        conds.push(format!("{cond} ${}", args.len()));
    };
    // A user id, lower bound or cursor too large for the database: nothing there matches it.
    // An upper bound that large: everything is below it.
    if let Some(actor) = actor {
        push("actor_id =", Arg::Int(i64::try_from(*actor).ok()?));
    }
    if let Some(target) = target {
        push("target_id =", Arg::Int(i64::try_from(*target).ok()?));
    }
    if let Some(action) = action {
        push("action =", Arg::Text(action.as_str()));
    }
    if let Some(since) = since {
        push("time >=", Arg::Int(i64::try_from(*since).ok()?));
    }
    if let Some(Ok(until)) = until.map(i64::try_from) {
        push("time <", Arg::Int(until));
    }
    if let Some(Ok(before)) = before.map(i64::try_from) {
        push("id <", Arg::Int(before));
    }
    let sql = if conds.is_empty() {
        "true".to_string()
    } else {
        conds.join(" AND ")
    };
    Some((sql, args))
}

impl PgStore {
    /// `UserStore::list_events`.
    pub(super) async fn events_before(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let Some((cond, args)) = event_conditions(filter, before) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = to_i64(limit as u64, "limit")?;
        self.run("list_events", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let mut params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::as_sql).collect();
            params.push(&limit);
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM audit_events WHERE {cond} ORDER BY id DESC LIMIT ${}",
                params.len()
            );
            let rows = client.query(&sql, &params).await.map_err(pg_error)?;
            rows.iter().map(decode_event).collect()
        })
        .await
    }

    /// `UserStore::events_after`.
    pub(super) async fn events_from(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        // Ids in the database stop at i64::MAX: nothing is above a larger cursor.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = to_i64(limit as u64, "limit")?;
        self.run("events_after", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2"
                    ),
                    &[&after, &limit],
                )
                .await
                .map_err(pg_error)?;
            rows.iter().map(decode_event).collect()
        })
        .await
    }

    /// `UserStore::insert_events`: the events with their ids, in one transaction that also
    /// moves the sequence above the highest. It holds the table against writers meanwhile, so
    /// no replica draws an id below the one it sets (setval would else go back past it).
    pub(super) async fn insert_keeping_ids(&self, events: Vec<Event>) -> Result<(), StoreError> {
        let Some(highest) = events.iter().map(|e| e.id).max() else {
            return Ok(());
        };
        let highest = to_i64(highest, "event id")?;
        self.run("insert_events", move |pool| async move {
            let columns = EventColumns::new(&events)?;
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(pg_error)?;
            tx.batch_execute("LOCK TABLE audit_events IN EXCLUSIVE MODE")
                .await
                .map_err(pg_error)?;
            tx.query_typed(INSERT_KEEPING_IDS, &columns.typed(true))
                .await
                .map_err(|e| {
                    if e.as_db_error().is_some_and(|db| {
                        *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    }) {
                        StoreError::Io(format!(
                            "an event id among {}..={highest} exists",
                            columns.id.iter().min().copied().unwrap_or(highest)
                        ))
                    } else {
                        pg_error(e)
                    }
                })?;
            // Never backwards: a fresh sequence (last_value 1, not called yet) and one that
            // is already past `highest` both end up above every id.
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), \
                 greatest($1, last_value)) FROM audit_events_id_seq",
                &[&highest],
            )
            .await
            .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)
        })
        .await
    }

    /// `UserStore::delete_events_before`.
    pub(super) async fn delete_events_older(&self, time: u64) -> Result<usize, StoreError> {
        // Every stored time is at most i64::MAX: a larger bound takes them all.
        let time = i64::try_from(time).unwrap_or(i64::MAX);
        self.run("delete_events_before", move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n = client
                .execute("DELETE FROM audit_events WHERE time < $1", &[&time])
                .await
                .map_err(pg_error)?;
            usize::try_from(n).map_err(|_| StoreError::Io(format!("deleted {n} events")))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_lists_everything() {
        let (sql, args) = event_conditions(&EventFilter::default(), None).expect("matches");
        assert_eq!(sql, "true");
        assert!(args.is_empty());
    }

    #[test]
    fn every_field_narrows_in_order_with_the_cursor_last() {
        let filter = EventFilter {
            actor: Some(3),
            target: Some(4),
            action: Some(Action::LoginFailed),
            since: Some(10),
            until: Some(20),
        };
        let (sql, args) = event_conditions(&filter, Some(99)).expect("matches");
        assert_eq!(
            sql,
            "actor_id = $1 AND target_id = $2 AND action = $3 AND time >= $4 AND time < $5 \
             AND id < $6"
        );
        assert_eq!(
            args,
            [
                Arg::Int(3),
                Arg::Int(4),
                Arg::Text("login.failed"),
                Arg::Int(10),
                Arg::Int(20),
                Arg::Int(99)
            ]
        );
    }

    #[test]
    fn bounds_past_the_database_match_nothing_or_everything() {
        let huge = u64::MAX;
        for filter in [
            EventFilter {
                actor: Some(huge),
                ..EventFilter::default()
            },
            EventFilter {
                target: Some(huge),
                ..EventFilter::default()
            },
            EventFilter {
                since: Some(huge),
                ..EventFilter::default()
            },
        ] {
            assert_eq!(event_conditions(&filter, None), None, "{filter:?}");
        }
        let open = EventFilter {
            until: Some(huge),
            ..EventFilter::default()
        };
        let (sql, args) = event_conditions(&open, Some(huge)).expect("matches");
        assert_eq!((sql.as_str(), args.len()), ("true", 0));
    }

    #[test]
    fn columns_keep_the_events_order_and_absent_values() {
        let event = |id, actor| Event {
            id,
            time: 5,
            action: Action::Logout,
            actor_id: actor,
            actor_username: "ann".into(),
            target_id: None,
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: None,
            details: Map::new(),
        };
        let events = [event(7, Some(1)), event(8, None)];
        let c = EventColumns::new(&events).expect("columns");
        assert_eq!(c.id, [7, 8]);
        assert_eq!(c.actor_id, [Some(1), None]);
        assert_eq!(c.action, ["logout", "logout"]);
        assert_eq!(c.details, ["{}", "{}"]);
        assert_eq!(c.typed(false).len() + 1, c.typed(true).len());
        let too_big = [event(u64::MAX, None)];
        assert!(EventColumns::new(&too_big).is_err());
    }
}
