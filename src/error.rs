//! Every error a client can see, and the exact DRF / simplejwt JSON body, status and headers
//! each one renders to. All user-facing error messages live here.

use crate::auth::tokens::{SignError, TokenError};
use crate::auth::AuthError;
use crate::response::Response;
use serde_json::{json, Map, Value};

/// simplejwt's refusal of a refresh token whose family was ended (logout, reuse).
pub const BLACKLISTED: &str = "Token is blacklisted";
pub const NOT_AUTHENTICATED: &str = "Authentication credentials were not provided.";
pub const BAD_AUTH_HEADER: &str = "Authorization header must contain two space-delimited values";
pub const NOT_VALID_FOR_ANY: &str = "Given token not valid for any token type";
pub const USER_NOT_FOUND: &str = "User not found";
pub const USER_INACTIVE: &str = "User is inactive";
pub const NO_ACTIVE_ACCOUNT: &str = "No active account found with the given credentials";
pub const NO_ACTIVE_ACCOUNT_FOR_TOKEN: &str = "No active account found for the given token.";
pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";
pub const NOT_FOUND: &str = "Not found.";
pub const NO_USER: &str = "No User matches the given query.";
pub const INVALID_PAGE: &str = "Invalid page.";
/// DRF's CursorPagination, for a cursor it did not make.
pub const INVALID_CURSOR: &str = "Invalid cursor";
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";
pub const STORE_UNAVAILABLE: &str = "The user store is unavailable; retry shortly.";
pub const UPSTREAM_UNAVAILABLE: &str = "The upstream service is unavailable.";
pub const UPSTREAM_TIMEOUT: &str = "The upstream service did not answer in time.";
pub const HASH_QUEUE_FULL: &str = "Too many password checks in progress; retry shortly.";
pub const HASH_FAILED: &str = "The password could not be hashed; retry shortly.";
pub const SIGN_FAILED: &str = "The token could not be signed; retry shortly.";
pub const ESCAPED_PATH: &str =
    "The request path holds an encoded slash, backslash or dot, or a backslash: refused.";
pub const FORWARD_AUTH_NO_URI: &str =
    "Forward-auth needs the original request: X-Original-URI (nginx) or X-Forwarded-Uri (Traefik).";
pub const FORWARD_AUTH_BAD_METHOD: &str = "Not a valid HTTP method.";
pub const STORE_CONFLICT: &str = "The record changed under concurrent requests; retry shortly.";

/// The second factor (SPEC §17).
pub const OTP_REQUIRED: &str = "Two-factor code required.";
pub const OTP_INVALID: &str = "Invalid two-factor code.";
pub const MFA_REQUIRED: &str = "Two-factor authentication required.";

/// The second factor is not in the state a request needs (400, with a `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaState {
    /// Already on: turn it off before enrolling again.
    Enabled,
    /// Not on (nothing to renew or turn off).
    NotEnabled,
    /// Nothing pending to confirm.
    NotPending,
}

impl MfaState {
    pub fn detail(self) -> &'static str {
        match self {
            MfaState::Enabled => "Two-factor authentication is already enabled.",
            MfaState::NotEnabled => "Two-factor authentication is not enabled.",
            MfaState::NotPending => "No two-factor enrolment is pending; start one first.",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            MfaState::Enabled => "mfa_enabled",
            MfaState::NotEnabled => "mfa_not_enabled",
            MfaState::NotPending => "mfa_not_pending",
        }
    }
}

/// djoser's: a verification link for an address already verified.
pub const STALE_TOKEN: &str = "Stale token for given user.";

/// Field-level messages (DRF's and Django's wording).
pub mod field {
    /// djoser's, for a `uid` that names nobody.
    pub const INVALID_UID: &str = "Invalid user id or user doesn't exist.";
    /// djoser's, for a reset or verification token that does not check out.
    pub const INVALID_TOKEN: &str = "Invalid token for given user.";
    pub const REQUIRED: &str = "This field is required.";
    pub const BLANK: &str = "This field may not be blank.";
    pub const NULL: &str = "This field may not be null.";
    pub const NOT_A_STRING: &str = "Not a valid string.";
    pub const INVALID_EMAIL: &str = "Enter a valid email address.";
    pub const INVALID_USERNAME: &str = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
    pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
    pub const EMAIL_TAKEN: &str = "user with this email address already exists.";
    pub const WRONG_PASSWORD: &str = "Wrong password.";
    /// `"mfa": true` from an admin: only the user can enrol a second factor.
    pub const MFA_ONLY_OFF: &str =
        "A second factor can only be turned on by its user; an admin can only reset it (false).";
    /// DRF's BooleanField.
    pub const NOT_A_BOOLEAN: &str = "Must be a valid boolean.";
    /// DRF's CharField `ProhibitNullCharactersValidator`.
    pub const NULL_CHARACTERS: &str = "Null characters are not allowed.";
    /// Django's IntegerField (a django-filter id filter).
    pub const NOT_A_WHOLE_NUMBER: &str = "Enter a whole number.";
    /// Django's DateTimeField (a django-filter date-time filter).
    pub const INVALID_DATETIME: &str = "Enter a valid date/time.";

    /// Django's ChoiceField for a value not among its choices.
    pub fn invalid_choice(value: &str) -> String {
        format!("Select a valid choice. {value} is not one of the available choices.")
    }

    /// DRF's ListField for a value that is not a list; `python_type` as DRF names it.
    pub fn not_a_list(python_type: &str) -> String {
        format!("Expected a list of items but got type \"{python_type}\".")
    }
}

pub fn max_length_message(max: usize) -> String {
    format!("Ensure this field has no more than {max} characters.")
}

/// One field's errors: its own messages, or, for a list field whose items failed, the
/// messages of each failed item by position (DRF's ListField: `{"groups": {"0": [...]}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Messages(Vec<String>),
    Items(Vec<(usize, Vec<String>)>),
}

impl FieldError {
    /// Every message, items' included (for a command line).
    pub fn messages(&self) -> Vec<&str> {
        match self {
            FieldError::Messages(m) => m.iter().map(String::as_str).collect(),
            FieldError::Items(items) => items
                .iter()
                .flat_map(|(_, m)| m.iter().map(String::as_str))
                .collect(),
        }
    }

    fn body(&self) -> Value {
        match self {
            FieldError::Messages(m) => json!(m),
            FieldError::Items(items) => {
                let mut map = Map::new();
                for (index, messages) in items {
                    map.insert(index.to_string(), json!(messages));
                }
                Value::Object(map)
            }
        }
    }
}

/// Field name -> its errors, in the order the fields were checked.
pub type FieldErrors = Vec<(String, FieldError)>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("non-field error")]
    NonField(String),
    #[error("malformed body")]
    Parse(String),
    /// A path whose meaning depends on who decodes it (§13 of the spec).
    #[error("escaped path")]
    EscapedPath,
    #[error("not authenticated")]
    NotAuthenticated,
    #[error("bad authorization header")]
    BadAuthorizationHeader,
    /// A bad access token; the message is simplejwt's reason ("Token is expired", ...).
    #[error("invalid access token")]
    InvalidAccessToken(&'static str),
    #[error("token without user id")]
    NoUserId,
    #[error("user not found")]
    UserNotFound,
    #[error("user inactive")]
    UserInactive,
    /// A bad refresh (or verify / logout) token: `{"detail": reason, "code": "token_not_valid"}`.
    #[error("invalid token")]
    InvalidToken(&'static str),
    #[error("no active account for token")]
    NoActiveAccountForToken,
    #[error("wrong credentials")]
    WrongCredentials,
    /// The password was right; the user has a second factor and sent no code.
    #[error("second factor required")]
    OtpRequired,
    /// The code sent with a sign-in was wrong, used already, or not a code.
    #[error("second factor invalid")]
    OtpInvalid,
    /// The route needs a sign-in that used a second factor (`require_mfa`).
    #[error("second factor needed for this route")]
    MfaRequired,
    /// The second factor is not in the state the request needs.
    #[error("second factor state")]
    MfaState(MfaState),
    #[error("permission denied")]
    PermissionDenied,
    /// A 403 with its own reason (djoser's "Stale token for given user.").
    #[error("forbidden")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("no such user")]
    NoUser,
    #[error("invalid page")]
    InvalidPage,
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("body too large")]
    TooLarge(usize),
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("throttled")]
    Throttled(u64),
    /// The password-hash queue is full, or the store is briefly unable to answer.
    #[error("overloaded")]
    Overloaded(&'static str),
    /// No upstream of the route could be reached.
    #[error("upstream unavailable")]
    UpstreamUnavailable,
    #[error("upstream timed out")]
    UpstreamTimeout,
}

impl ApiError {
    pub fn status(&self) -> u16 {
        use ApiError::*;
        match self {
            Validation(_) | NonField(_) | Parse(_) | EscapedPath => 400,
            NotAuthenticated
            | BadAuthorizationHeader
            | InvalidAccessToken(_)
            | NoUserId
            | UserNotFound
            | UserInactive
            | InvalidToken(_)
            | NoActiveAccountForToken
            | WrongCredentials
            | OtpRequired
            | OtpInvalid => 401,
            MfaState(_) => 400,
            PermissionDenied | Forbidden(_) | MfaRequired => 403,
            NotFound | NoUser | InvalidPage | InvalidCursor => 404,
            MethodNotAllowed(_) => 405,
            TooLarge(_) => 413,
            HeadersTooLarge => 431,
            UnsupportedMediaType(_) => 415,
            Throttled(_) => 429,
            Overloaded(_) => 503,
            UpstreamUnavailable => 502,
            UpstreamTimeout => 504,
        }
    }

    pub fn body(&self) -> Value {
        use ApiError::*;
        let detail = |d: &str| json!({ "detail": d });
        let coded = |d: &str, code: &str| json!({ "detail": d, "code": code });
        match self {
            Validation(fields) => {
                let mut map = Map::new();
                for (name, error) in fields {
                    map.insert(name.clone(), error.body());
                }
                Value::Object(map)
            }
            NonField(m) => json!({ "non_field_errors": [m] }),
            Parse(m) => detail(&format!("JSON parse error - {m}")),
            EscapedPath => detail(ESCAPED_PATH),
            NotAuthenticated => detail(NOT_AUTHENTICATED),
            BadAuthorizationHeader => coded(BAD_AUTH_HEADER, "bad_authorization_header"),
            InvalidAccessToken(m) => json!({
                "detail": NOT_VALID_FOR_ANY,
                "code": "token_not_valid",
                "messages": [{"token_class": "AccessToken", "token_type": "access", "message": m}],
            }),
            NoUserId => coded(TokenError::NoUserId.message(), "token_not_valid"),
            UserNotFound => coded(USER_NOT_FOUND, "user_not_found"),
            UserInactive => coded(USER_INACTIVE, "user_inactive"),
            InvalidToken(m) => coded(m, "token_not_valid"),
            NoActiveAccountForToken => detail(NO_ACTIVE_ACCOUNT_FOR_TOKEN),
            WrongCredentials => detail(NO_ACTIVE_ACCOUNT),
            OtpRequired => coded(OTP_REQUIRED, "otp_required"),
            OtpInvalid => coded(OTP_INVALID, "otp_invalid"),
            MfaRequired => coded(MFA_REQUIRED, "mfa_required"),
            MfaState(state) => coded(state.detail(), state.code()),
            PermissionDenied => detail(PERMISSION_DENIED),
            Forbidden(m) => detail(m),
            NotFound => detail(NOT_FOUND),
            NoUser => detail(NO_USER),
            InvalidPage => detail(INVALID_PAGE),
            InvalidCursor => detail(INVALID_CURSOR),
            MethodNotAllowed(m) => detail(&format!("Method \"{m}\" not allowed.")),
            TooLarge(limit) => detail(&format!(
                "Request body too large: the limit is {limit} bytes."
            )),
            HeadersTooLarge => detail("Request header fields too large."),
            UnsupportedMediaType(t) => {
                detail(&format!("Unsupported media type \"{t}\" in request."))
            }
            Throttled(secs) => detail(&format!(
                "Request was throttled. Expected available in {secs} second{}.",
                if *secs == 1 { "" } else { "s" }
            )),
            Overloaded(m) => detail(m),
            UpstreamUnavailable => detail(UPSTREAM_UNAVAILABLE),
            UpstreamTimeout => detail(UPSTREAM_TIMEOUT),
        }
    }

    pub fn to_response(&self) -> Response {
        let mut resp = Response::json(self.status(), &self.body());
        match self {
            e if e.status() == 401 => resp = resp.with_header("WWW-Authenticate", WWW_AUTHENTICATE),
            ApiError::Throttled(secs) => resp = resp.with_header("Retry-After", secs.to_string()),
            ApiError::Overloaded(_) => resp = resp.with_header("Retry-After", "1"),
            _ => {}
        }
        resp
    }

    /// A single-field validation error.
    pub fn field(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![(
            name.to_string(),
            FieldError::Messages(vec![message.into()]),
        )])
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError;
        match e {
            StoreError::UsernameTaken => ApiError::field("username", field::USERNAME_TAKEN),
            StoreError::EmailTaken => ApiError::field("email", field::EMAIL_TAKEN),
            StoreError::NotFound => ApiError::NoUser,
            StoreError::Conflict => ApiError::Overloaded(STORE_CONFLICT),
            StoreError::InUse(_) | StoreError::Unavailable(_) | StoreError::Io(_) => {
                log::error!("store: {e}");
                ApiError::Overloaded(STORE_UNAVAILABLE)
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::NoCredentials => ApiError::NotAuthenticated,
            AuthError::BadHeader => ApiError::BadAuthorizationHeader,
            AuthError::Token(TokenError::NoUserId) => ApiError::NoUserId,
            AuthError::Token(t) => ApiError::InvalidAccessToken(t.message()),
            AuthError::UserNotFound => ApiError::UserNotFound,
            AuthError::UserInactive => ApiError::UserInactive,
            AuthError::NotStaff => ApiError::PermissionDenied,
            AuthError::Unavailable => ApiError::Overloaded(STORE_UNAVAILABLE),
        }
    }
}

impl From<crate::auth::passwords::HashError> for ApiError {
    fn from(e: crate::auth::passwords::HashError) -> ApiError {
        use crate::auth::passwords::HashError;
        match e {
            HashError::Busy => ApiError::Overloaded(HASH_QUEUE_FULL),
            HashError::Failed(_) => {
                log::error!("passwords: {e}");
                ApiError::Overloaded(HASH_FAILED)
            }
        }
    }
}

impl From<SignError> for ApiError {
    fn from(e: SignError) -> ApiError {
        log::error!("tokens: {e}");
        ApiError::Overloaded(SIGN_FAILED)
    }
}

/// The Python type name DRF puts in its message.
pub fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_drf() {
        assert_eq!(
            ApiError::InvalidAccessToken("Token is expired").body(),
            json!({"detail": "Given token not valid for any token type", "code": "token_not_valid",
                   "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is expired"}]})
        );
        assert_eq!(
            ApiError::MethodNotAllowed("GET".into()).body(),
            json!({"detail": "Method \"GET\" not allowed."})
        );
        assert_eq!(
            ApiError::Throttled(1).body(),
            json!({"detail": "Request was throttled. Expected available in 1 second."})
        );
    }

    #[test]
    fn every_401_carries_www_authenticate() {
        for e in [
            ApiError::NotAuthenticated,
            ApiError::BadAuthorizationHeader,
            ApiError::UserInactive,
            ApiError::WrongCredentials,
            ApiError::InvalidToken("Token is invalid"),
        ] {
            let r = e.to_response();
            assert_eq!(r.status, 401);
            assert_eq!(r.header("www-authenticate"), Some(WWW_AUTHENTICATE));
        }
        assert_eq!(
            ApiError::NotFound.to_response().header("www-authenticate"),
            None
        );
    }

    #[test]
    fn retry_after_on_429_and_503() {
        assert_eq!(
            ApiError::Throttled(7).to_response().header("retry-after"),
            Some("7")
        );
        assert!(ApiError::Overloaded("busy")
            .to_response()
            .header("retry-after")
            .is_some());
    }
}
