//! The user API's URL table: which endpoint a path is, what it allows, and who may call it.
//! gatehouse owns `/api/auth/` and `/api/token/`: nothing under them is ever forwarded.

/// Prefixes answered locally, whatever the routes say.
pub const OWNED_PREFIXES: &[&str] = &["/api/auth/", "/api/token/"];

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
    /// The OpenAPI document of this API.
    Schema,
    /// The public signing keys (asymmetric algorithms).
    Jwks,
    /// djoser's reset and verification views (SPEC §10).
    PasswordReset,
    PasswordResetConfirm,
    EmailVerify,
    EmailVerifyResend,
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

/// Routes a path already passed through `normalize_path`.
pub fn route(path: &str) -> Route {
    if let Some(e) = endpoint(path) {
        return Route::Api(e);
    }
    if !path.ends_with('/') {
        let slashed = format!("{path}/");
        if endpoint(&slashed).is_some() {
            return Route::Redirect(slashed);
        }
    }
    if OWNED_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return Route::NotFound;
    }
    Route::NotOurs
}

fn endpoint(path: &str) -> Option<Endpoint> {
    use Endpoint::*;
    let fixed = match path {
        "/api/token/" => Some(TokenObtain),
        "/api/token/refresh/" => Some(TokenRefresh),
        "/api/token/verify/" => Some(TokenVerify),
        "/api/auth/register/" => Some(Register),
        "/api/auth/logout/" => Some(Logout),
        "/api/auth/profile/" => Some(Profile),
        "/api/auth/profile/password/" => Some(PasswordChange),
        "/api/auth/profile/delete/" => Some(ProfileDelete),
        "/api/auth/admin/users/" => Some(AdminList),
        "/api/schema/" => Some(Schema),
        "/.well-known/jwks.json" => Some(Jwks),
        "/api/auth/password/reset/" => Some(PasswordReset),
        "/api/auth/password/reset/confirm/" => Some(PasswordResetConfirm),
        "/api/auth/email/verify/" => Some(EmailVerify),
        "/api/auth/email/verify/resend/" => Some(EmailVerifyResend),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    let id_segment = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(str::to_string)
    };
    if let Some(id) = id_segment("/api/auth/admin/users/restore/") {
        return Some(AdminRestore(id));
    }
    // "restore" alone is not a user id.
    id_segment("/api/auth/admin/users/")
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
            AdminList | Schema | Jwks => &["GET", "HEAD", "OPTIONS"],
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
            | PasswordReset | PasswordResetConfirm | EmailVerify | EmailVerifyResend => {
                Permission::AllowAny
            }
            Profile | PasswordChange | ProfileDelete => Permission::Authenticated,
            AdminList | AdminDetail(_) | AdminRestore(_) => Permission::Staff,
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
            Schema => "Schema",
            Jwks => "JWKS",
            PasswordReset => "Reset Password",
            PasswordResetConfirm => "Reset Password Confirm",
            EmailVerify => "Verify Email",
            EmailVerifyResend => "Resend Verification Email",
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
            Schema => "schema",
            Jwks => "jwks",
            PasswordReset => "password_reset",
            PasswordResetConfirm => "password_reset_confirm",
            EmailVerify => "email_verify",
            EmailVerifyResend => "email_verify_resend",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(route("/api/token/"), Route::Api(Endpoint::TokenObtain));
        assert_eq!(
            route("/api/auth/admin/users/restore/7/"),
            Route::Api(Endpoint::AdminRestore("7".into()))
        );
        assert_eq!(
            route("/api/auth/admin/users/abc/"),
            Route::Api(Endpoint::AdminDetail("abc".into()))
        );
        assert_eq!(route("/api/auth/admin/users/restore/"), Route::NotFound);
    }

    #[test]
    fn missing_slash_redirects_only_to_known_paths() {
        assert_eq!(route("/api/token"), Route::Redirect("/api/token/".into()));
        assert_eq!(
            route("/api/auth/profile/password"),
            Route::Redirect("/api/auth/profile/password/".into())
        );
        assert_eq!(route("/api/auth/nope"), Route::NotFound);
        assert_eq!(route("/api/authx"), Route::NotOurs);
    }

    #[test]
    fn owned_prefixes_never_reach_the_proxy() {
        assert_eq!(route("/api/auth/"), Route::NotFound);
        assert_eq!(route("/api/token/other/thing"), Route::NotFound);
        assert_eq!(route("/api/users/"), Route::NotOurs);
        assert_eq!(route("/"), Route::NotOurs);
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
