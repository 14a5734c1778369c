//! The audit log for staff (SPEC §16): the query read into a filter and a keyset cursor, as
//! django-filter and DRF's CursorPagination read theirs, and the events rendered newest first.

use super::admin::link_with;
use super::{Ctx, Request};
use crate::error::{field, ApiError, FieldError, FieldErrors};
use crate::response::Response;
use crate::store::{Action, EventFilter};
use base64::Engine;
use serde_json::json;

/// Events per page without `page_size` (SPEC §16).
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The most a page holds; a bigger `page_size` is clamped to it (DRF's `max_page_size`).
pub const MAX_PAGE_SIZE: usize = 500;

/// The query parameter names, one place (the links carry them too).
pub const CURSOR: &str = "cursor";
pub const PAGE_SIZE: &str = "page_size";

/// The cursor's text before encoding: DRF's `p=<position>`, the position here the id the page
/// starts below.
const POSITION: &str = "p=";

/// One page asked for: what to select, below which id, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub filter: EventFilter,
    /// Events with ids below this one (the cursor); `None` for the first page.
    pub before: Option<u64>,
    pub page_size: usize,
}

/// The cursor that starts a page below event `id`: opaque to clients, base64 as DRF's are.
pub fn encode_cursor(id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{POSITION}{id}"))
}

/// The id a cursor starts below; `Ok(None)` for an empty cursor (DRF reads it as the first
/// page), `InvalidCursor` for anything this API did not make.
pub fn decode_cursor(cursor: &str) -> Result<Option<u64>, ApiError> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .map_err(|_| ApiError::InvalidCursor)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::InvalidCursor)?;
    let digits = text.strip_prefix(POSITION).ok_or(ApiError::InvalidCursor)?;
    // Digits only: `u64::from_str` would also take a leading `+`.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidCursor);
    }
    digits
        .parse::<u64>()
        .map(Some)
        .map_err(|_| ApiError::InvalidCursor)
}

/// DRF's `_positive_int(strict=True, cutoff=max)`: a positive integer, clamped (a number too
/// big for any integer type too); anything else (absent, zero, negative, not an integer) the
/// default.
pub fn page_size(value: Option<&str>) -> usize {
    let Some(value) = value.map(str::trim) else {
        return DEFAULT_PAGE_SIZE;
    };
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return DEFAULT_PAGE_SIZE;
    }
    match digits.parse::<usize>() {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(n) => n.min(MAX_PAGE_SIZE),
        // Digits only, so the only failure is overflow.
        Err(_) => MAX_PAGE_SIZE,
    }
}

/// Reads the query as DRF's view would: the filters first (django-filter: every bad one listed,
/// 400 in DRF's field shape; an empty value filters nothing), then the pagination (a bad
/// cursor is 404 `Invalid cursor`, a bad `page_size` the default).
pub fn parse_query(req: &Request) -> Result<AuditQuery, ApiError> {
    let mut errors: FieldErrors = Vec::new();
    let mut fail = |name: &str, message: String| {
        errors.push((name.to_string(), FieldError::Messages(vec![message])));
    };
    let param = |name: &str| {
        req.query_param(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut user_id = |name: &str| {
        let value = param(name)?;
        let id = value.parse::<u64>().ok();
        if id.is_none() {
            fail(name, field::NOT_A_WHOLE_NUMBER.to_string());
        }
        id
    };
    let actor = user_id("actor");
    let target = user_id("target");
    let action = param("action").and_then(|name| {
        let action = Action::parse(&name);
        if action.is_none() {
            fail("action", field::invalid_choice(&name));
        }
        action
    });
    let mut time = |name: &str| {
        let value = param(name)?;
        let ms = crate::clock::parse_iso_ms(&value);
        if ms.is_none() {
            fail(name, field::INVALID_DATETIME.to_string());
        }
        ms
    };
    let since = time("since");
    let until = time("until");
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let before = match req.query_param(CURSOR) {
        Some(cursor) => decode_cursor(&cursor)?,
        None => None,
    };
    Ok(AuditQuery {
        filter: EventFilter {
            actor,
            target,
            action,
            since,
            until,
        },
        before,
        page_size: page_size(req.query_param(PAGE_SIZE).as_deref()),
    })
}

/// GET (and HEAD) /api/auth/admin/audit/: DRF's cursor envelope. One event more than the page
/// is read to know whether a next page exists; `previous` is always null (walking back would
/// need the store to select upwards from a cursor, which it does not).
pub async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let query = parse_query(ctx.req)?;
    let mut events = ctx
        .app
        .store
        .list_events(&query.filter, query.before, query.page_size + 1)
        .await?;
    let more = events.len() > query.page_size;
    events.truncate(query.page_size);
    let next = match events.last() {
        Some(last) if more => Some(link_with(ctx.req, CURSOR, Some(&encode_cursor(last.id)))),
        _ => None,
    };
    let body = json!({
        "next": next,
        "previous": null,
        "results": events.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
    });
    Ok(Response::json(200, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<AuditQuery, ApiError> {
        parse_query(&Request {
            query: query.into(),
            ..Request::default()
        })
    }

    fn field_errors(query: &str) -> Vec<(String, Vec<String>)> {
        match parse(query) {
            Err(ApiError::Validation(fields)) => fields
                .into_iter()
                .map(|(name, e)| (name, e.messages().into_iter().map(String::from).collect()))
                .collect(),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn no_parameters_is_the_first_page_of_everything() {
        assert_eq!(
            parse(""),
            Ok(AuditQuery {
                filter: EventFilter::default(),
                before: None,
                page_size: DEFAULT_PAGE_SIZE,
            })
        );
    }

    #[test]
    fn every_filter_narrows() {
        let q = parse(
            "actor=3&target=%204%20&action=login.failed&since=2026-12-07&until=2026-12-07T08:15:02.123Z",
        )
        .expect("valid");
        assert_eq!(
            q.filter,
            EventFilter {
                actor: Some(3),
                target: Some(4),
                action: Some(Action::LoginFailed),
                since: Some(1_796_601_600_000),
                until: Some(1_796_631_302_123),
            }
        );
    }

    #[test]
    fn empty_values_filter_nothing() {
        let q = parse("actor=&target=&action=&since=&until=&cursor=&page_size=").expect("valid");
        assert_eq!(q.filter, EventFilter::default());
        assert_eq!((q.before, q.page_size), (None, DEFAULT_PAGE_SIZE));
    }

    #[test]
    fn bad_filters_are_all_listed_in_field_order() {
        assert_eq!(
            field_errors("until=soon&action=login.maybe&actor=me&since=2026-13-01&target=-1"),
            vec![
                ("actor".into(), vec![field::NOT_A_WHOLE_NUMBER.to_string()]),
                ("target".into(), vec![field::NOT_A_WHOLE_NUMBER.to_string()]),
                ("action".into(), vec![field::invalid_choice("login.maybe")]),
                ("since".into(), vec![field::INVALID_DATETIME.to_string()]),
                ("until".into(), vec![field::INVALID_DATETIME.to_string()]),
            ]
        );
    }

    #[test]
    fn filters_are_checked_before_the_cursor() {
        assert!(matches!(
            parse("action=nope&cursor=garbage"),
            Err(ApiError::Validation(_))
        ));
        assert_eq!(parse("cursor=garbage"), Err(ApiError::InvalidCursor));
    }

    #[test]
    fn a_cursor_round_trips_and_nothing_else_passes() {
        for id in [1, 42, u64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(id)), Ok(Some(id)));
        }
        let q = parse(&format!(
            "cursor={}",
            form_urlencoded::byte_serialize(encode_cursor(7).as_bytes()).collect::<String>()
        ))
        .expect("valid");
        assert_eq!(q.before, Some(7));
        assert_eq!(decode_cursor(""), Ok(None));
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for bad in [
            "!!!".to_string(),
            "cD0x".to_string() + "=",
            b64("p="),
            b64("p=+1"),
            b64("p=-1"),
            b64("p=1x"),
            b64("o=1"),
            b64("p=99999999999999999999"),
            base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe]),
        ] {
            assert_eq!(decode_cursor(&bad), Err(ApiError::InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn page_size_defaults_and_clamps_as_drf() {
        assert_eq!(page_size(None), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some("2")), 2);
        assert_eq!(page_size(Some("500")), 500);
        assert_eq!(page_size(Some("501")), MAX_PAGE_SIZE);
        assert_eq!(page_size(Some(" +7 ")), 7);
        assert_eq!(page_size(Some("99999999999999999999999")), MAX_PAGE_SIZE);
        for bad in ["0", "000", "-1", "ten", "", "+", "1.5", "1e3"] {
            assert_eq!(page_size(Some(bad)), DEFAULT_PAGE_SIZE, "{bad}");
        }
    }
}
