//! The admin console (SPEC §18), under `[console] prefix`: staff find and change users in a
//! browser. `gate` decides who gets in, `home`, `users` (the list, its bulk actions and CSV
//! export) and `user` answer the pages by calling the same `accounts::` operations as the
//! admin API, `render` makes the HTML.
//!
//! Built on the pages (`web`): their sign-in, session cookie, CSRF check and stylesheet.

mod audit;
mod csv;
pub mod gate;
mod groups;
mod home;
mod reauth;
pub mod render;
mod service;
mod user;
pub mod users;
pub mod views;

use crate::accounts;
use crate::api::Request;
use crate::app::App;
use crate::response::Response;
use crate::web::kit::{self, Csrf, PageRequest};
use gate::{Caller, Gate};

/// Which console page a path below the prefix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Home,
    /// `users/`: the list (GET) and its bulk actions (POST).
    Users,
    /// `users.csv`: the list's export.
    UsersCsv,
    /// `users/{id}/`.
    User(u64),
    /// `groups/`.
    Groups,
    /// `audit/`.
    Audit,
    /// `service-accounts/`: the form making a service account.
    ServiceAccounts,
    Missing,
}

/// The service-account form's path below the prefix.
pub const SERVICE_ACCOUNTS_PAGE: &str = "service-accounts/";

/// The page `rest` (the path below the prefix) names. A user id is a positive number of
/// digits only; anything else is no page.
pub fn page_of(rest: &str) -> Page {
    match rest {
        "" => return Page::Home,
        "users/" => return Page::Users,
        "users.csv" => return Page::UsersCsv,
        "groups/" => return Page::Groups,
        "audit/" => return Page::Audit,
        SERVICE_ACCOUNTS_PAGE => return Page::ServiceAccounts,
        _ => {}
    }
    let id = rest
        .strip_prefix("users/")
        .and_then(|r| r.strip_suffix('/'))
        .filter(|r| !r.is_empty() && r.len() <= 20 && r.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|r| r.parse::<u64>().ok())
        .filter(|id| *id > 0);
    id.map_or(Page::Missing, Page::User)
}

/// Answers a request under the console's prefix.
pub async fn handle(app: &App, p: &PageRequest<'_>) -> Response {
    let mut resp = route(app, p).await;
    resp.head_only = p.head_only;
    resp
}

async fn route(app: &App, p: &PageRequest<'_>) -> Response {
    let get = matches!(p.req.method.as_str(), "GET" | "HEAD");
    let csrf = Csrf::of(app, p.req);
    // As Django's middleware: a refused form is refused before anything looks at it.
    if !get {
        if let Err(refused) = csrf.check(app, p) {
            let path = format!("{}{}", app.config.console.prefix, p.rest);
            accounts::csrf_refused(app, &kit::actor(p, None), &refused.0, &path).await;
            let reason = refused.to_string();
            let resp = problem(app, &csrf, "", 403, Some(&reason));
            return csrf.set_cookie(app, resp);
        }
    }
    let who = kit::signed_in(app, p.req).await;
    let caller = who.as_ref().map(|w| Caller {
        is_staff: w.is_staff,
        mfa: w.mfa,
    });
    let require_mfa = app.config.console.require_mfa;
    let has_factor = match who.as_ref() {
        Some(w) if gate::asks_factor(caller, require_mfa) => {
            match accounts::mfa::enabled(app, w.user_id).await {
                Ok(found) => found.is_some(),
                Err(e) => return kit::rendered_error(app, &e),
            }
        }
        _ => false,
    };
    let decided = gate::gate(caller, require_mfa, has_factor);
    if let Some(to) = gate::detour(decided, &app.config.web.prefix, &here(p.req)) {
        return Response::redirect(if get { 302 } else { 303 }, to);
    }
    let who = match (decided, who) {
        (Gate::Enter, Some(who)) => who,
        // Signed in, not staff (the detours above took everyone else).
        (_, who) => {
            let name = who.as_ref().map_or("", |w| &*w.username);
            return csrf.set_cookie(app, problem(app, &csrf, name, 403, None));
        }
    };
    let resp = match (page_of(p.rest), get) {
        (Page::Home, true) => home::page(app, &who, &csrf).await,
        (Page::User(id), true) => user::show(app, p, &who, &csrf, id).await,
        (Page::User(id), false) => user::act(app, p, &who, &csrf, id).await,
        (Page::Users, true) => users::list(app, p, &who, &csrf).await,
        (Page::Users, false) => users::act(app, p, &who, &csrf).await,
        (Page::UsersCsv, true) => users::export(app, p, &who, &csrf).await,
        (Page::Groups, true) => groups::page(app, p, &who, &csrf).await,
        (Page::Groups, false) => groups::act(app, p, &who, &csrf).await,
        (Page::Audit, true) => audit::page(app, p, &who, &csrf).await,
        (Page::ServiceAccounts, true) => service::page(app, &who, &csrf),
        (Page::ServiceAccounts, false) => service::act(app, p, &who, &csrf).await,
        (Page::Home | Page::UsersCsv | Page::Audit | Page::Missing, _) => {
            problem(app, &csrf, &who.username, 404, None)
        }
    };
    csrf.set_cookie(app, resp)
}

/// The path and query a browser asked for, to come back to after the gate.
fn here(req: &Request) -> String {
    match req.query.as_str() {
        "" => req.path.clone(),
        q => format!("{}?{q}", req.path),
    }
}

/// The frame of a console page for `signed_in_as`, with `csrf_token`.
fn frame<'a>(app: &'a App, signed_in_as: &'a str, csrf_token: &'a str) -> render::Frame<'a> {
    let web = &app.config.web;
    render::Frame {
        brand: &web.brand_name,
        web_prefix: &web.prefix,
        prefix: &app.config.console.prefix,
        custom_css: !web.css_file.is_empty(),
        csrf_token,
        signed_in_as,
    }
}

/// A page that only says what went wrong (`status` 403 or 404; `reason`: a refused CSRF
/// check's).
fn problem(
    app: &App,
    csrf: &Csrf,
    signed_in_as: &str,
    status: u16,
    reason: Option<&str>,
) -> Response {
    let token = csrf.token();
    kit::rendered(
        status,
        render::problem(&render::Problem {
            frame: frame(app, signed_in_as, &token),
            status,
            reason,
        }),
    )
}

/// An operation's refusal as lines above a form: a field's messages named by the field, the
/// rest as they are.
fn lines(errors: crate::web::render::FieldErrors) -> Vec<String> {
    errors
        .into_iter()
        .flat_map(|(field, messages)| {
            messages.into_iter().map(move |m| match field.as_str() {
                "detail" | "non_field_errors" => m,
                _ => format!("{field}: {m}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pages_and_ids_are_plain_numbers() {
        assert_eq!(page_of(""), Page::Home);
        assert_eq!(page_of("users/7/"), Page::User(7));
        assert_eq!(page_of("users/"), Page::Users);
        assert_eq!(page_of("users.csv"), Page::UsersCsv);
        assert_eq!(page_of("users/18446744073709551615/"), Page::User(u64::MAX));
        assert_eq!(page_of("groups/"), Page::Groups);
        assert_eq!(page_of("audit/"), Page::Audit);
        for missing in [
            "users",
            "users.csv/",
            "users/users.csv",
            "users/0/",
            "users/7",
            "users/-7/",
            "users/+7/",
            "users/7x/",
            "users/%37/",
            "users/ 7/",
            "users/7/edit/",
            "users/18446744073709551616/",
            "users/999999999999999999999999/",
            "groups",
            "groups/x/",
            "audit",
            "nope",
        ] {
            assert_eq!(page_of(missing), Page::Missing, "{missing}");
        }
    }
}
