//! The seed's account views: register, profile (read, update), password change, soft delete,
//! each rendering an `accounts` operation's outcome as DRF's JSON; and the JSON renderings of
//! a user the other views share.

use super::{Ctx, Request};
use crate::accounts::{self, Actor, Input};
use crate::auth::Via;
use crate::error::ApiError;
use crate::response::Response;
use crate::store::User;
use serde_json::{json, Map, Value};

const PASSWORD_UPDATED: &str = "Password updated successfully.";
const SOFT_DELETED: &str = "Account soft deleted successfully.";

pub fn profile_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email,
           "first_name": u.first_name, "last_name": u.last_name})
}

pub fn admin_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email,
           "first_name": u.first_name, "last_name": u.last_name, "is_active": u.is_active,
           "email_verified": u.email_verified})
}

/// One user as the admin detail shows it: the list's fields, staff, the groups (sorted),
/// whether a second factor is on (`mfa`) and whether it is a service account (SPEC §19).
pub fn admin_detail_json(u: &User, mfa: bool) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email,
           "first_name": u.first_name, "last_name": u.last_name, "is_active": u.is_active,
           "email_verified": u.email_verified, "is_staff": u.is_staff, "groups": u.groups,
           "mfa": mfa, "is_service": u.is_service})
}

/// The body, read when the operation gets to it (DRF's `request.data`).
impl Input for Request {
    fn data(&self) -> Result<Map<String, Value>, ApiError> {
        Request::data(self)
    }
}

/// Who makes the request: the authenticated caller, or nobody, from the client's address,
/// with the request's id and user agent.
pub(super) fn actor(ctx: &Ctx<'_>) -> Actor {
    let req = ctx.req;
    Actor::of_request(
        ctx.caller().ok(),
        req.client_ip,
        &req.request_id,
        req.user_agent(),
    )
}

/// POST /api/auth/register/
pub async fn register(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let user = accounts::register(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::json(201, &profile_json(&user)))
}

/// GET /api/auth/profile/
pub async fn profile(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let user = accounts::own_record(ctx.app, &actor(ctx)).await?;
    Ok(Response::json(200, &profile_json(&user)))
}

/// PUT (username required; a missing email, first or last name is kept) or PATCH (partial)
/// /api/auth/profile/
pub async fn update_profile(ctx: &Ctx<'_>, partial: bool) -> Result<Response, ApiError> {
    let user = accounts::update_profile(ctx.app, &actor(ctx), ctx.req, partial).await?;
    Ok(Response::json(200, &profile_json(&user)))
}

/// PUT or PATCH /api/auth/profile/password/ {old_password | current_password, new_password}:
/// a fresh pair comes back (every earlier token died).
pub async fn change_password(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let app = ctx.app;
    // The session that changes its own password lives on in a new one (Django's
    // `update_session_auth_hash`); read before the change ends it.
    let previous = match ctx.identity.as_ref().filter(|w| w.via == Via::Session) {
        Some(who) => match who.sign_in.as_deref() {
            Some(id) => app.store.get_session(id).await?,
            None => None,
        },
        None => None,
    };
    let me = actor(ctx);
    let user = accounts::change_password(app, &me, ctx.req).await?;
    // The new pair says what the caller's sign-in proved (a second factor stays proven).
    let mfa = ctx.identity.as_ref().is_some_and(|w| w.mfa);
    let (access, refresh) = app.issue_pair_in(&user, &crate::ids::new_id(), mfa)?;
    let mut resp = Response::json(
        200,
        &json!({"detail": PASSWORD_UPDATED, "access": access, "refresh": refresh}),
    );
    if let Some(previous) = previous {
        let started = accounts::renew_session(app, &me, &user, Some(&previous)).await?;
        resp.add_header(
            "Set-Cookie",
            crate::cookies::session_cookie(&app.config.web, &started.cookie, previous.remember),
        );
    }
    Ok(resp)
}

/// DELETE /api/auth/profile/delete/: deactivate, keep the row and the name.
pub async fn soft_delete(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    accounts::soft_delete(ctx.app, &actor(ctx)).await?;
    Ok(Response::json(200, &json!({ "message": SOFT_DELETED })))
}
