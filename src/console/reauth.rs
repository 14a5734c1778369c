//! Re-authentication before a destructive console change (SPEC §18): a sign-in younger than
//! `[console] recent_sign_in_minutes` goes on; an older one gets a page asking the password
//! (and a code when enrolled) that posts the stopped form again with them. Every console form
//! that takes or grants access goes through [`cleared`].

use super::render::{self, REAUTH_FIELD};
use crate::accounts;
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::response::Response;
use crate::web::kit::{self, Csrf, PageRequest};
use crate::web::render::FieldErrors;
use serde_json::{Map, Value};

/// The change waiting for the staff member's password.
pub(super) struct Asked<'a> {
    /// Where the stopped form posts (and "Cancel" goes back to).
    pub action_url: &'a str,
    /// Completes "To …, enter your password".
    pub what: &'a str,
    /// The stopped form's own fields, posted again as they were.
    pub carried: &'a [(String, String)],
}

/// Whether the change in `data` may go on: `None` when the sign-in is recent or the
/// password (and code) posted with it are right; otherwise the page to answer instead.
pub(super) async fn cleared(
    app: &App,
    p: &PageRequest<'_>,
    who: &Identity,
    csrf: &Csrf,
    data: &Map<String, Value>,
    asked: &Asked<'_>,
) -> Option<Response> {
    let recent = app.config.console.recent_sign_in_seconds();
    if kit::signed_in_within(app, who, recent).await {
        return None;
    }
    if !data.contains_key(REAUTH_FIELD) {
        return Some(page(app, who, csrf, asked, &FieldErrors::new(), 200).await);
    }
    let me_user = match app.store.get_user(who.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Some(kit::rendered_error(app, &ApiError::NotAuthenticated)),
        Err(e) => return Some(kit::rendered_error(app, &ApiError::from(e))),
    };
    let me = kit::actor(p, Some(who));
    let password = kit::field(data, "password");
    let code = kit::field(data, "code");
    match accounts::mfa::reauthenticate(app, &me, &me_user, &password, &code).await {
        Ok(()) => None,
        Err(e) => {
            let status = match e {
                ApiError::Throttled(_) => 429,
                _ => 400,
            };
            Some(page(app, who, csrf, asked, &kit::field_errors(&e), status).await)
        }
    }
}

async fn page(
    app: &App,
    who: &Identity,
    csrf: &Csrf,
    asked: &Asked<'_>,
    errors: &FieldErrors,
    status: u16,
) -> Response {
    let asks_code = match accounts::mfa::enabled(app, who.user_id).await {
        Ok(found) => found.is_some(),
        Err(e) => return kit::rendered_error(app, &e),
    };
    let token = csrf.token();
    kit::rendered(
        status,
        render::reauth(&render::Reauth {
            frame: super::frame(app, &who.username, &token),
            action_url: asked.action_url,
            what: asked.what,
            carried: asked.carried,
            asks_code,
            recent_minutes: app.config.console.recent_sign_in_minutes,
            errors,
        }),
    )
}
