//! The second-factor page, `login/code/` (SPEC §17 in the browser): the code after the
//! password (a pending step, carried from the password page by its own short-lived cookie),
//! a step-up for a browser signed in with the password alone, and the way to enrolment for
//! a user without a factor. The operations (`accounts::finish_sign_in`, `step_up`) decide;
//! this renders what they answer.

use super::kit::{self, Csrf, PageRequest};
use super::next;
use super::render::{self, CodeState, SignInNotice};
use crate::accounts::{self, mfa};
use crate::app::App;
use crate::auth::Identity;
use crate::cookies::{self, SameSite, SetCookie};
use crate::error::{ApiError, OTP_INVALID};
use crate::response::Response;

/// The cookie that carries a pending sign-in from the password page to this one. Its value
/// is never stored: the user's record keeps a hash of it.
pub const PENDING_COOKIE: &str = "gatehouse_pending";

/// Who asks for the page, and so what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// A sign-in waiting for its code.
    Pending,
    /// The pending cookie names a step that is missing, used or expired: the password again.
    PendingGone,
    /// Signed in with the password alone, and the user has a second factor: the code, then
    /// a new session that says so.
    StepUp,
    /// Signed in with the password alone, and the user has no second factor: the way to
    /// set one up.
    Enrol,
    /// Signed in with both factors already: on to `next`.
    Done,
    /// Nobody: the sign-in page.
    Nobody,
}

/// What the page does, from: the pending cookie (`None`: none sent; `Some(live)`), the
/// session's `mfa` (`None`: not signed in) and whether the user has a second factor (asked
/// only for a session without `mfa` and no pending cookie). A pending cookie wins: it is
/// the newer intent (a password just typed, maybe for another user).
fn asker(pending: Option<bool>, session_mfa: Option<bool>, has_factor: bool) -> Asker {
    match (pending, session_mfa) {
        (Some(true), _) => Asker::Pending,
        (Some(false), _) => Asker::PendingGone,
        (None, Some(true)) => Asker::Done,
        (None, Some(false)) if has_factor => Asker::StepUp,
        (None, Some(false)) => Asker::Enrol,
        (None, None) => Asker::Nobody,
    }
}

/// The pending step's cookie holding `value`: HttpOnly, SameSite=Lax, only under the
/// pages' prefix, for as long as the step waits (`[mfa] pending_minutes`).
pub fn pending_cookie(app: &App, value: &str) -> String {
    cookie_of(app, value).header_at(&app.config.web.prefix)
}

/// The pending step's cookie removed (used, or gone).
pub fn clear_pending_cookie(app: &App) -> String {
    cookie_of(app, "").clear_at(&app.config.web.prefix)
}

fn cookie_of<'a>(app: &'a App, value: &'a str) -> SetCookie<'a> {
    SetCookie {
        name: PENDING_COOKIE,
        value,
        http_only: true,
        secure: app.config.web.cookie_secure,
        same_site: SameSite::Lax,
        domain: None,
        max_age: Some(app.config.mfa.pending_seconds()),
    }
}

/// The sign-in page, keeping `next` when there is one.
fn sign_in_url(prefix: &str, next_value: &str) -> String {
    match next_value {
        "" => format!("{prefix}{}", next::LOGIN_PAGE),
        target => next::login_url(None, prefix, target),
    }
}

/// The account page's set-up section, keeping `next` when there is one.
fn enrol_url(prefix: &str, next_value: &str) -> String {
    let page = match next_value {
        "" => prefix.to_string(),
        target => next::page_url(None, prefix, "", target),
    };
    format!("{page}#{}", kit::TWO_FACTOR_SECTION)
}

/// Answers `login/code/` (GET shows, POST checks the code); the CSRF check is done.
pub(super) async fn page(app: &App, p: &PageRequest<'_>, csrf: &mut Csrf) -> Response {
    let get = matches!(p.req.method.as_str(), "GET" | "HEAD");
    let data = if get {
        None
    } else {
        match p.req.data() {
            Ok(data) => Some(data),
            // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
            Err(e) => return e.to_response(),
        }
    };
    let next_value = match &data {
        Some(d) => kit::field(d, "next"),
        None => p.req.query_param("next").unwrap_or_default(),
    };
    let code = data.as_ref().map(|d| kit::field(d, "code"));
    let sent = cookies::get(&p.req.headers, PENDING_COOKIE).map(str::to_string);
    let live = match &sent {
        Some(value) => match mfa::pending(app, value).await {
            Ok(found) => Some(found.is_some()),
            Err(e) => return kit::rendered_error(app, &e),
        },
        None => None,
    };
    let who = kit::signed_in(app, p.req).await;
    let has_factor = match (&sent, &who) {
        (None, Some(w)) if !w.mfa => match mfa::enabled(app, w.user_id).await {
            Ok(record) => record.is_some(),
            Err(e) => return kit::rendered_error(app, &e),
        },
        _ => false,
    };
    let web = &app.config.web;
    let redirect = if get { 302 } else { 303 };
    let view = View {
        next_value: &next_value,
        who: who.as_ref(),
    };
    match (asker(live, who.as_ref().map(|w| w.mfa), has_factor), code) {
        (Asker::Nobody, _) => Response::redirect(redirect, sign_in_url(&web.prefix, &next_value)),
        (Asker::PendingGone, _) => Response::redirect(
            redirect,
            kit::sign_in_again(&web.prefix, &next_value, SignInNotice::Expired),
        )
        .with_header("Set-Cookie", clear_pending_cookie(app)),
        (Asker::Done, _) => Response::redirect(redirect, kit::after_sign_in(app, p, &next_value)),
        (Asker::Enrol, _) => view.show(app, csrf, CodeState::Enrol, None, 200),
        (Asker::Pending, None) => view.show(app, csrf, CodeState::SignIn, None, 200),
        (Asker::StepUp, None) => view.show(app, csrf, CodeState::StepUp, None, 200),
        (Asker::Pending, Some(code)) => {
            // A live pending step came in its cookie: `sent` holds it.
            let Some(value) = sent else {
                return Response::redirect(303, sign_in_url(&web.prefix, &next_value));
            };
            let actor = kit::actor(p, None);
            match accounts::finish_sign_in(app, &actor, &value, &code).await {
                Ok(Some((_user, started))) => {
                    // The session this browser held before ends (as at the password page).
                    kit::end_previous(app, p, who.as_ref()).await;
                    csrf.rotate();
                    signed_in_to(app, p, &next_value, &started)
                        .with_header("Set-Cookie", clear_pending_cookie(app))
                }
                Ok(None) => Response::redirect(
                    303,
                    kit::sign_in_again(&web.prefix, &next_value, SignInNotice::Expired),
                )
                .with_header("Set-Cookie", clear_pending_cookie(app)),
                Err(e) => view.refused(app, csrf, CodeState::SignIn, &e),
            }
        }
        (Asker::StepUp, Some(code)) => {
            let Some(w) = who.as_ref() else {
                return Response::redirect(303, sign_in_url(&web.prefix, &next_value));
            };
            let Some(current) = w.sign_in.as_deref() else {
                return Response::redirect(303, sign_in_url(&web.prefix, &next_value));
            };
            let actor = kit::actor(p, Some(w));
            match accounts::step_up(app, &actor, w.user_id, current, &code).await {
                Ok(started) => {
                    // A change of privilege: a new session id (done) and a new CSRF secret.
                    csrf.rotate();
                    signed_in_to(app, p, &next_value, &started)
                }
                Err(e) => view.refused(app, csrf, CodeState::StepUp, &e),
            }
        }
    }
}

/// On to the (safe) target with the new session's cookie.
fn signed_in_to(
    app: &App,
    p: &PageRequest<'_>,
    next_value: &str,
    started: &accounts::Started,
) -> Response {
    let set = cookies::session_cookie(&app.config.web, &started.cookie, started.session.remember);
    Response::redirect(303, kit::after_sign_in(app, p, next_value)).with_header("Set-Cookie", set)
}

/// What every rendering of the page shares.
struct View<'a> {
    next_value: &'a str,
    who: Option<&'a Identity>,
}

impl View<'_> {
    /// The page in `state`, with `error` under the code field (locked: the wait).
    fn show(
        &self,
        app: &App,
        csrf: &Csrf,
        state: CodeState,
        error: Option<&str>,
        status: u16,
    ) -> Response {
        let f = kit::frame(app);
        let token = csrf.token();
        kit::rendered(
            status,
            render::second_factor(&render::SecondFactorPage {
                brand: f.brand,
                prefix: f.prefix,
                custom_css: f.custom_css,
                csrf_token: &token,
                signed_in_as: self.who.map(|w| &*w.username),
                state,
                next: self.next_value,
                sign_in_url: &sign_in_url(f.prefix, self.next_value),
                enrol_url: &enrol_url(f.prefix, self.next_value),
                error,
            }),
        )
    }

    /// A refused code: the form again (400), or the lock's page (429, `Retry-After`).
    fn refused(&self, app: &App, csrf: &Csrf, state: CodeState, e: &ApiError) -> Response {
        match e {
            ApiError::OtpInvalid | ApiError::Validation(_) => {
                self.show(app, csrf, state, Some(OTP_INVALID), 400)
            }
            ApiError::Throttled(seconds) => {
                let wait = render::too_many_codes(*seconds);
                self.show(app, csrf, CodeState::Locked, Some(&wait), 429)
                    .with_header("Retry-After", seconds.to_string())
            }
            other => kit::rendered_error(app, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_step_wins_then_the_session_decides() {
        for session in [None, Some(false), Some(true)] {
            for factor in [false, true] {
                assert_eq!(asker(Some(true), session, factor), Asker::Pending);
                assert_eq!(asker(Some(false), session, factor), Asker::PendingGone);
            }
        }
        assert_eq!(asker(None, Some(true), true), Asker::Done);
        assert_eq!(asker(None, Some(false), true), Asker::StepUp);
        assert_eq!(asker(None, Some(false), false), Asker::Enrol);
        assert_eq!(asker(None, None, false), Asker::Nobody);
        assert_eq!(asker(None, None, true), Asker::Nobody);
    }

    #[test]
    fn the_links_keep_next_only_when_there_is_one() {
        assert_eq!(sign_in_url("/accounts/", ""), "/accounts/login/");
        assert_eq!(
            sign_in_url("/accounts/", "/app/x?a=1"),
            "/accounts/login/?next=/app/x%3Fa%3D1"
        );
        assert_eq!(enrol_url("/accounts/", ""), "/accounts/#two-factor");
        assert_eq!(
            enrol_url("/accounts/", "/app/x"),
            "/accounts/?next=/app/x#two-factor"
        );
    }
}
