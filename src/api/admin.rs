//! Staff views: the user list (the seed's bare list, or DRF's page envelope), one user (read,
//! or staff, active and groups changed), and restoring a soft-deleted user; the changes are
//! `accounts` operations rendered as JSON.

use super::body;
use super::users::{actor, admin_detail_json, admin_json};
use super::{Ctx, Request};
use crate::accounts::{self, Input};
use crate::error::ApiError;
use crate::response::Response;
use crate::store::{ListFilter, StateFilter};
use serde_json::{json, Map, Value};

/// DRF's PageNumberPagination default when only `?page=` is given.
const DEFAULT_PAGE_SIZE: usize = 20;

/// `?status=` and `?is_active=` together; `None` when they contradict (an empty list).
fn state_filter(status: Option<&str>, is_active: Option<&str>) -> Option<StateFilter> {
    let by_status = match status {
        Some("active") => StateFilter::Active,
        Some("deleted") | Some("inactive") => StateFilter::Inactive,
        _ => StateFilter::All,
    };
    let by_flag = match is_active.map(str::to_ascii_lowercase).as_deref() {
        Some("true") | Some("1") => Some(StateFilter::Active),
        Some("false") | Some("0") => Some(StateFilter::Inactive),
        _ => None,
    };
    match (by_status, by_flag) {
        (s, None) => Some(s),
        (StateFilter::All, Some(f)) => Some(f),
        (s, Some(f)) if s == f => Some(s),
        _ => None,
    }
}

/// GET /api/auth/admin/users/
pub async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let req = ctx.req;
    let state = state_filter(
        req.query_param("status").as_deref(),
        req.query_param("is_active").as_deref(),
    );
    let search = req.query_param("search").filter(|s| !s.is_empty());
    let page = req.query_param("page");
    let Some(state) = state else {
        let empty: Vec<Value> = Vec::new();
        return Ok(match page {
            Some(_) => Response::json(
                200,
                &json!({"count": 0, "next": null, "previous": null, "results": empty}),
            ),
            None => Response::json(200, &json!(empty)),
        });
    };
    let filter = ListFilter { state, search };
    let Some(page) = page else {
        return bare_list(ctx, &filter).await;
    };
    let size = req
        .query_param("page_size")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map_or(DEFAULT_PAGE_SIZE, |n| {
            n.min(ctx.app.config.api.max_page_size)
        });
    let store = &ctx.app.store;
    // One store call for a numbered page (the count comes with it: a search scans once,
    // not twice); `last` needs the count first.
    let (number, count, users) = if page == "last" {
        let (count, _) = store.list_users(&filter, 0, 0).await?;
        let last = count.div_ceil(size).max(1);
        let (count, users) = store.list_users(&filter, (last - 1) * size, size).await?;
        (last, count, users)
    } else {
        let number = page.parse::<usize>().map_err(|_| ApiError::InvalidPage)?;
        if number == 0 {
            return Err(ApiError::InvalidPage);
        }
        let (count, users) = store
            .list_users(&filter, (number - 1).saturating_mul(size), size)
            .await?;
        (number, count, users)
    };
    let pages = count.div_ceil(size).max(1);
    if number > pages {
        return Err(ApiError::InvalidPage);
    }
    let link = |n: usize| page_link(ctx, n);
    let body = json!({
        "count": count,
        "next": if number < pages { Some(link(number + 1)) } else { None },
        "previous": if number > 1 { Some(link(number - 1)) } else { None },
        "results": users.iter().map(admin_json).collect::<Vec<_>>(),
    });
    Ok(Response::json(200, &body))
}

/// Users read from the store per page of the bare list (keyset pages by id).
const BARE_LIST_PAGE: usize = 500;

/// The seed's bare list: every matching user, read from the store in pages by id and
/// written into the body as they come, so no more than one page of users is held at once.
async fn bare_list(ctx: &Ctx<'_>, filter: &ListFilter) -> Result<Response, ApiError> {
    let mut body = Vec::from(&b"["[..]);
    let mut after = 0;
    loop {
        let users = ctx
            .app
            .store
            .users_after(filter, after, BARE_LIST_PAGE)
            .await?;
        for user in &users {
            if body.len() > 1 {
                body.push(b',');
            }
            body.extend_from_slice(admin_json(user).to_string().as_bytes());
        }
        match users.last() {
            Some(last) if users.len() == BARE_LIST_PAGE => after = last.id,
            _ => break,
        }
    }
    body.push(b']');
    Ok(Response::json_text(200, body))
}

/// The page link: the same URL with `page` set (or, for page 1, removed).
fn page_link(ctx: &Ctx<'_>, number: usize) -> String {
    let number = (number > 1).then(|| number.to_string());
    link_with(ctx.req, "page", number.as_deref())
}

/// DRF's replace_query_param / remove_query_param on the request's absolute URL: `key` set to
/// `value` (removed when `None`), parameters sorted. The pagination links of every list.
pub(super) fn link_with(req: &Request, key: &str, value: Option<&str>) -> String {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(req.query.as_bytes())
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if let Some(value) = value {
        params.push((key.into(), value.into()));
    }
    params.sort();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let host = if req.host.is_empty() {
        "localhost"
    } else {
        &req.host
    };
    if query.is_empty() {
        format!("http://{host}{}", req.path)
    } else {
        format!("http://{host}{}?{query}", req.path)
    }
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>().map_err(|_| ApiError::NoUser)
}

/// GET /api/auth/admin/users/{id}/
pub async fn detail(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let user = ctx
        .app
        .store
        .get_user(parse_id(id)?)
        .await?
        .ok_or(ApiError::NoUser)?;
    let mfa = accounts::mfa::enabled(ctx.app, user.id).await?.is_some();
    Ok(Response::json(200, &admin_detail_json(&user, mfa)))
}

/// The body of a PATCH of one user, where a form's list is the key repeated (DRF's
/// `QueryDict.getlist`).
struct AccessForm<'a>(&'a Request);

impl Input for AccessForm<'_> {
    fn data(&self) -> Result<Map<String, Value>, ApiError> {
        let req = self.0;
        let mut data = req.data()?;
        if body::is_form(req.content_type.as_deref()) {
            match body::form_list(&req.body, "groups") {
                Some(list) => data.insert("groups".into(), Value::Array(list)),
                None => data.remove("groups"),
            };
        }
        Ok(data)
    }
}

/// PATCH /api/auth/admin/users/{id}/ with any of `username`, `email`, `first_name`,
/// `last_name` (the profile update's rules), `is_staff`, `is_active`, `groups`, and
/// `"mfa": false` (a lost second factor reset); other fields are ignored. Effective on the
/// next request on every path.
pub async fn update(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let form = AccessForm(ctx.req);
    let user = accounts::change_access(ctx.app, &actor(ctx), id, &form).await?;
    let mfa = accounts::mfa::enabled(ctx.app, user.id).await?.is_some();
    Ok(Response::json(200, &admin_detail_json(&user, mfa)))
}

/// PUT or PATCH /api/auth/admin/users/restore/{id}/: active again; tokens issued before the
/// soft delete stay dead (the user logs in again).
pub async fn restore(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let user = accounts::restore(ctx.app, &actor(ctx), parse_id(id)?).await?;
    Ok(Response::json(200, &admin_json(&user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_is_active_combine() {
        assert_eq!(state_filter(None, None), Some(StateFilter::All));
        assert_eq!(
            state_filter(Some("deleted"), None),
            Some(StateFilter::Inactive)
        );
        assert_eq!(
            state_filter(Some("all"), Some("true")),
            Some(StateFilter::Active)
        );
        assert_eq!(state_filter(Some("active"), Some("false")), None);
        assert_eq!(
            state_filter(None, Some("False")),
            Some(StateFilter::Inactive)
        );
    }
}
