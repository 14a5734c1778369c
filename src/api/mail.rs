//! djoser's password-reset and email-verification views (SPEC §10): ask for a link by address
//! (204 whether the address is known or not, in the same time), and use one (`uid`, `token`).
//! The mails go into the outbox; nothing here waits for a mail server.

use super::body::{Fields, REQUIRED};
use super::users::{check_new_password, required_value, EMAIL_MAX};
use super::Ctx;
use crate::auth::policy;
use crate::clock::now;
use crate::error::{field, ApiError, STALE_TOKEN};
use crate::mail::tokens::{decode_uid, Purpose};
use crate::response::Response;
use crate::store::{MailKind, User};
use std::time::{Duration, Instant};

/// The `email` of a reset or resend request, checked as djoser's EmailField.
fn email_field(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let data = ctx.req.data()?;
    let mut f = Fields::new(&data);
    let email = f.char("email", REQUIRED);
    if let Some(email) = &email {
        // An over-long address has its own message already.
        if f.max_len("email", email, EMAIL_MAX) && !policy::is_valid_email(email) {
            f.add("email", field::INVALID_EMAIL);
        }
    }
    f.finish()?;
    required_value(email, "email")
}

/// Reset and resend: throttled like login, then the link mail for a known, active address
/// (`wanted` says whether this user gets one), answered 204 no sooner than the floor either
/// way, so the answer and its timing say nothing about the address.
async fn request_link(
    ctx: &Ctx<'_>,
    kind: MailKind,
    wanted: fn(&User) -> bool,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let email = email_field(ctx)?;
    let app = ctx.app;
    app.throttle
        .mail_request(&email, ctx.req.client_ip, now())
        .await
        .map_err(ApiError::Throttled)?;
    let outcome = queue_link(ctx, kind, wanted, &email).await;
    let floor = Duration::from_millis(app.config.email.answer_floor_ms);
    if let Some(rest) = floor.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    outcome?;
    Ok(Response::no_content())
}

async fn queue_link(
    ctx: &Ctx<'_>,
    kind: MailKind,
    wanted: fn(&User) -> bool,
    email: &str,
) -> Result<(), ApiError> {
    let app = ctx.app;
    let Some(id) = app.store.email_owner(email).await? else {
        return Ok(());
    };
    let Some(user) = app.store.get_user(id).await? else {
        return Ok(());
    };
    if !user.is_active || !wanted(&user) {
        return Ok(());
    }
    if let Some(mail) = app.mailer.link_mail(kind, &user).await {
        app.store.enqueue_mail(mail).await?;
        app.mailer.wake.notify_one();
    }
    Ok(())
}

/// POST /api/auth/password/reset/ {email}
pub async fn reset(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    // Every active user, also one with an unusable password: that is how users imported
    // with a hash gatehouse cannot verify get a password again.
    request_link(ctx, MailKind::PasswordReset, |_| true).await
}

/// POST /api/auth/email/verify/resend/ {email}
pub async fn resend(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    request_link(ctx, MailKind::VerifyEmail, |u| !u.email_verified).await
}

/// `uid` and `token` as djoser checks them: the user first, then the token.
async fn link_user(
    ctx: &Ctx<'_>,
    f: &mut Fields<'_>,
    purpose: Purpose,
) -> Result<Option<User>, ApiError> {
    let uid = f.char("uid", REQUIRED);
    let token = f.char("token", REQUIRED);
    let (Some(uid), Some(token)) = (uid, token) else {
        return Ok(None);
    };
    let user = match decode_uid(&uid) {
        Some(id) => ctx.app.store.get_user(id).await?,
        None => None,
    };
    let Some(user) = user.filter(|u| u.is_active) else {
        f.add("uid", field::INVALID_UID);
        return Ok(None);
    };
    if !ctx.app.mailer.tokens.check(purpose, &user, &token, now()) {
        f.add("token", field::INVALID_TOKEN);
        return Ok(None);
    }
    Ok(Some(user))
}

/// POST /api/auth/password/reset/confirm/ {uid, token, new_password}
pub async fn reset_confirm(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let data = ctx.req.data()?;
    let mut f = Fields::new(&data);
    let user = link_user(ctx, &mut f, Purpose::PasswordReset).await?;
    let new = f.char("new_password", REQUIRED);
    if let (Some(user), Some(new)) = (&user, &new) {
        check_new_password(&mut f, new, user);
    }
    f.finish()?;
    let user = user.ok_or_else(|| ApiError::field("token", field::INVALID_TOKEN))?;
    let new = required_value(new, "new_password")?;
    let app = ctx.app;
    let hash = app.passwords.hash(&new).await?;
    let expected = user.password.clone();
    let mailer = &app.mailer;
    let updated = app
        .store
        .update_user_with_mail(
            user.id,
            &|u| {
                // A concurrent reset with the same token already changed it: leave it be.
                if u.password != expected {
                    return;
                }
                u.password = hash.clone();
                // Every token of the user dies: sessions (JWTs) and other links.
                u.token_version += 1;
                // The link reached this address: it is the user's.
                u.email_verified = true;
            },
            &|before, after| mailer.notices(before, after),
        )
        .await?;
    if updated.password != hash {
        return Err(ApiError::field("token", field::INVALID_TOKEN));
    }
    app.cache.updated(&updated);
    mailer.wake.notify_one();
    Ok(Response::no_content())
}

/// POST /api/auth/email/verify/ {uid, token}
pub async fn verify(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let data = ctx.req.data()?;
    let mut f = Fields::new(&data);
    let user = link_user(ctx, &mut f, Purpose::VerifyEmail).await?;
    f.finish()?;
    let user = user.ok_or_else(|| ApiError::field("token", field::INVALID_TOKEN))?;
    if user.email_verified {
        return Err(ApiError::Forbidden(STALE_TOKEN));
    }
    let email = user.email.clone();
    let updated = ctx
        .app
        .store
        .update_user(user.id, &|u| {
            // Only the address the token was made for.
            if crate::store::name_key(&u.email) == crate::store::name_key(&email) {
                u.email_verified = true;
            }
        })
        .await?;
    if !updated.email_verified {
        return Err(ApiError::field("token", field::INVALID_TOKEN));
    }
    ctx.app.cache.updated(&updated);
    Ok(Response::no_content())
}
