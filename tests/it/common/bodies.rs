//! The answers the scenarios expect, written once: DRF's and simplejwt's error bodies and
//! messages, Django's validator messages, and the bodies of gatehouse's own gateway errors.

use serde_json::{json, Value};

/// The example password from the seed README, valid under Django's validators.
pub const PASSWORD: &str = "TestPass123";

/// Every 401 gatehouse writes carries it.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";

// DRF field messages.
pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";
pub const NULL: &str = "This field may not be null.";
pub const NOT_STRING: &str = "Not a valid string.";
pub const BAD_EMAIL: &str = "Enter a valid email address.";
pub const MAX_150: &str = "Ensure this field has no more than 150 characters.";
pub const MAX_254: &str = "Ensure this field has no more than 254 characters.";
pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
pub const EMAIL_TAKEN: &str = "user with this email address already exists.";
pub const BAD_USERNAME: &str = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";

// Django's password validators.
pub const SIMILAR_USERNAME: &str = "The password is too similar to the username.";
pub const SIMILAR_FIRST_NAME: &str = "The password is too similar to the first name.";
pub const SIMILAR_LAST_NAME: &str = "The password is too similar to the last name.";
pub const SIMILAR_EMAIL: &str = "The password is too similar to the email address.";
pub const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
pub const TOO_COMMON: &str = "This password is too common.";
pub const NUMERIC: &str = "This password is entirely numeric.";

pub const WRONG_LOGIN: &str = "No active account found with the given credentials";
pub const PASSWORD_UPDATED: &str = "Password updated successfully.";

/// No credentials (or a scheme other than Bearer) where a token is required.
pub fn not_provided() -> Value {
    json!({"detail": "Authentication credentials were not provided."})
}

/// `Authorization: Bearer` with no token, or with more than one.
pub fn bad_header() -> Value {
    json!({"detail": "Authorization header must contain two space-delimited values",
           "code": "bad_authorization_header"})
}

/// simplejwt's body for a bad access token on an authenticated view or route.
pub fn bad_access(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}]
    })
}

/// simplejwt's body for a bad token on the refresh / verify / logout views.
pub fn bad_refresh(detail: &str) -> Value {
    json!({"detail": detail, "code": "token_not_valid"})
}

/// A valid token of a soft-deleted user.
pub fn inactive() -> Value {
    json!({"detail": "User is inactive", "code": "user_inactive"})
}

/// A valid token whose user id names nobody.
pub fn user_not_found() -> Value {
    json!({"detail": "User not found", "code": "user_not_found"})
}

/// A valid token without a `user_id` claim.
pub fn no_user_id() -> Value {
    json!({"detail": "Token contained no recognizable user identification", "code": "token_not_valid"})
}

/// A refresh token of a soft-deleted user.
pub fn no_active_account_for_token() -> Value {
    json!({"detail": "No active account found for the given token."})
}

/// Wrong password, unknown user, or a soft-deleted one: the same body.
pub fn wrong_login() -> Value {
    json!({ "detail": WRONG_LOGIN })
}

pub fn forbidden() -> Value {
    json!({"detail": "You do not have permission to perform this action."})
}

pub fn not_found() -> Value {
    json!({"detail": "Not found."})
}

/// An admin view's unknown (or non-numeric) user id.
pub fn no_user() -> Value {
    json!({"detail": "No User matches the given query."})
}

pub fn invalid_page() -> Value {
    json!({"detail": "Invalid page."})
}

pub fn method_not_allowed(method: &str) -> Value {
    json!({ "detail": format!("Method \"{method}\" not allowed.") })
}

pub fn unsupported_media_type(content_type: &str) -> Value {
    json!({ "detail": format!("Unsupported media type \"{content_type}\" in request.") })
}

/// A JSON body that is not an object; `python_type` as DRF names it (`list`, `str`, ...).
pub fn not_a_dict(python_type: &str) -> Value {
    json!({ "non_field_errors": [format!("Invalid data. Expected a dictionary, but got {python_type}.")] })
}

pub fn body_too_large(limit: usize) -> Value {
    json!({ "detail": format!("Request body too large: the limit is {limit} bytes.") })
}

pub fn headers_too_large() -> Value {
    json!({"detail": "Request header fields too large."})
}

pub fn soft_deleted() -> Value {
    json!({"message": "Account soft deleted successfully."})
}

/// 502: the route's upstream cannot be reached.
pub fn upstream_unavailable() -> Value {
    json!({"detail": "The upstream service is unavailable."})
}

/// 504: the route's upstream did not answer within `read_timeout_ms`.
pub fn upstream_timeout() -> Value {
    json!({"detail": "The upstream service did not answer in time."})
}

/// A profile as the API shows it.
pub fn profile(id: u64, username: &str, email: &str) -> Value {
    json!({"id": id, "username": username, "email": email, "first_name": "", "last_name": ""})
}

/// The profile of a user made by `register` (`<username>@example.com`).
pub fn profile_of(id: u64, username: &str) -> Value {
    profile(id, username, &format!("{username}@example.com"))
}

/// A user as the admin views show it (a registered user: the address not verified).
pub fn admin_item(id: u64, username: &str, email: &str, active: bool) -> Value {
    json!({"id": id, "username": username, "email": email, "first_name": "", "last_name": "", "is_active": active, "email_verified": false})
}

/// An admin view of a user whose address counts as verified (made by `createsuperuser`,
/// imported, or verified by a link).
pub fn verified(mut item: Value) -> Value {
    item["email_verified"] = json!(true);
    item
}

/// The admin detail: the list's fields, `is_staff`, `groups` (none), `mfa` (off) and `is_service` (no).
pub fn admin_detail(id: u64, username: &str, email: &str, active: bool, staff: bool) -> Value {
    let mut v = admin_item(id, username, email, active);
    v["is_staff"] = json!(staff);
    v["groups"] = json!([]);
    v["mfa"] = json!(false);
    v["is_service"] = json!(false);
    v
}
