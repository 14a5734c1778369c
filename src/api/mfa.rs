//! The second factor over JSON (SPEC §17): enrolment, its confirmation with the recovery
//! codes, new recovery codes, turning it off. The operations are `accounts::mfa`'s (the
//! account page uses the same ones).

use super::users::actor;
use super::Ctx;
use crate::accounts;
use crate::error::ApiError;
use crate::response::Response;
use serde_json::json;

/// POST /api/auth/2fa/totp/: a pending secret, `{secret, otpauth_uri, qr_svg}`.
pub async fn enrol(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let e = accounts::mfa::start_enrolment(ctx.app, &actor(ctx)).await?;
    Ok(Response::json(
        200,
        &json!({"secret": e.secret, "otpauth_uri": e.otpauth_uri, "qr_svg": e.qr_svg}),
    ))
}

/// POST /api/auth/2fa/totp/confirm/ {code}: on, with the recovery codes (shown once).
pub async fn confirm(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let codes = accounts::mfa::confirm_enrolment(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::json(200, &json!({ "recovery_codes": codes })))
}

/// POST /api/auth/2fa/recovery-codes/ {code}: a new set (shown once); the old set dies.
pub async fn recovery_codes(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let codes = accounts::mfa::renew_recovery_codes(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::json(200, &json!({ "recovery_codes": codes })))
}

/// DELETE /api/auth/2fa/totp/ {password, code}: off; every session and token of the user
/// ends (204).
pub async fn disable(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    accounts::mfa::disable(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::no_content())
}
