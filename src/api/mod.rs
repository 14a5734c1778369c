//! The user API, answered by gatehouse itself: a request value in, a response value out, in
//! DRF's order (authentication, permission, method, body, validation). No sockets here.

pub mod admin;
pub mod audit;
pub mod body;
pub mod keys;
pub mod mail;
pub mod mfa;
pub mod router;
pub mod sessions;
pub mod tokens;
pub mod users;

use crate::app::App;
use crate::auth::{Identity, Requirement};
use crate::error::ApiError;
use crate::response::Response;
use bytes::Bytes;
use router::{Endpoint, Permission, Route};
use serde_json::{json, Map, Value};

/// The OpenAPI 3 document of the user API, kept in the repository beside the code, with the
/// paths under the default `[api] prefix` (`/api/`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The OpenAPI document with its paths under `prefix`.
pub fn openapi(prefix: &str) -> std::borrow::Cow<'static, str> {
    if prefix == "/api/" {
        return OPENAPI.into();
    }
    OPENAPI.replace("\"/api/", &format!("\"{prefix}")).into()
}

/// A user-API request, already read from the wire (body capped by the gateway).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// For absolute URLs in pagination links.
    pub host: String,
    /// The request's headers as sent: the credential step reads its credentials from them.
    pub headers: http::HeaderMap,
    /// `X-Request-Id` as the gateway kept or made it (also returned to the client).
    pub request_id: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The peer, or the X-Forwarded-For hop chosen by `trusted_proxies`: for throttling.
    pub client_ip: Option<std::net::IpAddr>,
    /// It came over TLS (its own origin is https).
    pub secure: bool,
}

impl Request {
    /// The body as DRF's `request.data`.
    pub fn data(&self) -> Result<Map<String, Value>, ApiError> {
        body::parse(self.content_type.as_deref(), &self.body)
    }

    /// The `User-Agent` the client sent, if it is text.
    pub fn user_agent(&self) -> Option<&str> {
        self.headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
    }

    /// The last value of a query parameter, percent-decoded (Django's `QueryDict.get`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .filter(|(k, _)| k == name)
            .last()
            .map(|(_, v)| v.into_owned())
    }
}

/// What a handler sees.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub req: &'a Request,
    pub identity: Option<Identity>,
}

impl Ctx<'_> {
    /// The authenticated caller; permission checks ran before any handler that calls this.
    pub fn caller(&self) -> Result<&Identity, ApiError> {
        self.identity.as_ref().ok_or(ApiError::NotAuthenticated)
    }
}

/// One answered request: the response, the endpoint label (metrics, logs) and the caller.
pub struct Handled {
    pub response: Response,
    pub endpoint: &'static str,
    pub user_id: Option<u64>,
}

/// Answers one user-API request, already routed (`router::route` on the normalized path).
pub async fn handle(app: &App, route: Route, req: &Request) -> Handled {
    let mut user_id = None;
    let (response, endpoint) = match route {
        Route::Api(endpoint) => {
            let mut resp = match dispatch(app, &endpoint, req, &mut user_id).await {
                Ok(r) => r,
                Err(e) => e.to_response(),
            };
            resp.add_header("Allow", endpoint.allow_header());
            resp.add_header("Vary", "Accept");
            resp.head_only = req.method == "HEAD";
            (resp, endpoint.label())
        }
        Route::Redirect(to) => {
            let location = if req.query.is_empty() {
                to
            } else {
                format!("{to}?{}", req.query)
            };
            let body = json!({ "detail": format!("Moved permanently to {location}.") });
            let resp = Response::json(308, &body).with_header("Location", location);
            (resp, "redirect")
        }
        Route::NotFound | Route::NotOurs => (ApiError::NotFound.to_response(), "not_found"),
    };
    Handled {
        response,
        endpoint,
        user_id,
    }
}

/// Django's CSRF check of a session-authenticated request (safe methods pass).
fn session_csrf(app: &App, req: &Request) -> Result<(), crate::auth::csrf::Refused> {
    use crate::auth::csrf;
    let method = http::Method::from_bytes(req.method.as_bytes()).unwrap_or(http::Method::POST);
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let own_origin = app.config.web.own_origin(req.secure, &req.headers);
    let form = if method == http::Method::POST {
        req.data().ok()
    } else {
        None
    };
    csrf::check(
        &csrf::CsrfInput {
            method: &method,
            secure: req.secure,
            own_origin: &own_origin,
            origin: header("origin"),
            referer: header("referer"),
            cookie: crate::cookies::get(&req.headers, csrf::COOKIE),
            form_token: form
                .as_ref()
                .and_then(|f| f.get(csrf::FORM_FIELD))
                .and_then(Value::as_str),
            header_token: header(csrf::HEADER),
        },
        &app.config.web.trusted_origins,
    )
}

async fn dispatch(
    app: &App,
    endpoint: &Endpoint,
    req: &Request,
    user_id: &mut Option<u64>,
) -> Result<Response, ApiError> {
    if req.method == "OPTIONS" {
        return Ok(options(endpoint));
    }
    let identity = if endpoint.authenticates() {
        let need = match endpoint.permission() {
            Permission::AllowAny => Requirement::Anyone,
            Permission::Authenticated => Requirement::Authenticated,
            Permission::Staff => Requirement::Staff,
        };
        app.authenticator.check(&req.headers, need).await?
    } else {
        None
    };
    *user_id = identity.as_ref().map(|i| i.user_id);
    // `[admin_api] require_mfa`: the admin endpoints need a sign-in with a second factor.
    if endpoint.permission() == Permission::Staff
        && app.config.admin_api.require_mfa
        && identity.as_ref().is_some_and(|who| !who.mfa)
    {
        return Err(ApiError::MfaRequired);
    }
    // DRF's SessionAuthentication: a request the session cookie authenticates passes
    // Django's CSRF check on unsafe methods (bearer-authenticated ones are not checked).
    if identity
        .as_ref()
        .is_some_and(|who| who.via == crate::auth::Via::Session)
    {
        if let Err(refused) = session_csrf(app, req) {
            let actor = crate::accounts::Actor::of_request(
                identity.as_ref(),
                req.client_ip,
                &req.request_id,
                req.user_agent(),
            );
            crate::accounts::csrf_refused(app, &actor, &refused.0, &req.path).await;
            return Ok(Response::json_text(
                403,
                crate::auth::csrf::json_detail(&refused),
            ));
        }
    }
    if !endpoint.methods().contains(&req.method.as_str()) {
        return Err(ApiError::MethodNotAllowed(req.method.clone()));
    }
    let ctx = Ctx { app, req, identity };
    let partial = req.method == "PATCH";
    match endpoint {
        Endpoint::TokenObtain => tokens::obtain(&ctx).await,
        Endpoint::TokenRefresh => tokens::refresh(&ctx).await,
        Endpoint::TokenVerify => tokens::verify(&ctx).await,
        Endpoint::Logout => tokens::logout(&ctx).await,
        Endpoint::Register => users::register(&ctx).await,
        Endpoint::Profile if req.method == "GET" || req.method == "HEAD" => {
            users::profile(&ctx).await
        }
        Endpoint::Profile => users::update_profile(&ctx, partial).await,
        Endpoint::PasswordChange => users::change_password(&ctx).await,
        Endpoint::ProfileDelete => users::soft_delete(&ctx).await,
        Endpoint::AdminList => admin::list(&ctx).await,
        Endpoint::AdminDetail(id) if partial => admin::update(&ctx, id).await,
        Endpoint::AdminDetail(id) => admin::detail(&ctx, id).await,
        Endpoint::AdminRestore(id) => admin::restore(&ctx, id).await,
        Endpoint::AdminAudit => audit::list(&ctx).await,
        Endpoint::PasswordReset => mail::reset(&ctx).await,
        Endpoint::PasswordResetConfirm => mail::reset_confirm(&ctx).await,
        Endpoint::EmailVerify => mail::verify(&ctx).await,
        Endpoint::EmailVerifyResend => mail::resend(&ctx).await,
        Endpoint::Session => sessions::session(&ctx).await,
        Endpoint::Sessions => sessions::list(&ctx).await,
        Endpoint::SessionEnd(id) => sessions::end(&ctx, id).await,
        Endpoint::SessionsRevokeOthers => sessions::revoke_others(&ctx).await,
        Endpoint::Totp if req.method == "DELETE" => mfa::disable(&ctx).await,
        Endpoint::Totp => mfa::enrol(&ctx).await,
        Endpoint::TotpConfirm => mfa::confirm(&ctx).await,
        Endpoint::RecoveryCodes => mfa::recovery_codes(&ctx).await,
        Endpoint::Keys => keys::own(&ctx).await,
        Endpoint::Key(id) => keys::revoke(&ctx, id).await,
        Endpoint::AdminUserKeys(id) => keys::admin_user(&ctx, id).await,
        Endpoint::AdminServiceAccounts => keys::service_account(&ctx).await,
        Endpoint::Schema => Ok(match openapi(&app.config.api.prefix) {
            std::borrow::Cow::Borrowed(document) => Response::json_text(200, document),
            std::borrow::Cow::Owned(document) => Response::json_text(200, document),
        }),
        Endpoint::Jwks => match app.tokens.jwks_document() {
            Some(document) => Ok(Response::json_text(200, document.clone())),
            None => Err(ApiError::NotFound),
        },
    }
}

/// DRF's SimpleMetadata answer to OPTIONS.
fn options(endpoint: &Endpoint) -> Response {
    Response::json(
        200,
        &json!({
            "name": endpoint.name(),
            "description": "",
            "renders": ["application/json"],
            "parses": ["application/json", "application/x-www-form-urlencoded"],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_paths_move_with_the_prefix() {
        let moved: Value = serde_json::from_str(&openapi("/gh/")).expect("still JSON");
        let paths = moved["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/gh/token/") && paths.contains_key("/gh/auth/profile/"));
        assert!(paths.contains_key("/.well-known/jwks.json"));
        assert!(!paths.keys().any(|p| p.starts_with("/api/")));
        assert!(matches!(openapi("/api/"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn query_param_takes_the_last_value_decoded() {
        let req = Request {
            query: "search=a%40b&page=1&page=2".into(),
            ..Request::default()
        };
        assert_eq!(req.query_param("search").as_deref(), Some("a@b"));
        assert_eq!(req.query_param("page").as_deref(), Some("2"));
        assert_eq!(req.query_param("nope"), None);
    }
}
