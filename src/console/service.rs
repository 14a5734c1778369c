//! The service-account form (`service-accounts/`, SPEC §19): staff make a user for a
//! machine (no password, no sign-in, keys only) through `accounts::keys::make_service_account`,
//! after the password again on an old sign-in, then go to its page to make it a key.

use super::reauth;
use super::render::{self, Done, DONE_PARAM};
use crate::accounts;
use crate::app::App;
use crate::auth::Identity;
use crate::response::Response;
use crate::web::kit::{self, Csrf, PageRequest};
use crate::web::render::FieldErrors;
use serde_json::{Map, Value};

/// The form's fields, in the admin API's names.
const FIELDS: [&str; 2] = ["username", "email"];

/// The empty form.
pub(super) fn page(app: &App, who: &Identity, csrf: &Csrf) -> Response {
    form(app, who, csrf, &Map::new(), &FieldErrors::new(), 200)
}

/// The form posted: the service account made, and its page; or the form again with why not.
pub(super) async fn act(app: &App, p: &PageRequest<'_>, who: &Identity, csrf: &Csrf) -> Response {
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let console = &app.config.console;
    let action_url = format!("{}{}", console.prefix, super::SERVICE_ACCOUNTS_PAGE);
    // An empty address is no address (the operation gives it one), not a blank one.
    let carried: Vec<(String, String)> = FIELDS
        .iter()
        .map(|f| (f.to_string(), kit::field(&data, f)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let what = format!("make the service account {}", kit::field(&data, "username"));
    let asked = reauth::Asked {
        action_url: &action_url,
        what: &what,
        carried: &carried,
    };
    if let Some(page) = reauth::cleared(app, p, who, csrf, &data, &asked).await {
        return page;
    }
    let input: Map<String, Value> = carried
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let me = kit::actor(p, Some(who));
    match accounts::keys::make_service_account(app, &me, &input).await {
        Ok(user) => Response::redirect(
            303,
            format!(
                "{}users/{}/?{DONE_PARAM}={}",
                console.prefix,
                user.id,
                Done::ServiceMade.as_str()
            ),
        ),
        Err(e) => {
            let status = e.to_response().status;
            form(app, who, csrf, &data, &kit::field_errors(&e), status)
        }
    }
}

fn form(
    app: &App,
    who: &Identity,
    csrf: &Csrf,
    data: &Map<String, Value>,
    errors: &FieldErrors,
    status: u16,
) -> Response {
    let (beside, rest): (FieldErrors, FieldErrors) = errors
        .clone()
        .into_iter()
        .partition(|(f, _)| FIELDS.contains(&f.as_str()));
    let others = super::lines(rest);
    let token = csrf.token();
    let (username, email) = (kit::field(data, "username"), kit::field(data, "email"));
    kit::rendered(
        status,
        render::service(&render::ServicePage {
            frame: super::frame(app, &who.username, &token),
            username: &username,
            email: &email,
            errors: &beside,
            other_errors: &others,
        }),
    )
}
