//! New accounts: a registration (anyone, throttled by address) and the operator's superuser
//! (`gatehouse createsuperuser`), validated by the same field rules and password policy.

use super::fields::{self, name_field, required_value, REGISTER};
use super::{audit, writer, Actor, Input};
use crate::accounts::form::{Fields, REQUIRED};
use crate::app::App;
use crate::auth::policy::{self, UserAttributes};
use crate::clock::now;
use crate::error::ApiError;
use crate::store::{Effects, NewUser, User, UserStore};
use serde_json::{Map, Value};

/// What a valid registration supplies.
struct Registration {
    username: String,
    email: String,
    password: String,
    first_name: String,
    last_name: String,
}

impl Registration {
    /// The user to create, with the password's `hash`, joined `at`.
    fn into_new_user(self, hash: String, is_staff: bool, at: u64) -> NewUser {
        NewUser {
            username: self.username,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            password: hash,
            is_staff,
            date_joined: at,
            is_service: false,
        }
    }
}

/// Register's field validation in DRF's order. With `check_password` off the password
/// policy is skipped (createsuperuser's bypass).
async fn validate(
    store: &dyn UserStore,
    data: &Map<String, Value>,
    check_password: bool,
) -> Result<Registration, ApiError> {
    let mut f = Fields::new(data);
    let names = fields::names(store, &mut f, REGISTER, None).await?;
    let password = f.char("password", REQUIRED);
    let first_name = name_field(&mut f, "first_name").unwrap_or_default();
    let last_name = name_field(&mut f, "last_name").unwrap_or_default();
    if let (Some(pw), true) = (&password, check_password) {
        let attrs = UserAttributes {
            username: names.username.as_deref().unwrap_or(""),
            first_name: &first_name,
            last_name: &last_name,
            email: names.email.as_deref().unwrap_or(""),
        };
        for message in policy::validate_password(pw, &attrs) {
            f.add("password", message);
        }
    }
    f.finish()?;
    Ok(Registration {
        username: required_value(names.username, "username")?,
        email: required_value(names.email, "email")?,
        password: required_value(password, "password")?,
        first_name,
        last_name,
    })
}

/// A registration `{username, email, password[, first_name, last_name]}`: throttled by the
/// actor's address, then validated; the new user, active and unverified, with the
/// verification mail when `verify_on_register` (and the caps let it through).
pub async fn register(app: &App, actor: &Actor, input: &dyn Input) -> Result<User, ApiError> {
    app.throttle
        .registration(actor.client_ip, now())
        .await
        .map_err(ApiError::Throttled)?;
    let data = input.data()?;
    let valid = validate(app.store.as_ref(), &data, true).await?;
    let hash = app.passwords.hash(&valid.password).await?;
    let at = now();
    // The cap is counted here, once, not in the store's (retryable) transaction.
    let verify = app.mailer.verification_permit(&valid.email).await;
    let mailer = &app.mailer;
    let user = writer::create(app, valid.into_new_user(hash, false, at), &|created| {
        Effects::from(mailer.on_register(created, verify, at))
            .with(audit::registered(actor, created))
    })
    .await?;
    Ok(user)
}

/// The operator's staff user `{username, email, password}`, validated as a registration
/// (with `check_password` off, the password policy is bypassed, as Django lets the operator
/// do). The operator vouches for the address: `require_verified_email` must not lock the
/// first admin out.
pub async fn create_superuser(
    app: &App,
    actor: &Actor,
    input: &dyn Input,
    check_password: bool,
) -> Result<User, ApiError> {
    actor.require_staff()?;
    let data = input.data()?;
    let valid = validate(app.store.as_ref(), &data, check_password).await?;
    let hash = app.passwords.hash(&valid.password).await?;
    let user = writer::create(app, valid.into_new_user(hash, true, now()), &|created| {
        audit::registered(actor, created).into()
    })
    .await?;
    let user = writer::update(app, user.id, &|u| u.email_verified = true, &|_, _| {
        Effects::none()
    })
    .await?;
    Ok(user)
}
