//! API keys and service accounts over JSON (SPEC §19): the caller's keys (make, list,
//! revoke) and staff's (a user's keys, service accounts). The operations are
//! `accounts::keys`'; the key is in the creation's answer only.

use super::users::{actor, admin_json};
use super::Ctx;
use crate::accounts::keys::{self, key_json, MadeKey};
use crate::error::ApiError;
use crate::response::Response;
use serde_json::Value;

/// A made key: its record and, this once, the key.
fn made_json(made: &MadeKey) -> Value {
    let mut body = key_json(&made.record);
    if let Value::Object(fields) = &mut body {
        fields.insert("key".into(), Value::String(made.key.clone()));
    }
    body
}

fn list_json(list: &[crate::store::ApiKey]) -> Value {
    Value::Array(list.iter().map(key_json).collect())
}

/// GET /api/auth/keys/: the caller's keys, newest first, without the keys. POST {name,
/// expires_at, password, otp?, groups?, routes?, staff?}: 201 with the key, shown once.
pub async fn own(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    if ctx.req.method == "POST" {
        let made = keys::make_own_key(ctx.app, &actor(ctx), ctx.req).await?;
        return Ok(Response::json(201, &made_json(&made)));
    }
    let list = keys::own_keys(ctx.app, &actor(ctx)).await?;
    Ok(Response::json(200, &list_json(&list)))
}

/// DELETE /api/auth/keys/{id}/: 204, revoked at once; 404 when none of the caller's keys
/// has that id.
pub async fn revoke(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    if keys::revoke_own_key(ctx.app, &actor(ctx), id).await? {
        Ok(Response::no_content())
    } else {
        Err(ApiError::NotFound)
    }
}

/// GET /api/auth/admin/users/{id}/keys/: the user's keys. POST: staff make one for the
/// user (a service account, usually) with their own password (and code).
pub async fn admin_user(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let id = id.parse::<u64>().map_err(|_| ApiError::NoUser)?;
    if ctx.req.method == "POST" {
        let made = keys::admin_make_key(ctx.app, &actor(ctx), id, ctx.req).await?;
        return Ok(Response::json(201, &made_json(&made)));
    }
    let list = keys::user_keys(ctx.app, &actor(ctx), id).await?;
    Ok(Response::json(200, &list_json(&list)))
}

/// POST /api/auth/admin/service-accounts/ {username, email?}: 201 with the account.
pub async fn service_account(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let user = keys::make_service_account(ctx.app, &actor(ctx), ctx.req).await?;
    let mut body = admin_json(&user);
    if let Value::Object(fields) = &mut body {
        fields.insert("is_staff".into(), Value::Bool(user.is_staff));
        fields.insert("is_service".into(), Value::Bool(user.is_service));
    }
    Ok(Response::json(201, &body))
}
