//! The audit log page (`audit/`): the events of SPEC §16 newest first, filtered and
//! keyset-paged by the audit API's own query reading (`api::audit::parse_query`) and store
//! call, each with its time, action, actor, target, address and details (before and after).

use super::views::{self, AuditForm, AuditRow, ChangeRow};
use crate::api::audit::{encode_cursor, parse_query, CURSOR, PAGE_SIZE};
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::response::Response;
use crate::store::Event;
use crate::web::kit::{self, Csrf, PageRequest};
use crate::web::render::FieldErrors;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One day in milliseconds: an `until` date counts through its end.
const DAY_MS: u64 = 24 * 3600 * 1000;
/// Said for a cursor this page did not make.
const BAD_CURSOR: &str =
    "This page link is not valid (it may have been cut short). Start again from the newest events.";

/// The filter fields, in the form's order.
const FIELDS: [&str; 5] = ["actor", "target", "action", "since", "until"];

/// The filters as typed, for the form.
pub fn form_of(p: &PageRequest<'_>) -> AuditForm {
    let v = |name: &str| {
        p.req
            .query_param(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    AuditForm {
        actor: v("actor"),
        target: v("target"),
        action: v("action"),
        since: v("since"),
        until: v("until"),
    }
}

/// The exclusive end of the filter for `until` as typed: a date alone (the form's date
/// field) counts through the end of that day; a date-time is the instant given.
pub fn until_end(typed: &str, parsed: u64) -> u64 {
    if typed.len() == 10 && !typed.contains('T') {
        parsed.saturating_add(DAY_MS)
    } else {
        parsed
    }
}

/// The page's address for `form`'s filters, starting below `cursor` (none: the newest).
pub fn page_url(
    prefix: &str,
    form: &AuditForm,
    page_size: Option<&str>,
    cursor: Option<&str>,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let values = [
        &form.actor,
        &form.target,
        &form.action,
        &form.since,
        &form.until,
    ];
    for (name, value) in FIELDS.iter().zip(values) {
        if !value.is_empty() {
            q.append_pair(name, value);
        }
    }
    if let Some(size) = page_size {
        q.append_pair(PAGE_SIZE, size);
    }
    if let Some(c) = cursor {
        q.append_pair(CURSOR, c);
    }
    let query = q.finish();
    if query.is_empty() {
        format!("{prefix}audit/")
    } else {
        format!("{prefix}audit/?{query}")
    }
}

/// Said above the filters when some were refused (each field says why).
pub const FILTERS_REFUSED: &str = "The filters were not applied: correct the fields marked below.";

/// A refused query: the messages of each filter by name, and those of nothing in the form
/// (a cursor this page did not make).
pub fn messages_of(e: &ApiError) -> (FieldErrors, Vec<String>) {
    let mut fields = FieldErrors::new();
    match e {
        ApiError::InvalidCursor => return (fields, vec![BAD_CURSOR.to_string()]),
        ApiError::Validation(refused) => {
            for (name, err) in refused {
                fields
                    .entry(name.clone())
                    .or_default()
                    .extend(err.messages().into_iter().map(str::to_string));
            }
        }
        other => return (fields, vec![other.to_string()]),
    }
    (fields, vec![FILTERS_REFUSED.to_string()])
}

/// A detail value as text: strings as they are, lists joined, the rest as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "none".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "none".to_string(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// An event's details: the fields `before` and `after` name (each with both values, "" for
/// the side that lacks it), and the other details as text.
pub fn details_of(details: &Map<String, Value>) -> (Vec<ChangeRow>, Vec<(String, String)>) {
    let side = |k: &str| details.get(k).and_then(Value::as_object);
    let (before, after) = (side("before"), side("after"));
    let mut fields: BTreeMap<&str, ()> = BTreeMap::new();
    for m in [before, after].into_iter().flatten() {
        fields.extend(m.keys().map(|k| (k.as_str(), ())));
    }
    let text = |m: Option<&Map<String, Value>>, k: &str| {
        m.and_then(|m| m.get(k))
            .map_or_else(String::new, value_text)
    };
    let changes = fields
        .keys()
        .map(|k| ChangeRow {
            field: k.to_string(),
            before: text(before, k),
            after: text(after, k),
        })
        .collect();
    let other = details
        .iter()
        .filter(|(k, v)| !((k.as_str() == "before" || k.as_str() == "after") && v.is_object()))
        .map(|(k, v)| (k.clone(), value_text(v)))
        .collect();
    (changes, other)
}

/// The audit log page for staff member `who`.
pub(super) async fn page(app: &App, p: &PageRequest<'_>, who: &Identity, csrf: &Csrf) -> Response {
    let form = form_of(p);
    let prefix = &app.config.console.prefix;
    let size_param = p.req.query_param(PAGE_SIZE);
    let newest = page_url(prefix, &form, size_param.as_deref(), None);
    let paged = p.req.query_param(CURSOR).is_some_and(|c| !c.is_empty());
    let query = match parse_query(p.req) {
        Ok(mut q) => {
            q.filter.until = q.filter.until.map(|u| until_end(&form.until, u));
            q
        }
        Err(e) => {
            let (fields, errors) = messages_of(&e);
            let said = Said {
                fields: &fields,
                errors: &errors,
            };
            return view(app, who, csrf, &form, &[], None, paged, newest, &said, 400).await;
        }
    };
    let read = app
        .store
        .list_events(&query.filter, query.before, query.page_size + 1)
        .await;
    let mut events = match read {
        Ok(events) => events,
        Err(e) => return kit::rendered_error(app, &ApiError::from(e)),
    };
    let more = events.len() > query.page_size;
    events.truncate(query.page_size);
    let older = match events.last() {
        Some(last) if more => Some(page_url(
            prefix,
            &form,
            size_param.as_deref(),
            Some(&encode_cursor(last.id)),
        )),
        _ => None,
    };
    let none = FieldErrors::new();
    let said = Said {
        fields: &none,
        errors: &[],
    };
    view(
        app, who, csrf, &form, &events, older, paged, newest, &said, 200,
    )
    .await
}

/// What the page says of a refused query.
struct Said<'a> {
    fields: &'a FieldErrors,
    errors: &'a [String],
}

#[allow(clippy::too_many_arguments)]
async fn view(
    app: &App,
    who: &Identity,
    csrf: &Csrf,
    form: &AuditForm,
    events: &[Event],
    older: Option<String>,
    paged: bool,
    newest: String,
    said: &Said<'_>,
    status: u16,
) -> Response {
    // The targets' usernames, each looked up once.
    let mut names: BTreeMap<u64, Option<String>> = BTreeMap::new();
    for id in events.iter().filter_map(|e| e.target_id) {
        if names.contains_key(&id) {
            continue;
        }
        let name = match app.store.get_user(id).await {
            Ok(user) => user.map(|u| u.username),
            Err(e) => return kit::rendered_error(app, &ApiError::from(e)),
        };
        names.insert(id, name);
    }
    let rows: Vec<AuditRow<'_>> = events
        .iter()
        .map(|e| {
            let (changes, other) = details_of(&e.details);
            AuditRow {
                id: e.id,
                time: e.time,
                action: e.action.as_str(),
                actor_id: e.actor_id,
                actor: &e.actor_username,
                target_id: e.target_id,
                target: e.target_id.and_then(|id| names.get(&id).cloned().flatten()),
                address: e.ip.as_deref().unwrap_or(""),
                changes,
                other,
            }
        })
        .collect();
    let token = csrf.token();
    kit::rendered(
        status,
        views::audit(&views::AuditPage {
            frame: super::frame(app, &who.username, &token),
            filters: form,
            events: &rows,
            older,
            paged,
            newest,
            errors: said.errors,
            field_errors: said.fields,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_until_date_counts_through_its_day() {
        assert_eq!(until_end("2026-12-07", 1_000), 1_000 + DAY_MS);
        assert_eq!(until_end("2026-12-07T08:00:00Z", 1_000), 1_000);
    }

    #[test]
    fn page_links_keep_the_filters() {
        let form = AuditForm {
            action: "login.failed".into(),
            target: "7".into(),
            ..AuditForm::default()
        };
        assert_eq!(
            page_url("/admin/", &AuditForm::default(), None, None),
            "/admin/audit/"
        );
        assert_eq!(
            page_url("/admin/", &form, Some("2"), Some("cD0x+/=")),
            "/admin/audit/?target=7&action=login.failed&page_size=2&cursor=cD0x%2B%2F%3D"
        );
    }

    #[test]
    fn refused_filters_are_said_at_their_fields() {
        let e = ApiError::Validation(vec![(
            "since".into(),
            crate::error::FieldError::Messages(vec!["bad".into()]),
        )]);
        let (fields, above) = messages_of(&e);
        assert_eq!(fields.get("since"), Some(&vec!["bad".to_string()]));
        assert_eq!(above, [FILTERS_REFUSED]);
        let (fields, above) = messages_of(&ApiError::InvalidCursor);
        assert!(fields.is_empty());
        assert_eq!(above, [BAD_CURSOR]);
    }

    #[test]
    fn details_read_as_before_and_after() {
        let d = json!({
            "before": {"groups": ["ops"], "is_active": true},
            "after": {"groups": [], "is_active": false, "email": "a@b"},
            "members": 3,
            "reason": "bad_credentials"
        });
        let (changes, other) = details_of(d.as_object().expect("object"));
        let rows: Vec<(&str, &str, &str)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.before.as_str(), c.after.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("email", "", "a@b"),
                ("groups", "ops", "none"),
                ("is_active", "true", "false")
            ]
        );
        assert_eq!(
            other,
            [
                ("members".to_string(), "3".to_string()),
                ("reason".to_string(), "bad_credentials".to_string())
            ]
        );
    }
}
