//! The user page (`users/{id}/`): what gatehouse knows of one user, and the forms that change
//! them through the admin API's own operations (`accounts::change_access`, `restore`,
//! `mfa::admin_reset`, `request_password_reset`). A destructive change on an old sign-in
//! goes through the re-authentication page first.

use super::reauth;
use super::render::{self, DeviceRow, Done, EventRow, ACTION_FIELD, DONE_PARAM};
use crate::accounts::{self, Actor, DeviceKind};
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::response::Response;
use crate::store::{EventFilter, User};
use crate::web::kit::{self, Csrf, PageRequest};
use crate::web::render::short_user_agent;
use serde_json::{Map, Value};

/// How many audit events about the user the page lists, newest first.
const EVENTS_SHOWN: usize = 20;
/// Above the page when a posted form names no change this page makes.
const UNKNOWN_FORM: &str = "That form is not one this page knows. Nothing was changed.";

/// A change the user page's forms ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Staff and groups, as the form holds them.
    Access {
        is_staff: bool,
        groups: Vec<String>,
    },
    Deactivate,
    Restore,
    MfaReset,
    ResetMail,
}

impl Change {
    /// The change a posted form names (its [`ACTION_FIELD`]), with its fields.
    pub fn of_form(data: &Map<String, Value>) -> Option<Change> {
        let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("");
        match text(ACTION_FIELD) {
            "access" => Some(Change::Access {
                is_staff: text("is_staff") == "true",
                groups: text("groups")
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect(),
            }),
            "deactivate" => Some(Change::Deactivate),
            "restore" => Some(Change::Restore),
            "mfa-reset" => Some(Change::MfaReset),
            "reset-mail" => Some(Change::ResetMail),
            _ => None,
        }
    }

    /// The form fields that post this change again (the re-authentication page carries
    /// them).
    pub fn fields(&self) -> Vec<(String, String)> {
        let action = |a: &str| (ACTION_FIELD.to_string(), a.to_string());
        match self {
            Change::Access { is_staff, groups } => {
                let mut out = vec![action("access"), ("groups".into(), groups.join(", "))];
                if *is_staff {
                    out.push(("is_staff".into(), "true".into()));
                }
                out
            }
            Change::Deactivate => vec![action("deactivate")],
            Change::Restore => vec![action("restore")],
            Change::MfaReset => vec![action("mfa-reset")],
            Change::ResetMail => vec![action("reset-mail")],
        }
    }

    /// It takes access away or grants it (SPEC §18: deactivate, staff change, factor reset):
    /// it needs a recent sign-in. Nothing is asked for a change that changes nothing.
    pub fn destructive(&self, user: &User) -> bool {
        match self {
            Change::Access { is_staff, .. } => *is_staff != user.is_staff,
            Change::Deactivate => user.is_active,
            Change::MfaReset => true,
            Change::Restore | Change::ResetMail => false,
        }
    }

    /// What it does to `username`, completing "To …, enter your password".
    pub fn describe(&self, username: &str) -> String {
        match self {
            Change::Access { is_staff: true, .. } => format!("make {username} staff"),
            Change::Access { .. } => format!("take staff away from {username}"),
            Change::Deactivate => format!("deactivate {username}"),
            Change::Restore => format!("restore {username}"),
            Change::MfaReset => format!("reset the two-factor authentication of {username}"),
            Change::ResetMail => format!("mail {username} a password-reset link"),
        }
    }
}

/// The user page of user `id` (404 when there is none), with the notice of a change just
/// made.
pub(super) async fn show(
    app: &App,
    p: &PageRequest<'_>,
    who: &Identity,
    csrf: &Csrf,
    id: u64,
) -> Response {
    let done = p.req.query_param(DONE_PARAM);
    let notice = done.as_deref().and_then(Done::parse).map(Done::text);
    view(app, who, csrf, id, notice, &[], 200).await
}

/// A form of the user page: the change, after the password again when it needs one.
pub(super) async fn act(
    app: &App,
    p: &PageRequest<'_>,
    who: &Identity,
    csrf: &Csrf,
    id: u64,
) -> Response {
    let user = match app.store.get_user(id).await {
        Ok(Some(u)) => u,
        Ok(None) => return super::problem(app, csrf, &who.username, 404, None),
        Err(e) => return kit::rendered_error(app, &ApiError::from(e)),
    };
    let data = match p.req.data() {
        Ok(data) => data,
        // Not a form at all (no browser sends this): DRF's parse error, not an empty form.
        Err(e) => return e.to_response(),
    };
    let Some(change) = Change::of_form(&data) else {
        return view(app, who, csrf, id, None, &[UNKNOWN_FORM.to_string()], 400).await;
    };
    let me = kit::actor(p, Some(who));
    let console = &app.config.console;
    if change.destructive(&user) {
        let action_url = format!("{}users/{}/", console.prefix, user.id);
        let asked = reauth::Asked {
            action_url: &action_url,
            what: &change.describe(&user.username),
            carried: &change.fields(),
        };
        if let Some(page) = reauth::cleared(app, p, who, csrf, &data, &asked).await {
            return page;
        }
    }
    match carry_out(app, &me, &user, &change).await {
        Ok(done) => Response::redirect(
            303,
            format!(
                "{}users/{id}/?{DONE_PARAM}={}",
                console.prefix,
                done.as_str()
            ),
        ),
        Err(e) => {
            let errors: Vec<String> = kit::field_errors(&e)
                .into_iter()
                .flat_map(|(field, messages)| {
                    messages.into_iter().map(move |m| match field.as_str() {
                        "detail" | "non_field_errors" => m,
                        _ => format!("{field}: {m}"),
                    })
                })
                .collect();
            let status = e.to_response().status;
            view(app, who, csrf, id, None, &errors, status).await
        }
    }
}

/// The change, by the admin API's operation for it.
async fn carry_out(app: &App, me: &Actor, user: &User, change: &Change) -> Result<Done, ApiError> {
    let mut input = Map::new();
    match change {
        Change::Access { is_staff, groups } => {
            input.insert("is_staff".into(), Value::Bool(*is_staff));
            let names = groups.iter().cloned().map(Value::String).collect();
            input.insert("groups".into(), Value::Array(names));
            accounts::change_access(app, me, user.id, &input).await?;
            Ok(Done::Access)
        }
        Change::Deactivate => {
            input.insert("is_active".into(), Value::Bool(false));
            accounts::change_access(app, me, user.id, &input).await?;
            Ok(Done::Deactivated)
        }
        Change::Restore => {
            accounts::restore(app, me, user.id).await?;
            Ok(Done::Restored)
        }
        Change::MfaReset => {
            accounts::mfa::admin_reset(app, me, user.id).await?;
            Ok(Done::MfaReset)
        }
        Change::ResetMail => {
            input.insert("email".into(), Value::String(user.email.clone()));
            accounts::request_password_reset(app, me, &input).await?;
            Ok(Done::ResetMailed)
        }
    }
}

/// The user page of user `id`, with `notice` or `errors` above it.
async fn view(
    app: &App,
    who: &Identity,
    csrf: &Csrf,
    id: u64,
    notice: Option<&str>,
    errors: &[String],
    status: u16,
) -> Response {
    let facts = match facts_of(app, id).await {
        Ok(Some(f)) => f,
        Ok(None) => return super::problem(app, csrf, &who.username, 404, None),
        Err(e) => return kit::rendered_error(app, &e),
    };
    let Facts {
        user,
        two_factor,
        devices,
        events,
    } = &facts;
    let devices: Vec<DeviceRow<'_>> = devices
        .iter()
        .map(|d| DeviceRow {
            kind: match d.kind {
                DeviceKind::Browser => "Browser",
                DeviceKind::App => "App",
            },
            device: short_user_agent(&d.user_agent),
            created: d.created,
            last_seen: d.last_seen,
            address: &d.client_ip,
        })
        .collect();
    let events: Vec<EventRow<'_>> = events
        .iter()
        .map(|e| EventRow {
            time: e.time,
            action: e.action.as_str(),
            actor: &e.actor_username,
            address: e.ip.as_deref().unwrap_or(""),
        })
        .collect();
    let token = csrf.token();
    kit::rendered(
        status,
        render::user(&render::UserPage {
            frame: super::frame(app, &who.username, &token),
            id: user.id,
            username: &user.username,
            email: &user.email,
            first_name: &user.first_name,
            last_name: &user.last_name,
            email_verified: user.email_verified,
            is_active: user.is_active,
            is_staff: user.is_staff,
            groups: &user.groups,
            two_factor: *two_factor,
            date_joined: user.date_joined,
            last_login: user.last_login,
            deleted_at: user.deleted_at,
            devices: &devices,
            events: &events,
            notice,
            errors,
            recent_minutes: app.config.console.recent_sign_in_minutes,
        }),
    )
}

/// What the user page shows of user `id`.
struct Facts {
    user: User,
    two_factor: bool,
    devices: Vec<accounts::Device>,
    events: Vec<crate::store::Event>,
}

async fn facts_of(app: &App, id: u64) -> Result<Option<Facts>, ApiError> {
    let Some(user) = app.store.get_user(id).await? else {
        return Ok(None);
    };
    let two_factor = accounts::mfa::enabled(app, id).await?.is_some();
    let devices = accounts::devices(app, id, None).await?;
    let filter = EventFilter {
        target: Some(id),
        ..EventFilter::default()
    };
    let events = app.store.list_events(&filter, None, EVENTS_SHOWN).await?;
    Ok(Some(Facts {
        user,
        two_factor,
        devices,
        events,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_user;
    use serde_json::json;

    fn form(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn forms_name_their_change_and_post_it_again_unchanged() {
        let access = Change::of_form(&form(json!({
            "action": "access", "is_staff": "true", "groups": " ops, ,billing ,"
        })));
        assert_eq!(
            access,
            Some(Change::Access {
                is_staff: true,
                groups: vec!["ops".into(), "billing".into()]
            })
        );
        let unticked = Change::of_form(&form(json!({"action": "access"})));
        assert_eq!(
            unticked,
            Some(Change::Access {
                is_staff: false,
                groups: vec![]
            })
        );
        assert_eq!(Change::of_form(&form(json!({"action": "nope"}))), None);
        assert_eq!(Change::of_form(&form(json!({}))), None);
        for change in [
            access.clone().unwrap_or(Change::Restore),
            unticked.clone().unwrap_or(Change::Restore),
            Change::Deactivate,
            Change::Restore,
            Change::MfaReset,
            Change::ResetMail,
        ] {
            let again: Map<String, Value> = change
                .fields()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            assert_eq!(Change::of_form(&again), Some(change.clone()), "{change:?}");
        }
    }

    #[test]
    fn only_changes_that_take_or_grant_access_need_a_recent_sign_in() {
        let mut u = test_user(3, "u", "u@example.com");
        let staff = |s: bool| Change::Access {
            is_staff: s,
            groups: vec!["x".into()],
        };
        assert!(!staff(false).destructive(&u), "groups alone");
        assert!(staff(true).destructive(&u), "made staff");
        assert!(Change::Deactivate.destructive(&u));
        assert!(Change::MfaReset.destructive(&u));
        assert!(!Change::Restore.destructive(&u));
        assert!(!Change::ResetMail.destructive(&u));
        u.is_staff = true;
        assert!(staff(false).destructive(&u), "staff taken away");
        u.is_active = false;
        assert!(!Change::Deactivate.destructive(&u), "already deactivated");
        assert_eq!(
            Change::Deactivate.describe("<b>"),
            "deactivate <b>",
            "escaped by the template, not here"
        );
    }
}
