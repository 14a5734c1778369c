//! Signing in with a username and a password: the throttle, the password check (the same
//! cost for an unknown user), and the login's record (Django's `last_login`, with a hash
//! upgrade riding along). What proves the sign-in afterwards (a browser session, a refresh
//! family's device record) and its `login.succeeded` event ride on that write as its
//! effects; a token pair is the caller's to issue.

use super::fields::required_value;
use super::{audit, writer, Actor, Input};
use crate::accounts::form::{Fields, REQUIRED};
use crate::app::App;
use crate::clock::now;
use crate::error::ApiError;
use crate::metrics::LOGINS;
use crate::store::{Action, Effects, User};

/// `{username, password}` -> the user as the password was checked against, active (and
/// verified when `require_verified_email`): what is issued for the sign-in carries that
/// state's token version, so a password change that raced it still wins. Unknown user, wrong
/// password, inactive or unverified user alike: the wrong-credentials error, counted against
/// the throttle.
///
/// `proof(&user)` decides what else the sign-in's record write carries: a refresh family's
/// device record for a token pair, a new session for a browser. The write carries the
/// `login.succeeded` event too, so the sign-in fails with it. A refused sign-in is a
/// `login.failed` event on its own, with the reason no answer tells.
pub async fn sign_in(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
    proof: &(dyn Fn(&User) -> Effects + Sync),
) -> Result<User, ApiError> {
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let username = f.char("username", REQUIRED);
    let password = f.char("password", REQUIRED);
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
    // The login time (Django's `last_login`) is recorded: a reset or verification link made
    // before it dies with it. A hash upgrade rides along in the same write.
    let login_at = now();
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
    let proof = proof(&user);
    let via = if proof.sessions.is_empty() {
        "token"
    } else {
        "session"
    };
    let succeeded = actor
        .proven_as(&user)
        .event(Action::LoginSucceeded, Some(user.id))
        .detail("via", via);
    writer::update(
        app,
        user.id,
        &|u| {
            u.last_login = Some(login_at);
            if let Some(hash) = &rehash {
                u.password = hash.clone();
            }
        },
        // A hash upgrade is no password change: no notice.
        &|_, _| proof.clone().with(succeeded.clone()),
    )
    .await?;
    LOGINS.with_label_values(&["success"]).inc();
    Ok(user)
}
