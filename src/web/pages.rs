//! The pages' request handling (SPEC §15): which page a path under the prefix is, the CSRF
//! check of every form, and the rendering of an `accounts` operation's outcome as HTML. No
//! page changes a user by itself: the operations do, as for the JSON API.

pub use super::kit::PageRequest;
use super::kit::{
    actor, after_sign_in, detail, end_previous, field, field_errors, frame, rendered,
    rendered_error, safe_target, session_identity, sign_in_again, signed_in, Csrf,
    TWO_FACTOR_SECTION,
};
use super::render::{self, AccountForm, FieldErrors, SessionKind, SessionRow, TwoFactor};
use super::{next, second_factor};
use crate::accounts::{self, Actor, Which};
use crate::app::App;
use crate::auth::Identity;
use crate::cookies;
use crate::error::{ApiError, OTP_INVALID};
use crate::response::Response;
use serde_json::{Map, Value};

/// A sign-in younger than this needs no password again for the sensitive forms.
const RECENT_SIGN_IN_SECONDS: u64 = 600;
const PASSWORDS_DIFFER: &str = "The two password fields didn't match.";
const PASSWORD_CHANGED: &str = "Your password was changed.";
const PROFILE_SAVED: &str = "Your profile was saved.";
const OTHERS_ENDED: &str = "Every other session was signed out.";
const SESSION_ENDED: &str = "That session was signed out.";
const PASSWORD_NEEDED: &str = "Enter your password to confirm.";
const DELETE_UNCONFIRMED: &str = "Tick the box to confirm that the account should be deleted.";
const KEY_MADE: &str = "Your API key was made. Copy it now: it will not be shown again.";
const KEY_REVOKED: &str = "That API key was revoked: it no longer works.";
const KEY_NOT_FOUND: &str = "That API key was not found; it may have been revoked already.";

/// What the account page shows once, in the answer to the POST that made it: recovery
/// codes, an API key; or the refused form's values, shown again.
#[derive(Clone, Copy, Default)]
struct Once<'a> {
    codes: &'a [String],
    key: Option<&'a str>,
    form: Option<&'a Map<String, Value>>,
}

impl<'a> Once<'a> {
    fn codes(codes: &'a [String]) -> Self {
        Once {
            codes,
            ..Once::default()
        }
    }
}

/// Answers a request for a page.
pub async fn handle(app: &App, p: &PageRequest<'_>) -> Response {
    let mut resp = route(app, p).await;
    resp.head_only = p.head_only;
    resp
}

async fn route(app: &App, p: &PageRequest<'_>) -> Response {
    let method = p.req.method.as_str();
    let get = matches!(method, "GET" | "HEAD");
    match (p.rest, get) {
        ("static/gatehouse.css", true) => stylesheet(render::STYLESHEET.as_bytes().to_vec()),
        ("static/custom.css", true) if !app.config.web.css_file.is_empty() => {
            match std::fs::read(&app.config.web.css_file) {
                Ok(css) => stylesheet(css),
                Err(e) => {
                    log::warn!("web.css_file {}: {e}", app.config.web.css_file);
                    not_found(app)
                }
            }
        }
        (rest, _) if is_form_page(app, rest) => {
            let mut csrf = Csrf::of(app, p.req);
            if !get {
                if let Err(refused) = csrf.check(app, p) {
                    // The path as the access log spells it: a mail link's token left out.
                    let path = loggable_path(&app.config.web.prefix, p.rest);
                    accounts::csrf_refused(app, &actor(p, None), &refused.0, &path).await;
                    return csrf_failure(app, &csrf, &refused.to_string());
                }
            }
            let resp = match (p.rest, get) {
                (next::SECOND_FACTOR_PAGE, _) => second_factor::page(app, p, &mut csrf).await,
                ("login/", true) => login_form(app, p, &csrf, None, "").await,
                ("login/", false) => login(app, p, &mut csrf).await,
                ("logout/", true) => logout_form(app, p, &csrf).await,
                ("logout/", false) => logout(app, p, &csrf).await,
                ("register/", true) => register_form(app, &csrf, &Map::new(), &FieldErrors::new()),
                ("register/", false) => register(app, p, &mut csrf).await,
                ("password/reset/", true) => reset_form(app, &csrf, "", false, &FieldErrors::new()),
                ("password/reset/", false) => reset_request(app, p, &csrf).await,
                (rest, _) if rest.starts_with(RESET_CONFIRM) => {
                    reset_confirm(app, p, &csrf, &rest[RESET_CONFIRM.len()..], get).await
                }
                (rest, _) if rest.starts_with(VERIFY) => {
                    verify(app, p, &csrf, &rest[VERIFY.len()..], get).await
                }
                (_, true) => {
                    let done = p.req.query_param("done");
                    let notice = done
                        .as_deref()
                        .filter(|d| *d == "password")
                        .map(|_| PASSWORD_CHANGED);
                    account(
                        app,
                        p,
                        &csrf,
                        notice,
                        None,
                        &FieldErrors::new(),
                        Once::default(),
                    )
                    .await
                }
                (_, false) => account_post(app, p, &mut csrf).await,
            };
            csrf.set_cookie(app, resp)
        }
        _ => not_found(app),
    }
}

const RESET_CONFIRM: &str = "password/reset/confirm/";
const VERIFY: &str = "email/verify/";
/// The last segment a reset link is moved to once its token is put aside.
const SET_PASSWORD: &str = "set-password";
/// The cookie holding a reset link's token between the link and the new password (so the
/// token never stays in the address bar, a `Referer` or a log), for this long.
const RESET_COOKIE: &str = "gatehouse_reset";
const RESET_COOKIE_SECONDS: u64 = 900;

/// The pages that carry forms (the CSRF cookie and check apply).
fn is_form_page(app: &App, rest: &str) -> bool {
    matches!(
        rest,
        "" | "login/" | next::SECOND_FACTOR_PAGE | "logout/" | "password/reset/"
    ) || (rest == "register/" && app.config.web.registration)
        || rest.starts_with(RESET_CONFIRM)
        || rest.starts_with(VERIFY)
}

/// The access log's spelling of a page path: the tokens of mail links left out.
pub fn loggable_path(prefix: &str, rest: &str) -> String {
    for secret in [RESET_CONFIRM, VERIFY] {
        if rest.starts_with(secret) {
            return format!("{prefix}{secret}...");
        }
    }
    format!("{prefix}{rest}")
}

fn stylesheet(css: Vec<u8>) -> Response {
    let mut resp = Response::html(200, css);
    resp.content_type = "text/css; charset=utf-8";
    resp.add_header("Cache-Control", "public, max-age=3600");
    resp.add_header("X-Content-Type-Options", "nosniff");
    resp
}

pub fn not_found(app: &App) -> Response {
    let f = frame(app);
    rendered(
        404,
        render::not_found(&render::Plain {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: "",
            signed_in_as: None,
        }),
    )
}

fn csrf_failure(app: &App, csrf: &Csrf, reason: &str) -> Response {
    let f = frame(app);
    let token = csrf.token();
    rendered(
        403,
        render::csrf_failure(&render::CsrfFailure {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: None,
            reason,
        }),
    )
}

async fn login_form(
    app: &App,
    p: &PageRequest<'_>,
    csrf: &Csrf,
    error: Option<&str>,
    username: &str,
) -> Response {
    let f = frame(app);
    let web = &app.config.web;
    let next_value = p.req.query_param("next").unwrap_or_default();
    let token = csrf.token();
    let who = signed_in(app, p.req).await;
    let notice = p
        .req
        .query_param(render::NOTICE_PARAM)
        .and_then(|n| render::SignInNotice::parse(&n))
        .map(render::SignInNotice::text);
    rendered(
        200,
        render::login(&render::SignIn {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: who.as_ref().map(|w| &*w.username),
            username,
            next: &next_value,
            remember_days: u32::try_from(web.remember_me_days).unwrap_or(u32::MAX),
            remember: false,
            registration: web.registration,
            error,
            notice,
        }),
    )
}

async fn login(app: &App, p: &PageRequest<'_>, csrf: &mut Csrf) -> Response {
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let text = |k: &str| field(&data, k);
    let remember = data.contains_key("remember");
    let next_value = text("next");
    let input = input_of(&data, &["username", "password"]);
    let before = signed_in(app, p.req).await;
    let second = accounts::SecondFactor::SecondPage;
    match accounts::sign_in_browser(app, &actor(p, None), &input, remember, second).await {
        // The password was right; the code comes on the second page, which the pending
        // step's cookie leads to.
        Ok(accounts::BrowserSignIn::NeedsCode(pending)) => {
            let web = &app.config.web;
            let target = after_sign_in(app, p, &next_value);
            let to = next::page_url(None, &web.prefix, next::SECOND_FACTOR_PAGE, &target);
            Response::redirect(303, to)
                .with_header("Set-Cookie", second_factor::pending_cookie(app, &pending))
        }
        Ok(accounts::BrowserSignIn::Started(done)) => {
            let (_user, started) = *done;
            // The session this browser held before ends (Django's login flushes it).
            end_previous(app, p, before.as_ref()).await;
            // Django rotates the CSRF secret at sign-in.
            csrf.rotate();
            // A new session id, whatever the browser held before (fixation).
            let set =
                cookies::session_cookie(&app.config.web, &started.cookie, started.session.remember);
            Response::redirect(302, after_sign_in(app, p, &next_value))
                .with_header("Set-Cookie", set)
        }
        Err(e) => {
            let message = match &e {
                ApiError::WrongCredentials | ApiError::Validation(_) => {
                    render::SIGN_IN_FAILED.to_string()
                }
                other => detail(other),
            };
            let mut resp = login_form(app, p, csrf, Some(&message), &text("username")).await;
            if message != render::SIGN_IN_FAILED {
                resp.status = e.to_response().status;
            }
            resp
        }
    }
}

async fn logout_form(app: &App, p: &PageRequest<'_>, csrf: &Csrf) -> Response {
    let f = frame(app);
    let token = csrf.token();
    let who = signed_in(app, p.req).await;
    rendered(
        200,
        render::logout(&render::SignOut {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: who.as_ref().map(|w| &*w.username),
            done: who.is_none(),
        }),
    )
}

async fn logout(app: &App, p: &PageRequest<'_>, csrf: &Csrf) -> Response {
    if let Some(who) = signed_in(app, p.req).await {
        if let Some(id) = who.sign_in.as_deref() {
            if let Err(e) =
                accounts::end_sessions(app, &actor(p, Some(&who)), Which::Current(id)).await
            {
                return rendered_error(app, &e);
            }
        }
    }
    let f = frame(app);
    let token = csrf.token();
    let mut resp = rendered(
        200,
        render::logout(&render::SignOut {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: None,
            done: true,
        }),
    );
    resp.add_header("Set-Cookie", cookies::clear_session_cookie(&app.config.web));
    resp
}

/// The account page, or the way to the sign-in page when nobody is signed in.
async fn account(
    app: &App,
    p: &PageRequest<'_>,
    csrf: &Csrf,
    notice: Option<&str>,
    failed: Option<AccountForm>,
    errors: &FieldErrors,
    once: Once<'_>,
) -> Response {
    let Some(who) = signed_in(app, p.req).await else {
        let web = &app.config.web;
        return Response::redirect(302, next::login_url(None, &web.prefix, &web.prefix));
    };
    account_of(app, p, &who, csrf, notice, failed, errors, once).await
}

/// The account page of `who`.
#[allow(clippy::too_many_arguments)]
async fn account_of(
    app: &App,
    p: &PageRequest<'_>,
    who: &Identity,
    csrf: &Csrf,
    notice: Option<&str>,
    failed: Option<AccountForm>,
    errors: &FieldErrors,
    once: Once<'_>,
) -> Response {
    let user = match app.store.get_user(who.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Response::redirect(302, format!("{}login/", app.config.web.prefix)),
        Err(e) => return rendered_error(app, &ApiError::from(e)),
    };
    let current = who.sign_in.as_deref();
    let devices = match accounts::devices(app, who.user_id, current).await {
        Ok(d) => d,
        Err(e) => return rendered_error(app, &e),
    };
    let recent = recent_sign_in(app, who).await;
    let (record, pending) = match two_factor_of(app, &user).await {
        Ok(found) => found,
        Err(e) => return rendered_error(app, &e),
    };
    let two_factor = match (&record, &pending) {
        (Some(m), _) => TwoFactor::On {
            since: m.since,
            recovery_left: m.recovery.len(),
        },
        (None, Some(e)) => TwoFactor::Pending {
            qr_svg: &e.qr_svg,
            secret: &e.secret,
        },
        (None, None) => TwoFactor::Off,
    };
    let keys = match accounts::keys::own_keys(app, &actor(p, Some(who))).await {
        Ok(k) => k,
        Err(e) => return rendered_error(app, &e),
    };
    let at = crate::clock::now();
    let kept = |name: &str| once.form.map_or_else(String::new, |d| field(d, name));
    let (key_name, key_expires) = match failed {
        Some(AccountForm::KeyMake) => (kept("name"), kept("expires_at")),
        _ => (String::new(), String::new()),
    };
    let chosen = match (failed, once.form) {
        (Some(AccountForm::KeyMake), Some(_)) => crate::api::body::form_list(&p.req.body, "groups")
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let max_days = app.config.apikeys.max_lifetime_days;
    let keys_section = render::KeysSection {
        rows: keys
            .iter()
            .map(|k| render::KeyRow {
                id: &k.id,
                name: &k.name,
                prefix: &k.prefix,
                created: k.created,
                expires_at: k.expires_at,
                last_used: k.last_used,
                groups: &k.groups,
                expired: k.expires_at <= at,
            })
            .collect(),
        new_key: once.key,
        groups: &user.groups,
        min_date: render::input_date(at.saturating_add(86_400)),
        max_date: render::input_date(at.saturating_add(max_days.saturating_mul(86_400))),
        name: &key_name,
        expires: &key_expires,
        chosen,
    };
    let next_value = account_next(app, p);
    let rows: Vec<SessionRow<'_>> = devices
        .iter()
        .map(|d| SessionRow {
            id: &d.id,
            kind: match d.kind {
                accounts::DeviceKind::Browser => SessionKind::Browser,
                accounts::DeviceKind::App => SessionKind::App,
            },
            created: d.created,
            last_seen: d.last_seen,
            address: &d.client_ip,
            user_agent: &d.user_agent,
            current: d.current,
        })
        .collect();
    let f = frame(app);
    let token = csrf.token();
    rendered(
        if failed.is_some() { 400 } else { 200 },
        render::account(&render::Account {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: Some(&user.username),
            notice,
            username: &user.username,
            first_name: &user.first_name,
            last_name: &user.last_name,
            email: &user.email,
            recent_sign_in: recent,
            sessions: &rows,
            two_factor,
            new_codes: once.codes,
            next: next_value.as_deref(),
            failed,
            errors,
            keys: keys_section,
        }),
    )
}

/// The user's second factor when it is on, else the enrolment pending, if any.
async fn two_factor_of(
    app: &App,
    user: &crate::store::User,
) -> Result<(Option<crate::store::Mfa>, Option<accounts::mfa::Enrolment>), ApiError> {
    if let Some(on) = accounts::mfa::enabled(app, user.id).await? {
        return Ok((Some(on), None));
    }
    Ok((None, accounts::mfa::pending_enrolment(app, user).await?))
}

/// The safe target the account page carries through the set-up of the second factor: the
/// query's `next` (from the second-factor page's link), else the posted form's.
fn account_next(app: &App, p: &PageRequest<'_>) -> Option<String> {
    let value = p.req.query_param("next").or_else(|| {
        (p.req.method != "GET" && p.req.method != "HEAD")
            .then(|| p.req.data().ok())
            .flatten()
            .map(|d| field(&d, "next"))
    })?;
    safe_target(app, p, &value)
}

/// A refused second-factor form's errors, each under its field: a wrong code (or the lock)
/// under `code`, a state that does not fit (already on, nothing pending) above the form.
fn mfa_errors(e: &ApiError) -> FieldErrors {
    let one = |field: &str, message: String| {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![message]);
        errors
    };
    match e {
        ApiError::Validation(_) => field_errors(e),
        ApiError::OtpInvalid => one("code", OTP_INVALID.to_string()),
        ApiError::Throttled(seconds) => one("code", render::too_many_codes(*seconds)),
        other => one("non_field_errors", detail(other)),
    }
}

async fn account_post(app: &App, p: &PageRequest<'_>, csrf: &mut Csrf) -> Response {
    let Some(who) = signed_in(app, p.req).await else {
        let web = &app.config.web;
        return Response::redirect(303, next::login_url(None, &web.prefix, &web.prefix));
    };
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let text = |k: &str| field(&data, k);
    let Some(form) = AccountForm::parse(&text(render::ACCOUNT_FORM_FIELD)) else {
        return account(
            app,
            p,
            csrf,
            None,
            None,
            &FieldErrors::new(),
            Once::default(),
        )
        .await;
    };
    let me = actor(p, Some(&who));
    let current = who.sign_in.as_deref().unwrap_or("").to_string();
    let fail = |field: &str, message: &str| {
        let mut e = FieldErrors::new();
        e.insert(field.to_string(), vec![message.to_string()]);
        e
    };
    // Recovery codes or an API key just made, shown once in this answer.
    let mut new_codes = Vec::new();
    let mut new_key = None;
    let outcome: Result<(&str, Option<accounts::Started>), FieldErrors> = match form {
        AccountForm::Password => {
            if text("new_password") != text("re_new_password") {
                Err(fail("re_new_password", PASSWORDS_DIFFER))
            } else {
                let input = input_of(&data, &["old_password", "new_password"]);
                // Read before the change ends it: what the new session keeps.
                let previous = match who.sign_in.as_deref() {
                    Some(id) => match app.store.get_session(id).await {
                        Ok(s) => s,
                        Err(e) => return rendered_error(app, &ApiError::from(e)),
                    },
                    None => None,
                };
                match accounts::change_password(app, &me, &input).await {
                    // The session that changed the password lives on in a new one.
                    Ok(user) => {
                        match accounts::renew_session(app, &me, &user, previous.as_ref()).await {
                            Ok(started) => Ok((PASSWORD_CHANGED, Some(started))),
                            Err(e) => Err(field_errors(&e)),
                        }
                    }
                    Err(e) => Err(field_errors(&e)),
                }
            }
        }
        AccountForm::Profile => {
            let changes_email = match app.store.get_user(who.user_id).await {
                Ok(Some(u)) => !text("email").eq_ignore_ascii_case(&u.email),
                _ => true,
            };
            let confirmed = match changes_email {
                true => password_ok(app, &me, &who, &text("password"), &text("code")).await,
                false => Ok(()),
            };
            match confirmed {
                Err(errors) => Err(errors),
                Ok(()) => {
                    let input = input_of(&data, &["first_name", "last_name", "email"]);
                    match accounts::update_profile(app, &me, &input, true).await {
                        Ok(_) => Ok((PROFILE_SAVED, None)),
                        Err(e) => Err(field_errors(&e)),
                    }
                }
            }
        }
        AccountForm::EndSession => {
            let id = text(render::SESSION_FIELD);
            match accounts::end_device(app, &me, who.user_id, &id).await {
                Ok(_) => Ok((SESSION_ENDED, None)),
                Err(e) => Err(field_errors(&e)),
            }
        }
        AccountForm::EndOthers => {
            match password_ok(app, &me, &who, &text("password"), &text("code")).await {
                Err(errors) => Err(errors),
                Ok(()) => {
                    match accounts::end_other_devices(app, &me, who.user_id, &current).await {
                        Ok(_) => Ok((OTHERS_ENDED, None)),
                        Err(e) => Err(field_errors(&e)),
                    }
                }
            }
        }
        AccountForm::Delete if !data.contains_key("confirm") => {
            Err(fail("confirm", DELETE_UNCONFIRMED))
        }
        AccountForm::Delete => match password_ok(app, &me, &who, &text("password"), &text("code"))
            .await
        {
            Err(errors) => Err(errors),
            Ok(()) => match accounts::soft_delete(app, &me).await {
                Ok(_) => {
                    return Response::redirect(303, format!("{}login/", app.config.web.prefix))
                        .with_header("Set-Cookie", cookies::clear_session_cookie(&app.config.web));
                }
                Err(e) => Err(field_errors(&e)),
            },
        },
        AccountForm::MfaStart => match accounts::mfa::start_enrolment(app, &me).await {
            // To the section, by GET, so that a reload shows the same secret again.
            Ok(_) => {
                let web = &app.config.web;
                let to = match account_next(app, p) {
                    Some(target) => next::page_url(None, &web.prefix, "", &target),
                    None => web.prefix.clone(),
                };
                return Response::redirect(303, format!("{to}#{TWO_FACTOR_SECTION}"));
            }
            Err(e) => Err(mfa_errors(&e)),
        },
        AccountForm::MfaConfirm => {
            let input = input_of(&data, &["code"]);
            match accounts::mfa::confirm_enrolment(app, &me, &input).await {
                // The code just proved the second factor: this browser's session becomes one
                // signed in with both (a new id), so a page that requires it opens at once.
                Ok(codes) => return confirmed(app, p, csrf, &me, &who, &codes).await,
                Err(e) => Err(mfa_errors(&e)),
            }
        }
        AccountForm::MfaRenew => {
            let input = input_of(&data, &["code"]);
            match accounts::mfa::renew_recovery_codes(app, &me, &input).await {
                Ok(codes) => {
                    new_codes = codes;
                    Ok((render::RECOVERY_CODES_RENEWED, None))
                }
                Err(e) => Err(mfa_errors(&e)),
            }
        }
        AccountForm::MfaDisable => {
            let input = input_of(&data, &["password", "code"]);
            match accounts::mfa::disable(app, &me, &input).await {
                // Every session ended with it (the token version): to the sign-in page.
                Ok(()) => {
                    let web = &app.config.web;
                    let to = sign_in_again(&web.prefix, "", render::SignInNotice::MfaOff);
                    return Response::redirect(303, to)
                        .with_header("Set-Cookie", cookies::clear_session_cookie(web));
                }
                Err(e) => Err(mfa_errors(&e)),
            }
        }
        AccountForm::KeyMake => match make_key(app, &me, p, &data).await {
            Ok(made) => {
                new_key = Some(made);
                Ok((KEY_MADE, None))
            }
            Err(errors) => Err(errors),
        },
        AccountForm::KeyRevoke => {
            match accounts::keys::revoke_own_key(app, &me, &text(render::KEY_FIELD)).await {
                Ok(true) => Ok((KEY_REVOKED, None)),
                Ok(false) => Err(fail("non_field_errors", KEY_NOT_FOUND)),
                Err(e) => Err(field_errors(&e)),
            }
        }
    };
    match outcome {
        Ok((notice, renewed)) => {
            let mut resp = account(
                app,
                p,
                csrf,
                Some(notice),
                None,
                &FieldErrors::new(),
                Once {
                    codes: &new_codes,
                    key: new_key.as_ref().map(|k| k.key.as_str()),
                    form: None,
                },
            )
            .await;
            if let Some(started) = renewed {
                // The old session died with the password: on to the new one.
                resp = Response::redirect(303, format!("{}?done=password", app.config.web.prefix))
                    .with_header(
                        "Set-Cookie",
                        cookies::session_cookie(
                            &app.config.web,
                            &started.cookie,
                            started.session.remember,
                        ),
                    );
            }
            resp
        }
        Err(errors) => {
            let kept = Once {
                form: Some(&data),
                ..Once::default()
            };
            account(app, p, csrf, None, Some(form), &errors, kept).await
        }
    }
}

/// The answer to the code that turned the second factor on: the account page with the
/// recovery codes (shown this once), for the new session the proof earned.
async fn confirmed(
    app: &App,
    p: &PageRequest<'_>,
    csrf: &Csrf,
    me: &Actor,
    who: &Identity,
    codes: &[String],
) -> Response {
    let upgraded = match (
        app.store.get_user(who.user_id).await,
        who.sign_in.as_deref(),
    ) {
        (Ok(Some(user)), Some(current)) => {
            accounts::upgrade_session(app, me, user, current).await.ok()
        }
        _ => None,
    };
    let Some(started) = upgraded else {
        // The factor is on all the same; this browser signs in again with it when it must.
        return account_of(
            app,
            p,
            who,
            csrf,
            Some(render::MFA_TURNED_ON),
            None,
            &FieldErrors::new(),
            Once::codes(codes),
        )
        .await;
    };
    let now_as = session_identity(app, &started.cookie).await;
    let page = account_of(
        app,
        p,
        now_as.as_ref().unwrap_or(who),
        csrf,
        Some(render::MFA_TURNED_ON),
        None,
        &FieldErrors::new(),
        Once::codes(codes),
    )
    .await;
    page.with_header(
        "Set-Cookie",
        cookies::session_cookie(&app.config.web, &started.cookie, started.session.remember),
    )
}

/// The account page's key form as `accounts::keys::make_own_key`'s input: the date as its
/// `expires_at` (midnight UTC), the ticked `groups` as a list, the form's `code` as `otp`.
pub(crate) fn key_input(
    data: &Map<String, Value>,
    groups: Option<Vec<Value>>,
) -> Map<String, Value> {
    let mut input = input_of(data, &["name", "expires_at", "password"]);
    input.insert("otp".to_string(), Value::String(field(data, "code")));
    if let Some(groups) = groups {
        input.insert("groups".to_string(), Value::Array(groups));
    }
    input
}

/// The operation's refusal under the form's fields: `otp` is the form's `code`, and a
/// wrong or missing password says so as the other sensitive forms do.
pub(crate) fn key_errors(e: &ApiError) -> FieldErrors {
    let mut errors = match e {
        ApiError::Validation(_) => field_errors(e),
        other => mfa_errors(other),
    };
    if let Some(otp) = errors.remove("otp") {
        errors.entry("code".to_string()).or_default().extend(otp);
    }
    errors
}

/// Makes a key for the signed-in user from the account page's form.
async fn make_key(
    app: &App,
    me: &Actor,
    p: &PageRequest<'_>,
    data: &Map<String, Value>,
) -> Result<accounts::keys::MadeKey, FieldErrors> {
    let groups = crate::api::body::is_form(p.req.content_type.as_deref())
        .then(|| crate::api::body::form_list(&p.req.body, "groups"))
        .flatten();
    let input = key_input(data, groups);
    accounts::keys::make_own_key(app, me, &input)
        .await
        .map_err(|e| key_errors(&e))
}

/// The sign-in behind this session is younger than ten minutes.
async fn recent_sign_in(app: &App, who: &Identity) -> bool {
    super::kit::signed_in_within(app, who, RECENT_SIGN_IN_SECONDS).await
}

/// The password, and a code when the user has a second factor (SPEC §15), asked again for a
/// sensitive form unless the sign-in is recent: what was wrong, under its field. The
/// password is checked first, so a wrong one uses up no code.
async fn password_ok(
    app: &App,
    me: &Actor,
    who: &Identity,
    password: &str,
    code: &str,
) -> Result<(), FieldErrors> {
    let fail = |field: &str, message: String| {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![message]);
        errors
    };
    if recent_sign_in(app, who).await {
        return Ok(());
    }
    let Ok(Some(user)) = app.store.get_user(who.user_id).await else {
        return Err(fail("password", PASSWORD_NEEDED.to_string()));
    };
    match accounts::mfa::reauthenticate(app, me, &user, password, code).await {
        Ok(()) => Ok(()),
        // The form's own words for a password that is missing or wrong.
        Err(e) if field_errors(&e).contains_key("password") => {
            Err(fail("password", PASSWORD_NEEDED.to_string()))
        }
        Err(e) => Err(mfa_errors(&e)),
    }
}

fn register_form(
    app: &App,
    csrf: &Csrf,
    data: &Map<String, Value>,
    errors: &FieldErrors,
) -> Response {
    let f = frame(app);
    let token = csrf.token();
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("");
    rendered(
        if errors.is_empty() { 200 } else { 400 },
        render::register(&render::SignUp {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: None,
            username: text("username"),
            email: text("email"),
            first_name: text("first_name"),
            last_name: text("last_name"),
            errors,
        }),
    )
}

/// Sign-up with the API's rules and messages; then signed in, on the account page.
async fn register(app: &App, p: &PageRequest<'_>, csrf: &mut Csrf) -> Response {
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let text = |k: &str| field(&data, k);
    if text("password") != text("re_password") {
        let mut errors = FieldErrors::new();
        errors.insert("re_password".into(), vec![PASSWORDS_DIFFER.into()]);
        return register_form(app, csrf, &data, &errors);
    }
    let input = input_of(
        &data,
        &["username", "email", "password", "first_name", "last_name"],
    );
    let who = actor(p, None);
    if let Err(e) = accounts::register(app, &who, &input).await {
        return register_form(app, csrf, &data, &field_errors(&e));
    }
    let mut sign_in = Map::new();
    sign_in.insert("username".into(), Value::String(text("username")));
    sign_in.insert("password".into(), Value::String(text("password")));
    match accounts::sign_in_session(app, &who, &sign_in, false).await {
        Ok((_, started)) => {
            csrf.rotate();
            Response::redirect(303, app.config.web.prefix.clone()).with_header(
                "Set-Cookie",
                cookies::session_cookie(&app.config.web, &started.cookie, false),
            )
        }
        // Registered, but not signed in (unverified addresses may not): the sign-in page.
        Err(_) => Response::redirect(303, format!("{}login/", app.config.web.prefix)),
    }
}

fn reset_form(app: &App, csrf: &Csrf, email: &str, sent: bool, errors: &FieldErrors) -> Response {
    let f = frame(app);
    let token = csrf.token();
    rendered(
        if errors.is_empty() { 200 } else { 400 },
        render::password_reset(&render::PasswordReset {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: None,
            email,
            sent,
            errors,
        }),
    )
}

/// The reset request: "check your mail" whether or not the address is known (§10).
async fn reset_request(app: &App, p: &PageRequest<'_>, csrf: &Csrf) -> Response {
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let email = data
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut input = Map::new();
    input.insert("email".into(), Value::String(email.clone()));
    match accounts::request_password_reset(app, &actor(p, None), &input).await {
        Ok(()) => reset_form(app, csrf, &email, true, &FieldErrors::new()),
        Err(e) => reset_form(app, csrf, &email, false, &field_errors(&e)),
    }
}

fn reset_page(app: &App, csrf: &Csrf, state: render::ResetState, errors: &FieldErrors) -> Response {
    let f = frame(app);
    let token = csrf.token();
    let status = match state {
        render::ResetState::Invalid => 400,
        _ if !errors.is_empty() => 400,
        _ => 200,
    };
    rendered(
        status,
        render::password_reset_confirm(&render::PasswordResetConfirm {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &token,
            signed_in_as: None,
            state,
            errors,
        }),
    )
}

/// `confirm/{uid}/{token}/`: the token is put aside in a short-lived cookie and the browser
/// moves to `confirm/{uid}/set-password/` (Django's `PasswordResetConfirmView` does the same
/// with its session), where the new password is asked and the token used.
async fn reset_confirm(
    app: &App,
    p: &PageRequest<'_>,
    csrf: &Csrf,
    rest: &str,
    get: bool,
) -> Response {
    let web = &app.config.web;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let [uid, second] = parts.as_slice() else {
        return not_found(app);
    };
    let reset_path = format!("{}{RESET_CONFIRM}{uid}/", web.prefix);
    if *second != SET_PASSWORD {
        if !get {
            return not_found(app);
        }
        let cookie = crate::cookies::SetCookie {
            name: RESET_COOKIE,
            value: second,
            http_only: true,
            secure: web.cookie_secure,
            same_site: crate::cookies::SameSite::Lax,
            domain: None,
            max_age: Some(RESET_COOKIE_SECONDS),
        };
        return Response::redirect(302, format!("{reset_path}{SET_PASSWORD}/"))
            .with_header("Set-Cookie", cookie.header());
    }
    let Some(token) = crate::cookies::get(&p.req.headers, RESET_COOKIE).map(str::to_string) else {
        return reset_page(app, csrf, render::ResetState::Invalid, &FieldErrors::new());
    };
    if get {
        return reset_page(app, csrf, render::ResetState::Form, &FieldErrors::new());
    }
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let text = |k: &str| field(&data, k);
    if text("new_password") != text("re_new_password") {
        let mut errors = FieldErrors::new();
        errors.insert("re_new_password".into(), vec![PASSWORDS_DIFFER.into()]);
        return reset_page(app, csrf, render::ResetState::Form, &errors);
    }
    let mut input = Map::new();
    input.insert("uid".into(), Value::String(uid.to_string()));
    input.insert("token".into(), Value::String(token));
    input.insert("new_password".into(), Value::String(text("new_password")));
    let clear = crate::cookies::SetCookie {
        name: RESET_COOKIE,
        value: "",
        http_only: true,
        secure: web.cookie_secure,
        same_site: crate::cookies::SameSite::Lax,
        domain: None,
        max_age: None,
    }
    .clear();
    match accounts::confirm_password_reset(app, &actor(p, None), &input).await {
        Ok(_) => reset_page(app, csrf, render::ResetState::Done, &FieldErrors::new())
            .with_header("Set-Cookie", clear),
        Err(e) => {
            let errors = field_errors(&e);
            if errors.contains_key("new_password") {
                reset_page(app, csrf, render::ResetState::Form, &errors)
            } else {
                reset_page(app, csrf, render::ResetState::Invalid, &FieldErrors::new())
                    .with_header("Set-Cookie", clear)
            }
        }
    }
}

/// `email/verify/{uid}/{token}/`: a page with a button; its POST verifies.
async fn verify(app: &App, p: &PageRequest<'_>, csrf: &Csrf, rest: &str, get: bool) -> Response {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let [uid, token] = parts.as_slice() else {
        return not_found(app);
    };
    let state = if get {
        render::VerifyState::Ask
    } else {
        let mut input = Map::new();
        input.insert("uid".into(), Value::String(uid.to_string()));
        input.insert("token".into(), Value::String(token.to_string()));
        match accounts::verify_email(app, &actor(p, None), &input).await {
            Ok(_) => render::VerifyState::Done,
            Err(_) => render::VerifyState::Invalid,
        }
    };
    let f = frame(app);
    let csrf_token = csrf.token();
    let status = if matches!(state, render::VerifyState::Invalid) {
        400
    } else {
        200
    };
    rendered(
        status,
        render::verify_email(&render::VerifyEmail {
            brand: f.brand,
            prefix: f.prefix,
            custom_css: f.custom_css,
            csrf_token: &csrf_token,
            signed_in_as: None,
            state,
        }),
    )
}

/// The posted fields `names` as an operation's input (DRF's `request.data`).
fn input_of(data: &Map<String, Value>, names: &[&str]) -> Map<String, Value> {
    names
        .iter()
        .map(|k| (k.to_string(), Value::String(field(data, k))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::kit::host_of;
    use super::sign_in_again;
    use crate::web::render::SignInNotice;

    #[test]
    fn the_key_form_becomes_the_operations_input_and_its_errors_come_back_under_the_fields() {
        use serde_json::json;
        let form = json!({"form": "key-make", "name": "ci", "expires_at": "2027-01-01",
            "password": "pw", "code": "123456", "csrfmiddlewaretoken": "t"});
        let form = form.as_object().cloned().unwrap_or_default();
        let input = super::key_input(&form, Some(vec![json!("ops")]));
        assert_eq!(
            serde_json::Value::Object(input),
            json!({"name": "ci", "expires_at": "2027-01-01", "password": "pw",
                "otp": "123456", "groups": ["ops"]})
        );
        let none = super::key_input(&form, None);
        assert!(
            !none.contains_key("groups"),
            "no groups ticked: all of the owner's"
        );
        let refused = crate::error::ApiError::field("otp", "Invalid two-factor code.");
        let errors = super::key_errors(&refused);
        assert_eq!(
            errors.get("code").map(Vec::as_slice),
            Some(&["Invalid two-factor code.".to_string()][..])
        );
        assert!(!errors.contains_key("otp"));
    }

    #[test]
    fn the_sign_in_page_again_keeps_next_and_says_why() {
        assert_eq!(
            sign_in_again("/accounts/", "", SignInNotice::Expired),
            "/accounts/login/?notice=expired"
        );
        assert_eq!(
            sign_in_again("/accounts/", "/app/x?y=1", SignInNotice::Expired),
            "/accounts/login/?next=/app/x%3Fy%3D1&notice=expired"
        );
        assert_eq!(
            sign_in_again("/", "", SignInNotice::MfaOff),
            "/login/?notice=mfa-off"
        );
    }

    #[test]
    fn the_host_of_an_origin() {
        assert_eq!(host_of("https://app.example.com"), Some("app.example.com"));
        assert_eq!(host_of("http://127.0.0.1:8080"), Some("127.0.0.1"));
        assert_eq!(host_of("http://[::1]:8080"), Some("[::1]"));
        assert_eq!(host_of("http://"), None);
        assert_eq!(host_of("nonsense"), None);
    }
}
