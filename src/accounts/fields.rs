//! The field rules the operations share, in DRF's validator order and with its messages:
//! usernames, emails and names (register, profile update), the new password's policy
//! (password change and reset), and the email of a link request.

use crate::accounts::form::{CharRules, Fields, OPTIONAL, OPTIONAL_BLANK_OK, REQUIRED};
use crate::auth::policy::{self, UserAttributes};
use crate::error::{field, ApiError};
use crate::store::{User, UserStore};

pub const USERNAME_MAX: usize = 150;
pub const EMAIL_MAX: usize = 254;
pub const NAME_MAX: usize = 150;

/// Which of username and email a request must carry: register both, a profile PUT the
/// username only (the seed's serializer: a missing email is kept), a PATCH neither.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdentityRules {
    username: CharRules,
    email: CharRules,
}

pub(super) const REGISTER: IdentityRules = IdentityRules {
    username: REQUIRED,
    email: REQUIRED,
};
pub(super) const FULL_UPDATE: IdentityRules = IdentityRules {
    username: REQUIRED,
    email: OPTIONAL,
};
pub(super) const PARTIAL_UPDATE: IdentityRules = IdentityRules {
    username: OPTIONAL,
    email: OPTIONAL,
};

/// A valid username and email, where sent.
pub(super) struct Names {
    pub username: Option<String>,
    pub email: Option<String>,
    /// `email` is an address nobody holds yet (not the user's own, in another case).
    pub new_address: bool,
}

/// Username and email checks in DRF's validator order; `me` is the user being updated (a
/// name they already hold is not "taken").
pub(super) async fn names(
    store: &dyn UserStore,
    f: &mut Fields<'_>,
    rules: IdentityRules,
    me: Option<u64>,
) -> Result<Names, ApiError> {
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
    let mut new_address = false;
    if let Some(email) = &email {
        match store.email_owner(email).await? {
            Some(id) if Some(id) != me => f.add("email", field::EMAIL_TAKEN),
            Some(_) => {}
            None => new_address = true,
        }
        f.max_len("email", email, EMAIL_MAX);
        if !policy::is_valid_email(email) {
            f.add("email", field::INVALID_EMAIL);
        }
    }
    let username = username.filter(|_| !f.failed("username"));
    let email = email.filter(|_| !f.failed("email"));
    Ok(Names {
        new_address: new_address && email.is_some(),
        username,
        email,
    })
}

/// A first or last name: optional, blank allowed.
pub(super) fn name_field(f: &mut Fields<'_>, name: &str) -> Option<String> {
    let value = f.char(name, OPTIONAL_BLANK_OK)?;
    f.max_len(name, &value, NAME_MAX).then_some(value)
}

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

/// The `email` of a reset or resend request, checked as djoser's EmailField.
pub(super) fn link_email(f: &mut Fields<'_>) -> Option<String> {
    let email = f.char("email", REQUIRED)?;
    // An over-long address has its own message already.
    if f.max_len("email", &email, EMAIL_MAX) && !policy::is_valid_email(&email) {
        f.add("email", field::INVALID_EMAIL);
    }
    Some(email)
}

/// The value of a field the validation required; its absence is that field's error (so a
/// 400 always names what is wrong).
pub fn required_value<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::field(name, field::REQUIRED))
}
