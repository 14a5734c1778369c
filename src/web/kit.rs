//! What every page handler shares (SPEC §15): the request as a page sees it, Django's CSRF
//! state of a form page, who is signed in by the session cookie, the acting user, where a
//! sign-in may go next, and the frame and rendering every page uses. `pages` (the account
//! pages), `second_factor` (the code page) and the admin console (`crate::console`) build on
//! it; it names none of them.

use super::render;
use super::{next, page};
use crate::accounts::{self, Actor, Which};
use crate::api::Request;
use crate::app::App;
use crate::auth::csrf;
use crate::auth::{Identity, Requirement, Via};
use crate::cookies;
use crate::error::ApiError;
use crate::response::Response;
use serde_json::{Map, Value};

/// What one page request carries beyond the request itself.
pub struct PageRequest<'a> {
    pub req: &'a Request,
    /// The path below the prefix ("" is the account page).
    pub rest: &'a str,
    pub secure: bool,
    /// "scheme://host" as the browser addressed gatehouse.
    pub own_origin: &'a str,
    pub head_only: bool,
}

/// The frame every page shares.
pub(crate) struct Frame<'a> {
    pub brand: &'a str,
    pub prefix: &'a str,
    pub custom_css: bool,
}

pub(crate) fn frame(app: &App) -> Frame<'_> {
    let web = &app.config.web;
    Frame {
        brand: &web.brand_name,
        prefix: &web.prefix,
        custom_css: !web.css_file.is_empty(),
    }
}

/// A rendered page, or the plain 500 page when a template fails.
pub(crate) fn rendered(status: u16, html: Result<String, render::RenderError>) -> Response {
    match html {
        Ok(html) => page(status, html),
        Err(e) => {
            log::error!("pages: {e}");
            page(
                500,
                "<!doctype html><title>Server error</title><h1>Server error</h1>".into(),
            )
        }
    }
}

/// Django's CSRF cookie for this response: the one the browser sent if well formed, else a
/// new secret (set on the way out), rotated at sign-in.
pub(crate) struct Csrf {
    secret: String,
    /// The browser does not hold `secret` yet.
    fresh: bool,
}

impl Csrf {
    pub(crate) fn of(_app: &App, req: &Request) -> Csrf {
        match crate::cookies::get(&req.headers, csrf::COOKIE).and_then(csrf::cookie_secret) {
            Some(secret) => Csrf {
                secret,
                fresh: false,
            },
            None => Csrf {
                secret: csrf::new_secret(),
                fresh: true,
            },
        }
    }

    /// A masked token for a form on this response.
    pub(crate) fn token(&self) -> String {
        csrf::mask(&self.secret)
    }

    pub(crate) fn rotate(&mut self) {
        self.secret = csrf::new_secret();
        self.fresh = true;
    }

    pub(crate) fn check(&self, app: &App, p: &PageRequest<'_>) -> Result<(), csrf::Refused> {
        let form = p.req.data().ok();
        let form_token = form
            .as_ref()
            .and_then(|f| f.get(csrf::FORM_FIELD))
            .and_then(Value::as_str);
        let header = |name: &str| p.req.headers.get(name).and_then(|v| v.to_str().ok());
        let method =
            http::Method::from_bytes(p.req.method.as_bytes()).unwrap_or(http::Method::POST);
        let sent = crate::cookies::get(&p.req.headers, csrf::COOKIE);
        csrf::check(
            &csrf::CsrfInput {
                method: &method,
                secure: p.secure,
                own_origin: p.own_origin,
                origin: header("origin"),
                referer: header("referer"),
                cookie: sent,
                form_token,
                header_token: header(csrf::HEADER),
            },
            &app.config.web.trusted_origins,
        )
    }

    pub(crate) fn set_cookie(&self, app: &App, mut resp: Response) -> Response {
        if self.fresh {
            resp.add_header(
                "Set-Cookie",
                cookies::csrf_cookie(&app.config.web, &self.secret),
            );
        }
        resp
    }
}

/// The sign-in behind `who`'s session is younger than `seconds`.
pub(crate) async fn signed_in_within(app: &App, who: &Identity, seconds: u64) -> bool {
    match who.sign_in.as_deref() {
        Some(id) => matches!(
            app.store.get_session(id).await,
            Ok(Some(s)) if crate::clock::now().saturating_sub(s.created) < seconds
        ),
        None => false,
    }
}

/// The signed-in caller of a page, by the session cookie only (pages ignore bearer tokens).
pub(crate) async fn signed_in(app: &App, req: &Request) -> Option<Identity> {
    let cookie = app.authenticator.session_cookie()?;
    let value = crate::cookies::get(&req.headers, &cookie.name)?;
    session_identity(app, value).await
}

/// Who the session cookie value `value` signs in, if anyone.
pub(crate) async fn session_identity(app: &App, value: &str) -> Option<Identity> {
    let cookie = app.authenticator.session_cookie()?;
    let mut only_cookie = http::HeaderMap::new();
    let pair = format!("{}={value}", cookie.name);
    only_cookie.insert(
        http::header::COOKIE,
        http::HeaderValue::from_str(&pair).ok()?,
    );
    match app
        .authenticator
        .check(&only_cookie, Requirement::Authenticated)
        .await
    {
        Ok(Some(who)) if who.via == Via::Session => Some(who),
        _ => None,
    }
}

pub(crate) fn actor(p: &PageRequest<'_>, who: Option<&Identity>) -> Actor {
    Actor::of_request(who, p.req.client_ip, &p.req.request_id, p.req.user_agent())
}

/// Where to go after signing in: a safe `next`, else the account page.
/// The host a sign-in page was asked on counts as allowed, as Django's
/// `url_has_allowed_host_and_scheme` allows the request's own host.
pub(crate) fn after_sign_in(app: &App, p: &PageRequest<'_>, next_value: &str) -> String {
    safe_target(app, p, next_value).unwrap_or_else(|| app.config.web.prefix.clone())
}

/// `next_value` when it is safe to send a browser to (SPEC §15), else `None`.
pub(crate) fn safe_target(app: &App, p: &PageRequest<'_>, next_value: &str) -> Option<String> {
    let web = &app.config.web;
    let mut allowed = web.allowed_redirect_hosts.clone();
    if let Some(host) = host_of(p.own_origin) {
        allowed.push(host.to_string());
    }
    let rules = next::NextRules {
        allowed_hosts: &allowed,
        cookie_domain: web.cookie_domain(),
    };
    next::safe_next(next_value, &rules)
}

/// The host name of "scheme://host[:port]" (no port; an IPv6 literal keeps its brackets).
pub(crate) fn host_of(origin: &str) -> Option<&str> {
    let authority = origin.split_once("://")?.1;
    let host = match authority.strip_prefix('[') {
        Some(v6) => &authority[..v6.find(']')? + 2],
        None => authority.split(':').next()?,
    };
    Some(host).filter(|h| !h.is_empty())
}

/// An error's DRF `detail` text.
pub(crate) fn detail(e: &ApiError) -> String {
    let body = e.to_response().body_json();
    body.get("detail").and_then(Value::as_str).map_or_else(
        || "Something went wrong. Please try again.".to_string(),
        str::to_string,
    )
}

pub(crate) fn rendered_error(app: &App, e: &ApiError) -> Response {
    log::warn!("pages: {}", detail(e));
    let f = frame(app);
    rendered(
        e.to_response().status.max(500),
        render::server_error(&render::Plain {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: "",
            signed_in_as: None,
        }),
    )
}

/// The account page's second-factor section (its `id`, the set-up link's fragment).
pub(crate) const TWO_FACTOR_SECTION: &str = "two-factor";

/// The sign-in page again, keeping `next` (when there is one), with `notice` said above it.
pub(crate) fn sign_in_again(
    prefix: &str,
    next_value: &str,
    notice: render::SignInNotice,
) -> String {
    let flag = format!("{}={}", render::NOTICE_PARAM, notice.as_str());
    match next_value {
        "" => format!("{prefix}{}?{flag}", next::LOGIN_PAGE),
        target => format!("{}&{flag}", next::login_url(None, prefix, target)),
    }
}

/// Ends the session a browser held before it signed in again (whoever it belonged to).
pub(crate) async fn end_previous(app: &App, p: &PageRequest<'_>, before: Option<&Identity>) {
    let Some(who) = before else { return };
    let Some(id) = who.sign_in.as_deref() else {
        return;
    };
    if let Err(e) = accounts::end_sessions(app, &actor(p, Some(who)), Which::Current(id)).await {
        log::warn!(
            "pages: the previous session of a new sign-in did not end: {}",
            detail(&e)
        );
    }
}

/// A posted form's field as text ("" when it was not sent).
pub(crate) fn field(data: &Map<String, Value>, name: &str) -> String {
    data.get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// DRF's field errors of a refused operation.
pub(crate) fn field_errors(e: &ApiError) -> render::FieldErrors {
    let body = e.to_response().body_json();
    let mut errors = render::FieldErrors::new();
    if let Some(map) = body.as_object() {
        for (k, v) in map {
            let messages = match v {
                Value::Array(items) => items
                    .iter()
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            errors.insert(k.clone(), messages);
        }
    }
    errors
}
