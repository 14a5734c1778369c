//! The user API's paths, as the seed README's client calls them.

pub const TOKEN: &str = "/api/token/";
pub const REFRESH: &str = "/api/token/refresh/";
pub const VERIFY: &str = "/api/token/verify/";
pub const REGISTER: &str = "/api/auth/register/";
pub const LOGOUT: &str = "/api/auth/logout/";
pub const PROFILE: &str = "/api/auth/profile/";
pub const PASSWORD_CHANGE: &str = "/api/auth/profile/password/";
pub const PROFILE_DELETE: &str = "/api/auth/profile/delete/";
pub const ADMIN_USERS: &str = "/api/auth/admin/users/";
/// The audit log (SPEC §16).
pub const AUDIT: &str = "/api/auth/admin/audit/";

/// `/api/auth/admin/users/<id>/`
pub fn admin_user(id: impl std::fmt::Display) -> String {
    format!("{ADMIN_USERS}{id}/")
}

/// `/api/auth/admin/users/restore/<id>/`
pub fn admin_restore(id: impl std::fmt::Display) -> String {
    format!("{ADMIN_USERS}restore/{id}/")
}
pub const PASSWORD_RESET: &str = "/api/auth/password/reset/";
pub const PASSWORD_RESET_CONFIRM: &str = "/api/auth/password/reset/confirm/";
pub const EMAIL_VERIFY: &str = "/api/auth/email/verify/";
pub const EMAIL_VERIFY_RESEND: &str = "/api/auth/email/verify/resend/";
