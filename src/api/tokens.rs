//! simplejwt's views: obtain a pair (after `accounts::sign_in`), refresh (with optional
//! rotation and reuse detection), verify, and logout (the blacklist).

use super::users::actor;
use super::Ctx;
use crate::accounts::form::{Fields, REQUIRED};
use crate::accounts::{self, required_value, Actor};
use crate::app::App;
use crate::auth::families::{self, Presented, Step};
use crate::auth::tokens::{TokenError, TokenType, Verified};
use crate::clock::now;
use crate::error::{ApiError, BLACKLISTED};
use crate::ids::new_id;
use crate::response::Response;
use crate::store::{Action, StoreError, User, MAX_SWAP_ATTEMPTS};
use serde_json::json;

/// POST /api/token/ {username, password[, otp]}
pub async fn obtain(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let (user, family, mfa) = accounts::sign_in_app(ctx.app, &actor(ctx), ctx.req).await?;
    let (access, refresh) = ctx.app.issue_pair_in(&user, &family, mfa)?;
    Ok(Response::json(
        200,
        &json!({ "refresh": refresh, "access": access }),
    ))
}

/// A refresh token's checks shared by refresh and logout: signature and type, then the
/// user's current state.
async fn check_refresh(ctx: &Ctx<'_>, token: &str) -> Result<(Verified, User), ApiError> {
    let claims = ctx
        .app
        .tokens
        .verify(token, Some(TokenType::Refresh))
        .map_err(|e| match e {
            TokenError::NoUserId => ApiError::InvalidToken(TokenError::Invalid.message()),
            other => ApiError::InvalidToken(other.message()),
        })?;
    let user = match ctx.app.store.get_user(claims.user_id).await? {
        Some(u) if u.is_active => u,
        _ => return Err(ApiError::NoActiveAccountForToken),
    };
    if user.token_version != claims.version {
        return Err(ApiError::InvalidToken(BLACKLISTED));
    }
    Ok((claims, user))
}

fn required_token(ctx: &Ctx<'_>, name: &str) -> Result<String, ApiError> {
    let data = ctx.req.data()?;
    let mut f = Fields::new(&data);
    let token = f.char(name, REQUIRED);
    f.finish()?;
    required_value(token, name)
}

/// POST /api/token/refresh/ {refresh}
pub async fn refresh(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let token = required_token(ctx, "refresh")?;
    let (claims, user) = check_refresh(ctx, &token).await?;
    let app = ctx.app;
    let family = family_of(&claims)?;
    let access = app
        .tokens
        .issue(
            TokenType::Access,
            user.id,
            user.token_version,
            claims.mfa,
            Some(&family),
            None,
        )?
        .token;
    if !app.config.jwt.rotate_refresh_tokens {
        if app
            .store
            .get_family(&family)
            .await?
            .is_some_and(|f| f.revoked)
        {
            return Err(ApiError::InvalidToken(BLACKLISTED));
        }
        return Ok(Response::json(200, &json!({ "access": access })));
    }
    let presented = Presented {
        family: &family,
        jti: &claims.jti,
        user_id: user.id,
    };
    let issue = rotate_family(app, &actor(ctx).proven_as(&user), &family, &presented).await?;
    let refresh = app
        .tokens
        .issue(
            TokenType::Refresh,
            user.id,
            user.token_version,
            claims.mfa,
            Some(&family),
            Some(&issue),
        )?
        .token;
    Ok(Response::json(
        200,
        &json!({ "access": access, "refresh": refresh }),
    ))
}

/// The family a verified refresh token belongs to (every refresh token names one).
fn family_of(claims: &Verified) -> Result<String, ApiError> {
    claims
        .family
        .clone()
        .ok_or(ApiError::InvalidToken(TokenError::Invalid.message()))
}

/// One rotation of `family` for the presented token: the jti to issue next. Retried while
/// concurrent refreshes of the same family win the compare-and-swap.
async fn rotate_family(
    app: &App,
    actor: &Actor,
    family: &str,
    presented: &Presented<'_>,
) -> Result<String, ApiError> {
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let record = app.store.get_family(family).await?;
        let step = families::rotate(
            record.as_ref(),
            presented,
            now(),
            app.config.jwt.reuse_grace_seconds,
            new_id(),
            now() + app.tokens.refresh_lifetime,
        );
        let (new, outcome) = match step {
            Step::Blacklisted => return Err(ApiError::InvalidToken(BLACKLISTED)),
            Step::Replay { issue } => return Ok(issue),
            Step::Rotate { record: new, issue } => (new, Ok(issue)),
            Step::Revoke { record: new } => (new, Err(ApiError::InvalidToken(BLACKLISTED))),
        };
        if app.store.swap_family(family, record.as_ref(), &new).await? {
            if outcome.is_err() {
                // The family's revocation and its event are two writes: a family record
                // carries no effects. It happens once per family (then it is blacklisted).
                let event = actor.event(Action::TokenReuseDetected, Some(presented.user_id));
                if let Err(e) = accounts::record_event(app, event).await {
                    log::warn!("audit: a token.reuse_detected event was not written: {e}");
                }
            }
            return outcome;
        }
    }
    Err(StoreError::Conflict.into())
}

/// POST /api/token/verify/ {token}: valid signature, unexpired, and not revoked.
pub async fn verify(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let token = required_token(ctx, "token")?;
    let invalid = ApiError::InvalidToken(TokenError::Invalid.message());
    let claims = ctx.app.tokens.verify(&token, None).map_err(|e| match e {
        TokenError::Expired => ApiError::InvalidToken(TokenError::Expired.message()),
        _ => invalid.clone(),
    })?;
    let live = ctx
        .app
        .store
        .get_user(claims.user_id)
        .await?
        .is_some_and(|u| u.is_active && u.token_version == claims.version);
    if !live {
        return Err(invalid);
    }
    if let Some(family) = &claims.family {
        if ctx
            .app
            .store
            .get_family(family)
            .await?
            .is_some_and(|f| f.revoked)
        {
            return Err(invalid);
        }
    }
    Ok(Response::json(200, &json!({})))
}

/// POST /api/auth/logout/ {refresh}: the token's whole family stops working.
pub async fn logout(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let token = required_token(ctx, "refresh")?;
    let (claims, user) = check_refresh(ctx, &token).await?;
    let family = family_of(&claims)?;
    accounts::end_family(
        ctx.app,
        &actor(ctx).proven_as(&user),
        Action::Logout,
        user.id,
        &family,
        claims.exp,
    )
    .await?;
    Ok(Response::json(200, &json!({})))
}
