//! Browser sessions over JSON (SPEC §15), for single-page apps: sign in into a session
//! cookie and out of it, the caller's sessions and devices (refresh families), and ending
//! them. The operations are `accounts`' (the pages use the same ones).

use super::users::{actor, profile_json};
use super::Ctx;
use crate::accounts::{self, Which};
use crate::auth::{csrf, Via};
use crate::cookies;
use crate::error::ApiError;
use crate::response::Response;
use serde_json::{json, Value};

/// POST /api/auth/session/ {username, password[, remember]}: 200 with the profile, the
/// session cookie and a fresh CSRF cookie. DELETE: the caller's session ends; 204 with the
/// cookie cleared.
pub async fn session(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let app = ctx.app;
    let web = &app.config.web;
    if app.authenticator.session_cookie().is_none() {
        return Err(ApiError::NotFound);
    }
    if ctx.req.method == "DELETE" {
        if let Some(who) = ctx.identity.as_ref().filter(|w| w.via == Via::Session) {
            if let Some(id) = who.sign_in.as_deref() {
                accounts::end_sessions(app, &actor(ctx), Which::Current(id)).await?;
            }
        }
        return Ok(
            Response::no_content().with_header("Set-Cookie", cookies::clear_session_cookie(web))
        );
    }
    let data = ctx.req.data()?;
    let remember = data.get("remember").is_some_and(|v| match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.as_str(), "true" | "on" | "1"),
        _ => false,
    });
    let (user, started) = accounts::sign_in_session(app, &actor(ctx), ctx.req, remember).await?;
    // The session this client held before ends (Django's login flushes it).
    if let Some(id) = ctx
        .identity
        .as_ref()
        .filter(|w| w.via == Via::Session)
        .and_then(|w| w.sign_in.as_deref())
    {
        accounts::end_sessions(app, &actor(ctx), Which::Current(id)).await?;
    }
    let secret = csrf::new_secret();
    Ok(Response::json(200, &profile_json(&user))
        .with_header(
            "Set-Cookie",
            cookies::session_cookie(web, &started.cookie, started.session.remember),
        )
        .with_header("Set-Cookie", cookies::csrf_cookie(web, &secret)))
}

/// GET /api/auth/sessions/: the caller's browser sessions and refresh families, newest
/// first, the one this request came with marked `current`.
pub async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let me = ctx.caller()?;
    let devices = accounts::devices(ctx.app, me.user_id, me.sign_in.as_deref()).await?;
    let rows: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({"id": d.id, "kind": d.kind.label(), "created": d.created,
                   "last_seen": d.last_seen, "client_ip": d.client_ip,
                   "user_agent": d.user_agent, "current": d.current})
        })
        .collect();
    Ok(Response::json(200, &Value::Array(rows)))
}

/// DELETE /api/auth/sessions/{id}/: one of the caller's sessions or families ends (its
/// access tokens too); 404 when none of theirs has that id.
pub async fn end(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let me = ctx.caller()?;
    if accounts::end_device(ctx.app, &actor(ctx), me.user_id, id).await? {
        Ok(Response::no_content())
    } else {
        Err(ApiError::NotFound)
    }
}

/// POST /api/auth/sessions/revoke-others/: every session and family of the caller but the
/// one this request came with; 200 with how many ended.
pub async fn revoke_others(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let me = ctx.caller()?;
    let keep = me.sign_in.as_deref().unwrap_or("");
    let ended = accounts::end_other_devices(ctx.app, &actor(ctx), me.user_id, keep).await?;
    Ok(Response::json(200, &json!({ "ended": ended })))
}
