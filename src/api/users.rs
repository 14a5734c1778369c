//! The seed's account views: register, profile (read, update), password change, soft delete;
//! and the field rules for usernames and emails they share.

use super::body::{CharRules, Fields, OPTIONAL, OPTIONAL_BLANK_OK, REQUIRED};
use super::Ctx;
use crate::auth::policy::{self, UserAttributes};
use crate::clock::now;
use crate::error::{field, ApiError};
use crate::response::Response;
use crate::store::{NewUser, StoreError, User, UserStore};
use serde_json::{json, Map, Value};

pub const USERNAME_MAX: usize = 150;
pub const EMAIL_MAX: usize = 254;
pub const NAME_MAX: usize = 150;
const PASSWORD_UPDATED: &str = "Password updated successfully.";
const SOFT_DELETED: &str = "Account soft deleted successfully.";

pub fn profile_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email,
           "first_name": u.first_name, "last_name": u.last_name})
}

pub fn admin_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email,
           "first_name": u.first_name, "last_name": u.last_name, "is_active": u.is_active,
           "email_verified": u.email_verified})
}

/// One user as the admin detail shows it: the list's fields, staff and the groups (sorted).
pub fn admin_detail_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email,
           "first_name": u.first_name, "last_name": u.last_name, "is_active": u.is_active,
           "email_verified": u.email_verified, "is_staff": u.is_staff, "groups": u.groups})
}

/// Which of username and email a request must carry: register both, a profile PUT the
/// username only (the seed's serializer: a missing email is kept), a PATCH neither.
#[derive(Debug, Clone, Copy)]
struct IdentityRules {
    username: CharRules,
    email: CharRules,
}

const REGISTER: IdentityRules = IdentityRules {
    username: REQUIRED,
    email: REQUIRED,
};
const FULL_UPDATE: IdentityRules = IdentityRules {
    username: REQUIRED,
    email: OPTIONAL,
};
const PARTIAL_UPDATE: IdentityRules = IdentityRules {
    username: OPTIONAL,
    email: OPTIONAL,
};

/// Username and email checks in DRF's validator order; `me` is the user being updated (a
/// name they already hold is not "taken").
async fn identity_fields(
    store: &dyn UserStore,
    f: &mut Fields<'_>,
    rules: IdentityRules,
    me: Option<u64>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let username = f.char("username", rules.username);
    if let Some(name) = &username {
        if !policy::is_valid_username(name) {
            f.add("username", field::INVALID_USERNAME);
        }
        if store
            .find_by_username(name)
            .await?
            .is_some_and(|u| Some(u.id) != me)
        {
            f.add("username", field::USERNAME_TAKEN);
        }
        f.max_len("username", name, USERNAME_MAX);
    }
    let email = f.char("email", rules.email);
    if let Some(email) = &email {
        if store
            .email_owner(email)
            .await?
            .is_some_and(|id| Some(id) != me)
        {
            f.add("email", field::EMAIL_TAKEN);
        }
        f.max_len("email", email, EMAIL_MAX);
        if !policy::is_valid_email(email) {
            f.add("email", field::INVALID_EMAIL);
        }
    }
    let username = username.filter(|_| !f.failed("username"));
    let email = email.filter(|_| !f.failed("email"));
    Ok((username, email))
}

fn name_field(f: &mut Fields<'_>, name: &str) -> Option<String> {
    let value = f.char(name, OPTIONAL_BLANK_OK)?;
    f.max_len(name, &value, NAME_MAX).then_some(value)
}

/// A race lost between the availability check and the write.
fn taken(e: StoreError) -> ApiError {
    match e {
        StoreError::UsernameTaken => ApiError::field("username", field::USERNAME_TAKEN),
        StoreError::EmailTaken => ApiError::field("email", field::EMAIL_TAKEN),
        other => other.into(),
    }
}

/// What a valid registration supplies.
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
}

/// The value of a field the validation required; its absence is that field's error (so a
/// 400 always names what is wrong).
/// Adds the password policy's complaints about `new` for `user` to `new_password` (the
/// validators see the user's own name and address, as Django's do).
pub(super) fn check_new_password(f: &mut Fields<'_>, new: &str, user: &User) {
    let attrs = UserAttributes {
        username: &user.username,
        first_name: &user.first_name,
        last_name: &user.last_name,
        email: &user.email,
    };
    for message in policy::validate_password(new, &attrs) {
        f.add("new_password", message);
    }
}

pub fn required_value<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::field(name, field::REQUIRED))
}

/// Register's field validation in DRF's order, shared with `createsuperuser`. With
/// `check_password` off the password policy is skipped (createsuperuser's bypass).
pub async fn validate_registration(
    store: &dyn UserStore,
    data: &Map<String, Value>,
    check_password: bool,
) -> Result<Registration, ApiError> {
    let mut f = Fields::new(data);
    let (username, email) = identity_fields(store, &mut f, REGISTER, None).await?;
    let password = f.char("password", REQUIRED);
    let first_name = name_field(&mut f, "first_name").unwrap_or_default();
    let last_name = name_field(&mut f, "last_name").unwrap_or_default();
    if let (Some(pw), true) = (&password, check_password) {
        let attrs = UserAttributes {
            username: username.as_deref().unwrap_or(""),
            first_name: &first_name,
            last_name: &last_name,
            email: email.as_deref().unwrap_or(""),
        };
        for message in policy::validate_password(pw, &attrs) {
            f.add("password", message);
        }
    }
    f.finish()?;
    Ok(Registration {
        username: required_value(username, "username")?,
        email: required_value(email, "email")?,
        password: required_value(password, "password")?,
        first_name,
        last_name,
    })
}

/// POST /api/auth/register/
pub async fn register(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    ctx.app
        .throttle
        .registration(ctx.req.client_ip, now())
        .await
        .map_err(ApiError::Throttled)?;
    let data = ctx.req.data()?;
    let Registration {
        username,
        email,
        password,
        first_name,
        last_name,
    } = validate_registration(ctx.app.store.as_ref(), &data, true).await?;
    let hash = ctx.app.passwords.hash(&password).await?;
    let mailer = &ctx.app.mailer;
    let user = ctx
        .app
        .store
        .create_user_with_mail(
            NewUser {
                username,
                email,
                first_name,
                last_name,
                password: hash,
                is_staff: false,
                date_joined: now(),
            },
            &|created| mailer.on_register(created),
        )
        .await
        .map_err(taken)?;
    mailer.wake.notify_one();
    Ok(Response::json(201, &profile_json(&user)))
}

async fn current_user(ctx: &Ctx<'_>) -> Result<User, ApiError> {
    let me = ctx.caller()?;
    ctx.app
        .store
        .get_user(me.user_id)
        .await?
        .ok_or(ApiError::UserNotFound)
}

/// GET /api/auth/profile/
pub async fn profile(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    Ok(Response::json(
        200,
        &profile_json(&current_user(ctx).await?),
    ))
}

/// PUT (username required; a missing email, first or last name is kept) or PATCH (partial)
/// /api/auth/profile/
pub async fn update_profile(ctx: &Ctx<'_>, partial: bool) -> Result<Response, ApiError> {
    let me = ctx.caller()?.user_id;
    let data = ctx.req.data()?;
    let mut f = Fields::new(&data);
    let rules = if partial { PARTIAL_UPDATE } else { FULL_UPDATE };
    let (username, email) =
        identity_fields(ctx.app.store.as_ref(), &mut f, rules, Some(me)).await?;
    let first_name = name_field(&mut f, "first_name");
    let last_name = name_field(&mut f, "last_name");
    f.finish()?;
    let mailer = &ctx.app.mailer;
    let user = ctx
        .app
        .store
        .update_user_with_mail(
            me,
            &|u| {
                if let Some(v) = &username {
                    u.username = v.clone();
                }
                if let Some(v) = &email {
                    if crate::store::name_key(v) != crate::store::name_key(&u.email) {
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
            // The notice to the old address (and a verification mail to the new one).
            &|before, after| mailer.notices(before, after),
        )
        .await
        .map_err(taken)?;
    ctx.app.cache.updated(&user);
    mailer.wake.notify_one();
    Ok(Response::json(200, &profile_json(&user)))
}

/// PUT or PATCH /api/auth/profile/password/ {old_password | current_password, new_password}
///
/// DRF's order: every field error first (a missing field, then the new password's policy),
/// all listed together; the old password (an object-level check) only once they all pass.
pub async fn change_password(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let user = current_user(ctx).await?;
    let data = ctx.req.data()?;
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
    let app = ctx.app;
    if !app.passwords.verify(&old, Some(&user.password)).await?.ok {
        return Err(ApiError::field(old_field, field::WRONG_PASSWORD));
    }
    let hash = app.passwords.hash(&new).await?;
    let mailer = &app.mailer;
    let user = app
        .store
        .update_user_with_mail(
            user.id,
            &|u| {
                u.password = hash.clone();
                // Every token issued before this moment dies.
                u.token_version += 1;
            },
            // The seed's "Password Changed" notice.
            &|before, after| mailer.notices(before, after),
        )
        .await?;
    app.cache.updated(&user);
    mailer.wake.notify_one();
    let (access, refresh) = app.issue_pair(&user)?;
    Ok(Response::json(
        200,
        &json!({"detail": PASSWORD_UPDATED, "access": access, "refresh": refresh}),
    ))
}

/// DELETE /api/auth/profile/delete/: deactivate, keep the row and the name.
pub async fn soft_delete(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let me = ctx.caller()?.user_id;
    let when = now();
    let user = ctx
        .app
        .store
        .update_user(me, &|u| {
            u.is_active = false;
            u.deleted_at = Some(when);
            u.token_version += 1;
        })
        .await?;
    ctx.app.cache.updated(&user);
    Ok(Response::json(200, &json!({ "message": SOFT_DELETED })))
}
