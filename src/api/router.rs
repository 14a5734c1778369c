//! The user API's URL table: which endpoint a path is, what it allows, and who may call it.
//! Paths are relative to `[api] prefix` (the seed's `/api/`); gatehouse owns `{prefix}auth/`
//! and `{prefix}token/` (`Config::owned_prefixes`): nothing under them is ever forwarded.

/// The public keys' fixed place, outside the API's prefix (RFC 8615).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    TokenObtain,
    TokenRefresh,
    TokenVerify,
    Register,
    Logout,
    Profile,
    PasswordChange,
    ProfileDelete,
    AdminList,
    /// The id segment as written (may be non-numeric: then 404).
    AdminDetail(String),
    AdminRestore(String),
    /// The audit log (SPEC §16), newest first, keyset-paged.
    AdminAudit,
    /// The OpenAPI document of this API.
    Schema,
    /// The public signing keys (asymmetric algorithms).
    Jwks,
    /// djoser's reset and verification views (SPEC §10).
    PasswordReset,
    PasswordResetConfirm,
    EmailVerify,
    EmailVerifyResend,
    /// Browser sessions (SPEC §15): sign in / out with the cookie, for single-page apps.
    Session,
    /// The caller's browser sessions and refresh-token families.
    Sessions,
    /// One of them, by its id as the list shows it.
    SessionEnd(String),
    /// All but the current one.
    SessionsRevokeOthers,
    /// The second factor (SPEC §17): POST starts an enrolment, DELETE turns it off.
    Totp,
    /// A code confirms the pending enrolment.
    TotpConfirm,
    /// A new set of recovery codes.
    RecoveryCodes,
    /// The caller's API keys (SPEC §19): GET lists them, POST makes one.
    Keys,
    /// One of them by id: DELETE revokes it.
    Key(String),
    /// A user's (or service account's) keys, for staff: GET lists, POST makes one.
    AdminUserKeys(String),
    /// Staff make a service account.
    AdminServiceAccounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    AllowAny,
    Authenticated,
    Staff,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Api(Endpoint),
    /// Known path without its trailing slash: 308 to this path.
    Redirect(String),
    /// Under an owned prefix but unknown: 404 JSON.
    NotFound,
    /// Not the user API: the proxy's business.
    NotOurs,
}

/// The path every routing decision uses: percent-encoded unreserved characters decoded
/// (`%61uth` is `auth`, RFC 3986 §6.2.2.2), runs of slashes collapsed and dot segments
/// removed, so no spelling of an owned path can slip past to an upstream. Other escapes
/// (`%2F`, `%00`, ...) stay as they are.
pub fn normalize_path(raw: &str) -> String {
    // Most paths are already normal: one copy, no decoding or splitting (every request).
    if is_normal(raw) {
        return raw.to_string();
    }
    normalize_slow(raw)
}

/// Absolute, no escapes, no empty or dot segments (a trailing slash is fine).
fn is_normal(raw: &str) -> bool {
    raw.starts_with('/')
        && !raw.contains('%')
        && !raw.contains("//")
        && !raw.split('/').any(|s| s == "." || s == "..")
}

fn normalize_slow(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let unreserved = if bytes[i] == b'%' {
            unreserved_escape(bytes.get(i + 1..i + 3))
        } else {
            None
        };
        match unreserved {
            Some(c) => {
                decoded.push(c);
                i += 3;
            }
            None => {
                // Copy one UTF-8 character (the path came from a &str).
                let len = raw[i..].chars().next().map_or(1, char::len_utf8);
                decoded.push_str(&raw[i..i + len]);
                i += len;
            }
        }
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (n, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            "" if n != last => {}
            s => out.push(s),
        }
    }
    let mut path = format!("/{}", out.join("/"));
    // A trailing "/", "/." or "/.." keeps the path a directory.
    if (decoded.ends_with("/.") || decoded.ends_with("/..")) && !path.ends_with('/') {
        path.push('/');
    }
    path
}

/// A path whose meaning depends on who decodes it: an encoded slash or backslash (`%2F`,
/// `%5C`, any case), a raw backslash, or an encoded `.`, `/` or `\` left after one decoding
/// (double encoding, `%252e`). Such paths are how traversal slips past a proxy that routes on
/// one reading while the upstream acts on another.
pub fn is_escaped(raw: &str) -> bool {
    const ESCAPES: [&str; 2] = ["%2f", "%5c"];
    let has = |text: &str, needles: &[&str]| {
        let lower = text.to_ascii_lowercase();
        needles.iter().any(|n| lower.contains(n))
    };
    // Every request comes here: a path without escapes is decided without a copy.
    if raw.contains('\\') {
        return true;
    }
    if !raw.contains('%') {
        return false;
    }
    if has(raw, &ESCAPES) {
        return true;
    }
    let once = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    once.contains('\\') || has(&once, &["%2e", "%2f", "%5c"])
}

/// `%XX` naming an unreserved character (letters, digits, `-._~`).
fn unreserved_escape(hex: Option<&[u8]>) -> Option<char> {
    let b = u8::from_str_radix(std::str::from_utf8(hex?).ok()?, 16).ok()?;
    (b.is_ascii_alphanumeric() || b"-._~".contains(&b)).then_some(char::from(b))
}

/// Routes a path already passed through `normalize_path`, with the user API under `prefix`.
/// A path outside the API's prefix is decided without a copy (every proxied request).
pub fn route(path: &str, prefix: &str) -> Route {
    if path == JWKS_PATH {
        return Route::Api(Endpoint::Jwks);
    }
    let Some(rest) = path.strip_prefix(prefix) else {
        return Route::NotOurs;
    };
    if let Some(e) = endpoint(rest) {
        return Route::Api(e);
    }
    if !rest.ends_with('/') && endpoint(&format!("{rest}/")).is_some() {
        return Route::Redirect(format!("{path}/"));
    }
    if rest.starts_with("auth/") || rest.starts_with("token/") {
        return Route::NotFound;
    }
    Route::NotOurs
}

/// The endpoint at `rest`, a path relative to the API's prefix.
fn endpoint(rest: &str) -> Option<Endpoint> {
    use Endpoint::*;
    let fixed = match rest {
        "token/" => Some(TokenObtain),
        "token/refresh/" => Some(TokenRefresh),
        "token/verify/" => Some(TokenVerify),
        "auth/register/" => Some(Register),
        "auth/logout/" => Some(Logout),
        "auth/profile/" => Some(Profile),
        "auth/profile/password/" => Some(PasswordChange),
        "auth/profile/delete/" => Some(ProfileDelete),
        "auth/admin/users/" => Some(AdminList),
        "auth/admin/audit/" => Some(AdminAudit),
        "schema/" => Some(Schema),
        "auth/password/reset/" => Some(PasswordReset),
        "auth/password/reset/confirm/" => Some(PasswordResetConfirm),
        "auth/email/verify/" => Some(EmailVerify),
        "auth/email/verify/resend/" => Some(EmailVerifyResend),
        "auth/session/" => Some(Session),
        "auth/sessions/" => Some(Sessions),
        "auth/sessions/revoke-others/" => Some(SessionsRevokeOthers),
        "auth/2fa/totp/" => Some(Totp),
        "auth/2fa/totp/confirm/" => Some(TotpConfirm),
        "auth/2fa/recovery-codes/" => Some(RecoveryCodes),
        "auth/keys/" => Some(Keys),
        "auth/admin/service-accounts/" => Some(AdminServiceAccounts),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    let id_segment = |prefix: &str| {
        rest.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(str::to_string)
    };
    if let Some(id) = id_segment("auth/admin/users/restore/") {
        return Some(AdminRestore(id));
    }
    if let Some(id) = id_segment("auth/sessions/") {
        return Some(SessionEnd(id));
    }
    if let Some(id) = id_segment("auth/keys/") {
        return Some(Key(id));
    }
    if let Some(id) = rest
        .strip_prefix("auth/admin/users/")
        .and_then(|rest| rest.strip_suffix("/keys/"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        return Some(AdminUserKeys(id.to_string()));
    }
    // "restore" alone is not a user id.
    id_segment("auth/admin/users/")
        .filter(|id| id != "restore")
        .map(AdminDetail)
}

impl Endpoint {
    /// The methods the view implements, in DRF's `Allow` order (OPTIONS always last).
    pub fn methods(&self) -> &'static [&'static str] {
        use Endpoint::*;
        match self {
            TokenObtain | TokenRefresh | TokenVerify | Register | Logout | PasswordReset
            | PasswordResetConfirm | EmailVerify | EmailVerifyResend => &["POST", "OPTIONS"],
            Profile => &["GET", "PUT", "PATCH", "HEAD", "OPTIONS"],
            PasswordChange | AdminRestore(_) => &["PUT", "PATCH", "OPTIONS"],
            ProfileDelete => &["DELETE", "OPTIONS"],
            AdminDetail(_) => &["GET", "PATCH", "HEAD", "OPTIONS"],
            AdminList | AdminAudit | Schema | Jwks | Sessions => &["GET", "HEAD", "OPTIONS"],
            Session | Totp => &["POST", "DELETE", "OPTIONS"],
            SessionEnd(_) => &["DELETE", "OPTIONS"],
            SessionsRevokeOthers | TotpConfirm | RecoveryCodes | AdminServiceAccounts => {
                &["POST", "OPTIONS"]
            }
            Keys | AdminUserKeys(_) => &["GET", "POST", "HEAD", "OPTIONS"],
            Key(_) => &["DELETE", "OPTIONS"],
        }
    }

    pub fn allow_header(&self) -> String {
        self.methods().join(", ")
    }

    /// simplejwt's token views have no authentication classes; every other view checks an
    /// `Authorization` header whenever one is sent.
    pub fn authenticates(&self) -> bool {
        !matches!(
            self,
            Endpoint::TokenObtain
                | Endpoint::TokenRefresh
                | Endpoint::TokenVerify
                | Endpoint::Schema
                | Endpoint::Jwks
        )
    }

    pub fn permission(&self) -> Permission {
        use Endpoint::*;
        match self {
            TokenObtain | TokenRefresh | TokenVerify | Register | Logout | Schema | Jwks
            | PasswordReset | PasswordResetConfirm | EmailVerify | EmailVerifyResend | Session => {
                Permission::AllowAny
            }
            Profile | PasswordChange | ProfileDelete | Sessions | SessionEnd(_)
            | SessionsRevokeOthers | Totp | TotpConfirm | RecoveryCodes | Keys | Key(_) => {
                Permission::Authenticated
            }
            AdminList | AdminDetail(_) | AdminRestore(_) | AdminAudit | AdminUserKeys(_)
            | AdminServiceAccounts => Permission::Staff,
        }
    }

    /// DRF's view names, for the OPTIONS body.
    pub fn name(&self) -> &'static str {
        use Endpoint::*;
        match self {
            TokenObtain => "Token Obtain Pair",
            TokenRefresh => "Token Refresh",
            TokenVerify => "Token Verify",
            Register => "Register",
            Logout => "Logout",
            Profile => "Profile",
            PasswordChange => "Change Password",
            ProfileDelete => "Soft Delete Account",
            AdminList => "Admin User List",
            AdminDetail(_) => "Admin User Detail",
            AdminRestore(_) => "Admin Restore User",
            AdminAudit => "Admin Audit Log",
            Schema => "Schema",
            Jwks => "JWKS",
            PasswordReset => "Reset Password",
            PasswordResetConfirm => "Reset Password Confirm",
            EmailVerify => "Verify Email",
            EmailVerifyResend => "Resend Verification Email",
            Session => "Session",
            Sessions => "Sessions",
            SessionEnd(_) => "Session End",
            SessionsRevokeOthers => "Sessions Revoke Others",
            Totp => "Two-Factor TOTP",
            TotpConfirm => "Two-Factor TOTP Confirm",
            RecoveryCodes => "Two-Factor Recovery Codes",
            Keys => "API Keys",
            Key(_) => "API Key",
            AdminUserKeys(_) => "Admin User API Keys",
            AdminServiceAccounts => "Admin Service Accounts",
        }
    }

    /// The low-cardinality label for metrics and logs.
    pub fn label(&self) -> &'static str {
        use Endpoint::*;
        match self {
            TokenObtain => "token",
            TokenRefresh => "token_refresh",
            TokenVerify => "token_verify",
            Register => "register",
            Logout => "logout",
            Profile => "profile",
            PasswordChange => "password_change",
            ProfileDelete => "profile_delete",
            AdminList => "admin_users",
            AdminDetail(_) => "admin_user_detail",
            AdminRestore(_) => "admin_user_restore",
            AdminAudit => "admin_audit",
            Schema => "schema",
            Jwks => "jwks",
            PasswordReset => "password_reset",
            PasswordResetConfirm => "password_reset_confirm",
            EmailVerify => "email_verify",
            EmailVerifyResend => "email_verify_resend",
            Session => "session",
            Sessions => "sessions",
            SessionEnd(_) => "session_end",
            SessionsRevokeOthers => "sessions_revoke_others",
            Totp => "2fa_totp",
            TotpConfirm => "2fa_totp_confirm",
            RecoveryCodes => "2fa_recovery_codes",
            Keys => "keys",
            Key(_) => "key",
            AdminUserKeys(_) => "admin_user_keys",
            AdminServiceAccounts => "admin_service_accounts",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "/api/";

    #[test]
    fn escaped_paths_are_recognised() {
        for bad in [
            "/public/..%2fsvc/x",
            "/public/..%2Fsvc/x",
            "/public/%2e%2e%2fsvc/x",
            "/public/..%5csvc/x",
            "/public/..\\svc/x",
            "/public/%252e%252e/svc/x",
            "/public/%252F",
            "/public/%255C",
            "/a%2F",
        ] {
            assert!(is_escaped(bad), "{bad}");
        }
        for fine in [
            "/",
            "/public/page",
            "/public/%2e%2e/svc",
            "/files/100%25",
            "/caf%C3%A9",
            "/a.b/c..d/",
        ] {
            assert!(!is_escaped(fine), "{fine}");
        }
    }

    #[test]
    fn the_shortcut_for_normal_paths_changes_nothing() {
        let paths = [
            "/",
            "/a",
            "/a/",
            "/a/b/c",
            "/a.b/c..d/.e/",
            "/api/auth/profile/",
            "/x?y",
            "/é/ü",
            "/a/./b",
            "/a/../b",
            "/..",
            "/.",
            "//a",
            "/a//",
            "/%61",
            "/a%2Fb",
            "",
            "a/b",
            "*",
            "/a/b/..",
            "/a/.../b",
        ];
        for p in paths {
            assert_eq!(normalize_path(p), normalize_slow(p), "{p:?}");
        }
        assert!(is_normal("/api/auth/profile/") && !is_normal("/a/../b"));
    }

    #[test]
    fn spellings_of_owned_paths_normalize_to_them() {
        assert_eq!(normalize_path("/api/%61uth/profile/"), "/api/auth/profile/");
        assert_eq!(normalize_path("//api//auth/profile/"), "/api/auth/profile/");
        assert_eq!(
            normalize_path("/x/../api/./auth/profile/"),
            "/api/auth/profile/"
        );
        assert_eq!(
            normalize_path("/api/auth/admin/users/%31/"),
            "/api/auth/admin/users/1/"
        );
        assert_eq!(normalize_path("/a%2Fb/%00"), "/a%2Fb/%00");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/a/."), "/a/");
        assert_eq!(normalize_path("/x%"), "/x%");
        assert_eq!(normalize_path("/x%4"), "/x%4");
        assert_eq!(normalize_path("/ü/%7e"), "/ü/~");
    }

    #[test]
    fn known_paths() {
        assert_eq!(route("/api/token/", API), Route::Api(Endpoint::TokenObtain));
        assert_eq!(
            route("/api/auth/admin/users/restore/7/", API),
            Route::Api(Endpoint::AdminRestore("7".into()))
        );
        assert_eq!(
            route("/api/auth/admin/users/abc/", API),
            Route::Api(Endpoint::AdminDetail("abc".into()))
        );
        assert_eq!(
            route("/api/auth/admin/users/restore/", API),
            Route::NotFound
        );
        assert_eq!(
            route("/api/auth/admin/audit/", API),
            Route::Api(Endpoint::AdminAudit)
        );
        assert_eq!(
            route("/api/auth/admin/audit", API),
            Route::Redirect("/api/auth/admin/audit/".into())
        );
    }

    #[test]
    fn the_key_paths_of_spec_19() {
        use Endpoint::*;
        let at = |p: &str| route(p, API);
        assert_eq!(at("/api/auth/keys/"), Route::Api(Keys));
        assert_eq!(at("/api/auth/keys/ab12/"), Route::Api(Key("ab12".into())));
        assert_eq!(
            at("/api/auth/keys"),
            Route::Redirect("/api/auth/keys/".into())
        );
        assert_eq!(at("/api/auth/keys/a/b/"), Route::NotFound);
        assert_eq!(
            at("/api/auth/admin/users/7/keys/"),
            Route::Api(AdminUserKeys("7".into()))
        );
        assert_eq!(
            at("/api/auth/admin/users/7/keys"),
            Route::Redirect("/api/auth/admin/users/7/keys/".into())
        );
        assert_eq!(at("/api/auth/admin/users//keys/"), Route::NotFound);
        assert_eq!(
            at("/api/auth/admin/service-accounts/"),
            Route::Api(AdminServiceAccounts)
        );
        assert_eq!(Keys.permission(), Permission::Authenticated);
        assert_eq!(Key("a".into()).permission(), Permission::Authenticated);
        assert_eq!(AdminUserKeys("7".into()).permission(), Permission::Staff);
        assert_eq!(AdminServiceAccounts.permission(), Permission::Staff);
        assert_eq!(Key("a".into()).allow_header(), "DELETE, OPTIONS");
        assert_eq!(Keys.allow_header(), "GET, POST, HEAD, OPTIONS");
    }

    #[test]
    fn missing_slash_redirects_only_to_known_paths() {
        assert_eq!(
            route("/api/token", API),
            Route::Redirect("/api/token/".into())
        );
        assert_eq!(
            route("/api/auth/profile/password", API),
            Route::Redirect("/api/auth/profile/password/".into())
        );
        assert_eq!(route("/api/auth/nope", API), Route::NotFound);
        assert_eq!(route("/api/authx", API), Route::NotOurs);
    }

    #[test]
    fn owned_prefixes_never_reach_the_proxy() {
        assert_eq!(route("/api/auth/", API), Route::NotFound);
        assert_eq!(route("/api/token/other/thing", API), Route::NotFound);
        assert_eq!(route("/api/users/", API), Route::NotOurs);
        assert_eq!(route("/", API), Route::NotOurs);
    }

    #[test]
    fn the_api_moves_with_its_prefix() {
        assert_eq!(
            route("/gh/v1/token/", "/gh/v1/"),
            Route::Api(Endpoint::TokenObtain)
        );
        assert_eq!(
            route("/gh/v1/auth/profile", "/gh/v1/"),
            Route::Redirect("/gh/v1/auth/profile/".into())
        );
        assert_eq!(route("/gh/v1/auth/x/", "/gh/v1/"), Route::NotFound);
        assert_eq!(route("/api/token/", "/gh/v1/"), Route::NotOurs);
        assert_eq!(
            route("/.well-known/jwks.json", "/gh/v1/"),
            Route::Api(Endpoint::Jwks)
        );
        assert_eq!(route("/token/", "/"), Route::Api(Endpoint::TokenObtain));
        assert_eq!(route("/orders/", "/"), Route::NotOurs);
    }

    #[test]
    fn allow_headers_follow_drf_order() {
        assert_eq!(
            Endpoint::Profile.allow_header(),
            "GET, PUT, PATCH, HEAD, OPTIONS"
        );
        assert_eq!(Endpoint::TokenObtain.allow_header(), "POST, OPTIONS");
        assert_eq!(
            Endpoint::AdminDetail("1".into()).allow_header(),
            "GET, PATCH, HEAD, OPTIONS"
        );
    }
}
