//! djoser's password-reset and email-verification views (SPEC §10), rendering the `accounts`
//! link operations: ask for a link by address (204 whether the address is known or not, in
//! the same time), and use one (`uid`, `token`). Nothing here waits for a mail server.

use super::users::actor;
use super::Ctx;
use crate::accounts;
use crate::error::ApiError;
use crate::response::Response;

/// POST /api/auth/password/reset/ {email}
pub async fn reset(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    accounts::request_password_reset(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::no_content())
}

/// POST /api/auth/email/verify/resend/ {email}
pub async fn resend(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    accounts::request_verification(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::no_content())
}

/// POST /api/auth/password/reset/confirm/ {uid, token, new_password}
pub async fn reset_confirm(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    accounts::confirm_password_reset(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::no_content())
}

/// POST /api/auth/email/verify/ {uid, token}
pub async fn verify(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    accounts::verify_email(ctx.app, &actor(ctx), ctx.req).await?;
    Ok(Response::no_content())
}
