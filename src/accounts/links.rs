//! The link mails (djoser's password reset and email verification, SPEC §10): asking for a
//! link by address (the same answer, in the same time, whether the address is known or not)
//! and using one (`uid`, `token`).

use super::fields::{check_new_password, link_email, required_value};
use super::{writer, Actor, Input};
use crate::accounts::form::{Fields, REQUIRED};
use crate::app::App;
use crate::clock::now;
use crate::error::{field, ApiError, STALE_TOKEN};
use crate::mail::tokens::{decode_uid, Purpose};
use crate::store::{name_key, Action, Effects, MailKind, User};
use std::time::{Duration, Instant};

/// A reset link `{email}` for every active user with that address, also one with an
/// unusable password: that is how users imported with a hash gatehouse cannot verify get a
/// password again.
pub async fn request_password_reset(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<(), ApiError> {
    request_link(app, actor, input, MailKind::PasswordReset, |_| true).await
}

/// A verification link `{email}` for an active user whose address is not verified yet.
pub async fn request_verification(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<(), ApiError> {
    request_link(app, actor, input, MailKind::VerifyEmail, |u| {
        !u.email_verified
    })
    .await
}

/// Throttled like login, then the link mail for a known, active address (`wanted` says
/// whether this user gets one), done no sooner than the floor either way, so the outcome
/// and its timing say nothing about the address.
async fn request_link(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
    kind: MailKind,
    wanted: fn(&User) -> bool,
) -> Result<(), ApiError> {
    let started = Instant::now();
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let email = link_email(&mut f);
    f.finish()?;
    let email = required_value(email, "email")?;
    app.throttle
        .mail_request(&email, actor.client_ip, now())
        .await
        .map_err(ApiError::Throttled)?;
    let outcome = queue_link(app, actor, kind, wanted, &email).await;
    let floor = Duration::from_millis(app.config.email.answer_floor_ms);
    if let Some(rest) = floor.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    outcome
}

async fn queue_link(
    app: &App,
    actor: &Actor,
    kind: MailKind,
    wanted: fn(&User) -> bool,
    email: &str,
) -> Result<(), ApiError> {
    let Some(id) = app.store.email_owner(email).await? else {
        return Ok(());
    };
    let Some(user) = app.store.get_user(id).await? else {
        return Ok(());
    };
    // A service account has no password to reset and no address of its own to verify.
    if !user.is_active || user.is_service || !wanted(&user) {
        return Ok(());
    }
    let mail = app.mailer.link_mail(kind, &user, now()).await;
    let mailed = mail.is_some();
    let mut effects = Effects::from(mail.into_iter().collect::<Vec<_>>());
    // A reset asked for a known account is an event (whether the send caps let a mail
    // through or not); a verification link changes nothing worth one.
    if kind == MailKind::PasswordReset {
        effects = effects.with(
            actor
                .event(Action::PasswordResetRequested, Some(user.id))
                .detail("mailed", mailed),
        );
    }
    writer::record(app, effects).await?;
    Ok(())
}

/// `uid` and `token` as djoser checks them: the user first, then the token.
async fn link_user(
    app: &App,
    f: &mut Fields<'_>,
    purpose: Purpose,
) -> Result<Option<User>, ApiError> {
    let uid = f.char("uid", REQUIRED);
    let token = f.char("token", REQUIRED);
    let (Some(uid), Some(token)) = (uid, token) else {
        return Ok(None);
    };
    let user = match decode_uid(&uid) {
        Some(id) => app.store.get_user(id).await?,
        None => None,
    };
    let Some(user) = user.filter(|u| u.is_active && !u.is_service) else {
        f.add("uid", field::INVALID_UID);
        return Ok(None);
    };
    if !app.mailer.tokens.check(purpose, &user, &token, now()) {
        f.add("token", field::INVALID_TOKEN);
        return Ok(None);
    }
    Ok(Some(user))
}

/// A reset `{uid, token, new_password}`: the new password, every earlier token of the user
/// dead (sessions and other links), the address verified (the link reached it), and the
/// "Password Changed" notice.
pub async fn confirm_password_reset(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<User, ApiError> {
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let user = link_user(app, &mut f, Purpose::PasswordReset).await?;
    let new = f.char("new_password", REQUIRED);
    if let (Some(user), Some(new)) = (&user, &new) {
        check_new_password(&mut f, new, user);
    }
    f.finish()?;
    let user = user.ok_or_else(|| ApiError::field("token", field::INVALID_TOKEN))?;
    let new = required_value(new, "new_password")?;
    let hash = app.passwords.hash(&new).await?;
    let expected = user.password.clone();
    let at = now();
    let mailer = &app.mailer;
    let updated = writer::update(
        app,
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
        &|before, after| {
            let effects = Effects::from(mailer.notices(before, after, false, at));
            if before.password == after.password {
                return effects;
            }
            effects.with(actor.event(Action::PasswordResetCompleted, Some(after.id)))
        },
    )
    .await?;
    if updated.password != hash {
        return Err(ApiError::field("token", field::INVALID_TOKEN));
    }
    Ok(updated)
}

/// A verification `{uid, token}`: the address the token was made for is verified; one
/// verified already is djoser's 403 "Stale token".
pub async fn verify_email(app: &App, actor: &Actor, input: &dyn Input) -> Result<User, ApiError> {
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let user = link_user(app, &mut f, Purpose::VerifyEmail).await?;
    f.finish()?;
    let user = user.ok_or_else(|| ApiError::field("token", field::INVALID_TOKEN))?;
    if user.email_verified {
        return Err(ApiError::Forbidden(STALE_TOKEN));
    }
    let email = user.email.clone();
    let updated = writer::update(
        app,
        user.id,
        &|u| {
            // Only the address the token was made for.
            if name_key(&u.email) == name_key(&email) {
                u.email_verified = true;
            }
        },
        &|before, after| {
            if before.email_verified || !after.email_verified {
                return Effects::none();
            }
            actor
                .event(Action::EmailVerified, Some(after.id))
                .detail("email", after.email.as_str())
                .into()
        },
    )
    .await?;
    if !updated.email_verified {
        return Err(ApiError::field("token", field::INVALID_TOKEN));
    }
    Ok(updated)
}
