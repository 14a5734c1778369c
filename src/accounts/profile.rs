//! A signed-in user's changes to their own account: the profile (names and address), the
//! password, and the soft delete.

use super::fields::{
    self, check_new_password, name_field, required_value, FULL_UPDATE, PARTIAL_UPDATE,
};
use super::{writer, Actor, Input};
use crate::accounts::form::{Fields, REQUIRED};
use crate::app::App;
use crate::clock::now;
use crate::error::{field, ApiError};
use crate::store::{name_key, Action, Effects, User};

/// The actor's own record (a read; the profile page shows it); gone (deleted under a valid
/// token) is simplejwt's 401.
pub async fn own_record(app: &App, actor: &Actor) -> Result<User, ApiError> {
    app.store
        .get_user(actor.user_id()?)
        .await?
        .ok_or(ApiError::UserNotFound)
}

/// A profile update: PUT (`partial` off: username required; a missing email, first or last
/// name is kept) or PATCH (any of them). A new address is unverified; the old one gets a
/// notice, the new one a verification mail when `verify_on_register`.
pub async fn update_profile(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
    partial: bool,
) -> Result<User, ApiError> {
    let me = actor.user_id()?;
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let rules = if partial { PARTIAL_UPDATE } else { FULL_UPDATE };
    let names = fields::names(app.store.as_ref(), &mut f, rules, Some(me)).await?;
    let first_name = name_field(&mut f, "first_name");
    let last_name = name_field(&mut f, "last_name");
    f.finish()?;
    let at = now();
    // The cap is counted here, once, not in the store's (retryable) transaction.
    let verify = match (&names.email, names.new_address) {
        (Some(email), true) => app.mailer.verification_permit(email).await,
        _ => false,
    };
    let mailer = &app.mailer;
    let user = writer::update(
        app,
        me,
        &|u| {
            if let Some(v) = &names.username {
                u.username = v.clone();
            }
            if let Some(v) = &names.email {
                if name_key(v) != name_key(&u.email) {
                    // A new address is not verified yet.
                    u.email_verified = false;
                }
                u.email = v.clone();
            }
            if let Some(v) = &first_name {
                u.first_name = v.clone();
            }
            if let Some(v) = &last_name {
                u.last_name = v.clone();
            }
        },
        // The notice to the old address (and a verification mail to the new one), and the
        // event of a new address.
        &|before, after| {
            let effects = Effects::from(mailer.notices(before, after, verify, at));
            if before.email == after.email {
                return effects;
            }
            effects.with(
                actor
                    .event(Action::EmailChanged, Some(after.id))
                    .detail("before", serde_json::json!({"email": before.email}))
                    .detail("after", serde_json::json!({"email": after.email})),
            )
        },
    )
    .await?;
    Ok(user)
}

/// A password change `{old_password | current_password, new_password}`: every token issued
/// before it dies, and the seed's "Password Changed" notice goes out.
///
/// DRF's order: every field error first (a missing field, then the new password's policy),
/// all listed together; the old password (an object-level check) only once they all pass.
pub async fn change_password(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
) -> Result<User, ApiError> {
    let user = own_record(app, actor).await?;
    let data = input.data()?;
    let mut f = Fields::new(&data);
    // The README says old_password, the seed's code current_password: accept either.
    let old_field = if !f.has("old_password") && f.has("current_password") {
        "current_password"
    } else {
        "old_password"
    };
    let old = f.char(old_field, REQUIRED);
    let new = f.char("new_password", REQUIRED);
    if let Some(new) = &new {
        check_new_password(&mut f, new, &user);
    }
    f.finish()?;
    let (old, new) = (
        required_value(old, old_field)?,
        required_value(new, "new_password")?,
    );
    if !app.passwords.verify(&old, Some(&user.password)).await?.ok {
        return Err(ApiError::field(old_field, field::WRONG_PASSWORD));
    }
    let hash = app.passwords.hash(&new).await?;
    let at = now();
    let mailer = &app.mailer;
    let user = writer::update(
        app,
        user.id,
        &|u| {
            u.password = hash.clone();
            // Every token issued before this moment dies.
            u.token_version += 1;
        },
        // The seed's "Password Changed" notice.
        &|before, after| {
            Effects::from(mailer.notices(before, after, false, at))
                .with(actor.event(Action::PasswordChanged, Some(after.id)))
        },
    )
    .await?;
    Ok(user)
}

/// The soft delete: deactivated, every token dead; the row and the name are kept.
pub async fn soft_delete(app: &App, actor: &Actor) -> Result<User, ApiError> {
    let me = actor.user_id()?;
    let when = now();
    let user = writer::update(
        app,
        me,
        &|u| {
            u.is_active = false;
            u.deleted_at = Some(when);
            u.token_version += 1;
        },
        &|_, after| actor.event(Action::UserDeleted, Some(after.id)).into(),
    )
    .await?;
    Ok(user)
}
