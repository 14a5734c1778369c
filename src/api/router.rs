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
            TokenObtain | TokenRefresh | TokenVerify | Register | Logout => &["POST", "OPTIONS"],
            Profile => &["GET", "PUT", "PATCH", "HEAD", "OPTIONS"],
            PasswordChange | AdminRestore(_) => &["PUT", "PATCH", "OPTIONS"],
            ProfileDelete => &["DELETE", "OPTIONS"],
            AdminList | AdminDetail(_) | Schema | Jwks => &["GET", "HEAD", "OPTIONS"],
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
            TokenObtain | TokenRefresh | TokenVerify | Register | Logout | Schema | Jwks => {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
