//! Signing in with a username and a password: the throttle, the password check (the same
//! cost for an unknown user), the second factor when the user has one (SPEC §17), and the
//! login's record (Django's `last_login`, with a hash
//! upgrade riding along). What proves the sign-in afterwards (a browser session, a refresh
//! family's device record) and its `login.succeeded` event ride on that write as its
//! effects; a token pair is the caller's to issue.

use super::fields::required_value;
use super::{audit, mfa, writer, Actor, Input};
use crate::accounts::form::{Fields, OPTIONAL_BLANK_OK, REQUIRED};
use crate::app::App;
use crate::clock::now;
use crate::error::ApiError;
use crate::metrics::LOGINS;
use crate::store::{Action, Effects, User};

/// What a sign-in asks of the second factor, when the user has one (SPEC §17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// The code comes with the password (`otp`): without it, `otp_required`.
    WithPassword,
    /// A browser: the code comes on a second page. Without one, the sign-in stops at
    /// `SignedIn::NeedsCode` and nothing is recorded yet.
    SecondPage,
}

/// How far a sign-in got.
#[derive(Debug, Clone)]
pub enum SignedIn {
    /// Recorded, with what `proof` decided; `mfa`: a second factor was part of it.
    Done { user: User, mfa: bool },
    /// The password was right; the user's second factor is still to come (a browser).
    NeedsCode(User),
}

/// `{username, password[, otp]}` -> the user as the password was checked against, active
/// (and verified when `require_verified_email`): what is issued for the sign-in carries that
/// state's token version, so a password change that raced it still wins. Unknown user, wrong
/// password, inactive, unverified user or service account alike: the wrong-credentials error, counted against
/// the throttle. A user with a second factor also needs a code (or a recovery code): missing,
/// `otp_required`; wrong, `otp_invalid`, counted as a failed sign-in as well.
///
/// `proof(&user, mfa)` decides what else the sign-in's record write carries: a refresh
/// family's device record for a token pair, a new session for a browser. The write carries
/// the `login.succeeded` event too, so the sign-in fails with it. A refused sign-in is a
/// `login.failed` event on its own, with the reason no answer tells.
pub async fn sign_in(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
    second: SecondFactor,
    proof: &(dyn Fn(&User, bool) -> Effects + Sync),
) -> Result<SignedIn, ApiError> {
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let username = f.char("username", REQUIRED);
    let password = f.char("password", REQUIRED);
    let otp = f.char("otp", OPTIONAL_BLANK_OK);
    f.finish()?;
    let username = required_value(username, "username")?;
    let password = required_value(password, "password")?;
    let client = actor.client_ip;
    if let Err(wait) = app.throttle.check_login(&username, client, now()).await {
        LOGINS.with_label_values(&["throttled"]).inc();
        return Err(ApiError::Throttled(wait));
    }
    let user = app.store.find_by_username(&username).await?;
    let check = app
        .passwords
        .verify(&password, user.as_ref().map(|u| u.password.as_str()))
        .await?;
    let verified_enough = |u: &User| u.email_verified || !app.config.email.require_verified_email;
    let refused = match &user {
        None => Some("bad_credentials"),
        Some(_) if !check.ok => Some("bad_credentials"),
        // A service account has no password that could match; this holds even if one were
        // set behind gatehouse's back (SPEC §19: keys only).
        Some(u) if u.is_service => Some("service_account"),
        Some(u) if !u.is_active => Some("inactive"),
        Some(u) if !verified_enough(u) => Some("unverified"),
        Some(_) => None,
    };
    let user = match (user, refused) {
        (Some(u), None) => u,
        (user, reason) => {
            LOGINS.with_label_values(&["failure"]).inc();
            app.throttle.login_failed(&username, client, now()).await;
            let mut failed = actor
                .event(Action::LoginFailed, user.as_ref().map(|u| u.id))
                .detail("reason", reason.unwrap_or("bad_credentials"));
            // The account's name, never what was typed: a name that matches nobody may be a
            // password typed into the wrong field.
            if let Some(u) = &user {
                failed = failed.detail("username", u.username.as_str());
            }
            audit::record_alone(app, failed).await;
            return Err(ApiError::WrongCredentials);
        }
    };
    let rehash = if check.needs_rehash {
        match app.passwords.hash(&password).await {
            Ok(hash) => Some(hash),
            Err(e) => {
                log::warn!(
                    "login: the password of user {} stays on its old hash: {e}",
                    user.id
                );
                None
            }
        }
    } else {
        None
    };
    let mfa = if mfa::enabled(app, user.id).await?.is_some() {
        match (otp.filter(|c| !c.is_empty()), second) {
            (None, SecondFactor::SecondPage) => {
                // The hash upgrade needs the password, which the second page does not have:
                // it is written now (it is no sign-in).
                if let Some(hash) = rehash {
                    writer::update(app, user.id, &|u| u.password.clone_from(&hash), &|_, _| {
                        Effects::none()
                    })
                    .await?;
                }
                return Ok(SignedIn::NeedsCode(user));
            }
            (None, SecondFactor::WithPassword) => {
                LOGINS.with_label_values(&["failure"]).inc();
                mfa::refused(app, actor, &user, "otp_required").await;
                return Err(ApiError::OtpRequired);
            }
            (Some(code), _) => {
                code_step(app, actor, &user, &code, &|_| {}).await?;
                true
            }
        }
    } else {
        false
    };
    let user = record(app, actor, user, rehash, mfa, &|_| {}, proof).await?;
    Ok(SignedIn::Done { user, mfa })
}

/// The second step of `user`'s sign-in with `code`: a refusal is a failed sign-in (the
/// throttle, the metric, the event) as a wrong password is.
pub(super) async fn code_step(
    app: &App,
    actor: &Actor,
    user: &User,
    code: &str,
    on_success: &(dyn Fn(&mut crate::store::Mfa) + Sync),
) -> Result<mfa::Passed, ApiError> {
    match mfa::second_step(app, actor, user, code, on_success, Effects::none()).await {
        Ok(passed) => Ok(passed),
        Err(e) => {
            if matches!(e, ApiError::OtpInvalid) {
                LOGINS.with_label_values(&["failure"]).inc();
                app.throttle
                    .login_failed(&user.username, actor.client_ip, now())
                    .await;
                mfa::refused(app, actor, user, "otp_invalid").await;
            } else if matches!(e, ApiError::Throttled(_)) {
                LOGINS.with_label_values(&["throttled"]).inc();
            }
            Err(e)
        }
    }
}

/// The sign-in's record: the login time (Django's `last_login`, which kills reset and
/// verification links made before it), a hash upgrade riding along, and what `proof`
/// decides, with the `login.succeeded` event; `also` changes the user record besides.
pub(super) async fn record(
    app: &App,
    actor: &Actor,
    user: User,
    rehash: Option<String>,
    mfa: bool,
    also: &(dyn Fn(&mut User) + Sync),
    proof: &(dyn Fn(&User, bool) -> Effects + Sync),
) -> Result<User, ApiError> {
    let login_at = now();
    let proof = proof(&user, mfa);
    let via = if proof.sessions.is_empty() {
        "token"
    } else {
        "session"
    };
    let succeeded = actor
        .proven_as(&user)
        .event(Action::LoginSucceeded, Some(user.id))
        .detail("via", via)
        .detail("mfa", mfa);
    writer::update(
        app,
        user.id,
        &|u| {
            u.last_login = Some(login_at);
            if let Some(hash) = &rehash {
                u.password = hash.clone();
            }
            also(u);
        },
        // A hash upgrade is no password change: no notice.
        &|_, _| proof.clone().with(succeeded.clone()),
    )
    .await?;
    LOGINS.with_label_values(&["success"]).inc();
    Ok(user)
}
