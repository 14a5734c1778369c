//! The user page (`users/{id}/`): what gatehouse knows of one user (details, sessions, keys,
//! audit trail), and the forms that change them through the admin API's own operations
//! (`accounts::change_access`, `restore`, `mfa::admin_reset`, `request_password_reset`,
//! `request_verification`, `end_user_devices`, `keys::admin_revoke_key`). A destructive
//! change on an old sign-in goes through the re-authentication page first.

use super::reauth;
use super::render::{
    self, DeviceRow, Done, EditForm, EventRow, KeyForm, KeyRow, ACTION_FIELD, DEVICE_FIELD,
    DONE_PARAM, KEY_FIELD, MAKE_KEY_ACTION,
};
use crate::accounts::{self, Actor, DeviceKind};
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::response::Response;
use crate::store::{name_key, ApiKey, EventFilter, User};
use crate::web::kit::{self, Csrf, PageRequest};
use crate::web::render::{short_user_agent, FieldErrors};
use serde_json::{Map, Value};

/// How many audit events about the user the page lists, newest first (one keyset page of
/// the audit log; the audit page has the rest).
const EVENTS_SHOWN: usize = 50;
/// The edit form's fields, in the admin API's names.
const EDIT_FIELDS: [&str; 4] = ["username", "email", "first_name", "last_name"];
/// Above the page when a posted form names no change this page makes.
const UNKNOWN_FORM: &str = "That form is not one this page knows. Nothing was changed.";
/// Above the page when an edit is refused field by field (the messages are beside them).
const EDIT_REFUSED: &str = "The details were not saved. The fields below say why.";
/// The key form's fields, whose messages go beside them.
const KEY_FORM_FIELDS: [&str; 4] = ["name", "expires_at", "password", "code"];
/// Above the page when a key was made.
const KEY_MADE: &str = "The API key was made. Copy it now: it will not be shown again.";
/// Above the page when the key form is refused.
const KEY_REFUSED: &str = "No key was made. The fields of \"Make a key\" say why.";
/// Above the page when a verification mail is asked for an address already verified.
const ALREADY_VERIFIED: &str = "The address is verified already: no verification mail was sent.";
/// Above the page when a mail is asked for and the server sends none.
const MAIL_OFF: &str = "Mail is off on this server ([email] backend = \"none\"): nothing was sent.";
/// Above the page when a mail is asked for a deactivated user (the link operations mail
/// active users only).
const INACTIVE_NO_MAIL: &str = "The user is deactivated: no mail was sent. Restore them first.";

/// The edit form as posted: the admin API's fields, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Edit {
    /// The user's own values: the form before anything is typed.
    fn of_user(u: &User) -> Edit {
        Edit {
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
        }
    }

    /// Its values, in [`EDIT_FIELDS`] order.
    fn values(&self) -> [&str; 4] {
        [
            &self.username,
            &self.email,
            &self.first_name,
            &self.last_name,
        ]
    }
}

/// A change the user page's forms ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Staff and groups, as the form holds them.
    Access {
        is_staff: bool,
        groups: Vec<String>,
    },
    /// Username, email and names, as the form holds them.
    Edit(Edit),
    Deactivate,
    Restore,
    MfaReset,
    ResetMail,
    VerifyMail,
    /// One session or refresh family, by its public id.
    EndDevice(String),
    /// Every session and refresh family.
    EndAll,
    /// One API key, by its id.
    RevokeKey(String),
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
            "edit" => Some(Change::Edit(Edit {
                username: text("username").to_string(),
                email: text("email").to_string(),
                first_name: text("first_name").to_string(),
                last_name: text("last_name").to_string(),
            })),
            "deactivate" => Some(Change::Deactivate),
            "restore" => Some(Change::Restore),
            "mfa-reset" => Some(Change::MfaReset),
            "reset-mail" => Some(Change::ResetMail),
            "verify-mail" => Some(Change::VerifyMail),
            "end-device" => match text(DEVICE_FIELD) {
                "" => None,
                id => Some(Change::EndDevice(id.to_string())),
            },
            "end-all" => Some(Change::EndAll),
            "revoke-key" => match text(KEY_FIELD) {
                "" => None,
                id => Some(Change::RevokeKey(id.to_string())),
            },
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
            Change::Edit(edit) => {
                let mut out = vec![action("edit")];
                for (name, value) in EDIT_FIELDS.into_iter().zip(edit.values()) {
                    out.push((name.to_string(), value.to_string()));
                }
                out
            }
            Change::Deactivate => vec![action("deactivate")],
            Change::Restore => vec![action("restore")],
            Change::MfaReset => vec![action("mfa-reset")],
            Change::ResetMail => vec![action("reset-mail")],
            Change::VerifyMail => vec![action("verify-mail")],
            Change::EndDevice(id) => vec![action("end-device"), (DEVICE_FIELD.into(), id.clone())],
            Change::EndAll => vec![action("end-all")],
            Change::RevokeKey(id) => vec![action("revoke-key"), (KEY_FIELD.into(), id.clone())],
        }
    }

    /// It takes access away or grants it (SPEC §18: deactivate, staff change, factor reset,
    /// ending someone else's sessions; a new address, where reset links go, as the account
    /// page's email change): it needs a recent sign-in from staff member `me`. Nothing is
    /// asked for a change that changes nothing.
    pub fn destructive(&self, user: &User, me: u64) -> bool {
        match self {
            Change::Access { is_staff, .. } => *is_staff != user.is_staff,
            Change::Edit(edit) => name_key(&edit.email) != name_key(&user.email),
            Change::Deactivate => user.is_active,
            Change::MfaReset | Change::RevokeKey(_) => true,
            Change::EndDevice(_) | Change::EndAll => user.id != me,
            Change::Restore | Change::ResetMail | Change::VerifyMail => false,
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
            Change::Edit(_) => format!("change the email address of {username}"),
            Change::VerifyMail => format!("mail {username} a verification link"),
            Change::EndDevice(_) => format!("sign {username} out of one device"),
            Change::EndAll => format!("sign {username} out everywhere"),
            Change::RevokeKey(_) => format!("revoke an API key of {username}"),
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
    let said = Said {
        notice,
        ..Said::default()
    };
    view(app, who, csrf, id, &said, 200).await
}

/// What the page says above and in its forms after a post.
#[derive(Default)]
struct Said<'a> {
    /// After a change: what it did.
    notice: Option<&'a str>,
    /// A refused change: why, above the page.
    errors: &'a [String],
    /// A refused edit: the values posted and the messages beside their fields.
    edit: Option<(&'a Edit, &'a FieldErrors)>,
    /// The key just made for the user, shown this once.
    new_key: Option<&'a str>,
    /// A refused key form: what was posted, and the messages beside its fields.
    key_refused: Option<(&'a Map<String, Value>, FieldErrors)>,
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
    if data.get(ACTION_FIELD).and_then(Value::as_str) == Some(MAKE_KEY_ACTION) {
        return make_key(app, p, who, csrf, id, &data).await;
    }
    let Some(change) = Change::of_form(&data) else {
        let said = Said {
            errors: &[UNKNOWN_FORM.to_string()],
            ..Said::default()
        };
        return view(app, who, csrf, id, &said, 400).await;
    };
    let me = kit::actor(p, Some(who));
    let console = &app.config.console;
    if change.destructive(&user, who.user_id) {
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
        Err(Refused::Said(message)) => {
            let said = Said {
                errors: &[message.to_string()],
                ..Said::default()
            };
            view(app, who, csrf, id, &said, 400).await
        }
        Err(Refused::Api(e)) => {
            let (errors, fields) = split_errors(&e, &change);
            let said = Said {
                errors: &errors,
                edit: match &change {
                    Change::Edit(edit) => Some((edit, &fields)),
                    _ => None,
                },
                ..Said::default()
            };
            view(app, who, csrf, id, &said, e.to_response().status).await
        }
    }
}

/// The key form: a key for the user, with the staff member's own password (and code) in
/// the form, which is the re-authentication (`accounts::keys::admin_make_key`); the key is
/// shown once, in this answer.
async fn make_key(
    app: &App,
    p: &PageRequest<'_>,
    who: &Identity,
    csrf: &Csrf,
    id: u64,
    data: &Map<String, Value>,
) -> Response {
    let me = kit::actor(p, Some(who));
    let input = crate::web::pages::key_input(data, None);
    match accounts::keys::admin_make_key(app, &me, id, &input).await {
        Ok(made) => {
            let said = Said {
                notice: Some(KEY_MADE),
                new_key: Some(&made.key),
                ..Said::default()
            };
            view(app, who, csrf, id, &said, 200).await
        }
        Err(e) => {
            let fields = crate::web::pages::key_errors(&e);
            let (beside, rest): (FieldErrors, FieldErrors) = fields
                .into_iter()
                .partition(|(f, _)| KEY_FORM_FIELDS.contains(&f.as_str()));
            let mut above = vec![KEY_REFUSED.to_string()];
            above.extend(super::lines(rest));
            let said = Said {
                errors: &above,
                key_refused: Some((data, beside)),
                ..Said::default()
            };
            view(app, who, csrf, id, &said, e.to_response().status).await
        }
    }
}

/// The operation's refusal of `change` as the page says it: the messages above the page,
/// and an edit's field messages, which go beside their fields (with a line above saying so).
fn split_errors(e: &ApiError, change: &Change) -> (Vec<String>, FieldErrors) {
    let beside = |field: &str| matches!(change, Change::Edit(_)) && EDIT_FIELDS.contains(&field);
    let (fields, rest): (FieldErrors, FieldErrors) = kit::field_errors(e)
        .into_iter()
        .partition(|(f, _)| beside(f));
    let mut above = super::lines(rest);
    if !fields.is_empty() {
        above.insert(0, EDIT_REFUSED.to_string());
    }
    (above, fields)
}

/// Why a change was not made: the operation's refusal, or the page's own words.
enum Refused {
    Api(ApiError),
    Said(&'static str),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Api(e)
    }
}

/// The change, by the admin API's operation for it.
async fn carry_out(app: &App, me: &Actor, user: &User, change: &Change) -> Result<Done, Refused> {
    let mut input = Map::new();
    match change {
        Change::Edit(edit) => {
            for (name, value) in EDIT_FIELDS.into_iter().zip(edit.values()) {
                input.insert(name.into(), Value::String(value.to_string()));
            }
            accounts::change_access(app, me, user.id, &input).await?;
            Ok(Done::Edited)
        }
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
            mail_possible(app, user)?;
            accounts::request_password_reset(app, me, &input).await?;
            Ok(Done::ResetMailed)
        }
        Change::VerifyMail => {
            if user.email_verified {
                return Err(Refused::Said(ALREADY_VERIFIED));
            }
            mail_possible(app, user)?;
            input.insert("email".into(), Value::String(user.email.clone()));
            accounts::request_verification(app, me, &input).await?;
            Ok(Done::VerifyMailed)
        }
        Change::EndDevice(device) => {
            match accounts::end_user_devices(app, me, user.id, Some(device)).await? {
                0 => Ok(Done::AlreadyEnded),
                _ => Ok(Done::DeviceEnded),
            }
        }
        Change::EndAll => {
            accounts::end_user_devices(app, me, user.id, None).await?;
            Ok(Done::AllEnded)
        }
        Change::RevokeKey(key) => {
            match accounts::keys::admin_revoke_key(app, me, user.id, key).await? {
                true => Ok(Done::KeyRevoked),
                false => Ok(Done::KeyGone),
            }
        }
    }
}

/// A link mail can reach `user`: the link operations answer alike whether they mail or not
/// (they say nothing about an address), so the page says why it would not.
fn mail_possible(app: &App, user: &User) -> Result<(), Refused> {
    if !app.mailer.enabled() {
        return Err(Refused::Said(MAIL_OFF));
    }
    if !user.is_active {
        return Err(Refused::Said(INACTIVE_NO_MAIL));
    }
    Ok(())
}

/// The user's API keys as the page lists them (newest first, revoked ones too): never the
/// key, which nobody holds but the one it was shown to.
fn api_keys(keys: &[ApiKey]) -> Vec<KeyRow<'_>> {
    keys.iter()
        .map(|k| KeyRow {
            id: &k.id,
            name: &k.name,
            prefix: &k.prefix,
            created: k.created,
            expires_at: k.expires_at,
            last_used: k.last_used,
            revoked: k.revoked,
        })
        .collect()
}

/// The user page of user `id`, with what `said` says.
async fn view(
    app: &App,
    who: &Identity,
    csrf: &Csrf,
    id: u64,
    said: &Said<'_>,
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
        keys,
    } = &facts;
    let devices: Vec<DeviceRow<'_>> = devices
        .iter()
        .map(|d| DeviceRow {
            id: &d.id,
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
    let keys = api_keys(keys);
    let own = Edit::of_user(user);
    let no_errors = FieldErrors::new();
    let (edit, edit_errors) = said.edit.unwrap_or((&own, &no_errors));
    let at = crate::clock::now();
    let max_days = app.config.apikeys.max_lifetime_days;
    let asks_code = match accounts::mfa::enabled(app, who.user_id).await {
        Ok(found) => found.is_some(),
        Err(e) => return kit::rendered_error(app, &e),
    };
    let kept = |name: &str| {
        said.key_refused
            .as_ref()
            .map_or_else(String::new, |(d, _)| kit::field(d, name))
    };
    let (key_name, key_expires) = (kept("name"), kept("expires_at"));
    let key_form = KeyForm {
        new_key: said.new_key,
        min_date: crate::web::render::input_date(at.saturating_add(86_400)),
        max_date: crate::web::render::input_date(
            at.saturating_add(max_days.saturating_mul(86_400)),
        ),
        name: &key_name,
        expires: &key_expires,
        errors: said
            .key_refused
            .as_ref()
            .map_or_else(FieldErrors::new, |(_, e)| e.clone()),
        asks_code,
    };
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
            events_capped: events.len() >= EVENTS_SHOWN,
            keys: &keys,
            is_service: user.is_service,
            key_form,
            edit: EditForm {
                username: &edit.username,
                email: &edit.email,
                first_name: &edit.first_name,
                last_name: &edit.last_name,
                errors: edit_errors,
            },
            notice: said.notice,
            errors: said.errors,
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
    keys: Vec<ApiKey>,
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
    let keys = app.store.list_api_keys(id).await?;
    Ok(Some(Facts {
        user,
        two_factor,
        devices,
        events,
        keys,
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
        let edit = Change::of_form(&form(json!({
            "action": "edit", "username": "<b>ann</b>", "email": " a@x.org ",
            "first_name": "Ann", "ignored": "x"
        })));
        assert_eq!(
            edit,
            Some(Change::Edit(Edit {
                username: "<b>ann</b>".into(),
                email: " a@x.org ".into(),
                first_name: "Ann".into(),
                last_name: String::new(),
            })),
            "as typed: the operation trims and checks"
        );
        assert_eq!(
            Change::of_form(&form(json!({"action": "end-device", "device": "abc"}))),
            Some(Change::EndDevice("abc".into()))
        );
        assert_eq!(
            Change::of_form(&form(json!({"action": "end-device"}))),
            None,
            "no device named"
        );
        assert_eq!(
            Change::of_form(&form(json!({"action": "end-device", "device": 7}))),
            None,
            "not text"
        );
        for change in [
            access.clone().unwrap_or(Change::Restore),
            unticked.clone().unwrap_or(Change::Restore),
            edit.clone().unwrap_or(Change::Restore),
            Change::Deactivate,
            Change::Restore,
            Change::MfaReset,
            Change::ResetMail,
            Change::VerifyMail,
            Change::EndDevice("fam<1>".into()),
            Change::EndAll,
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
    fn an_edits_field_messages_go_beside_their_fields_and_the_rest_above() {
        use crate::error::field::USERNAME_TAKEN;
        let u = test_user(3, "u", "u@example.com");
        let edit = Change::Edit(Edit::of_user(&u));
        let taken = ApiError::field("username", USERNAME_TAKEN);
        let (above, beside) = split_errors(&taken, &edit);
        assert_eq!(above, [EDIT_REFUSED]);
        assert_eq!(
            beside.get("username"),
            Some(&vec![USERNAME_TAKEN.to_string()])
        );
        // Another form's field messages say which field, above the page.
        let groups = ApiError::field("groups", "Too long.");
        let access = Change::of_form(&form(json!({"action": "access"})));
        let (above, beside) = split_errors(&groups, &access.unwrap_or(Change::Restore));
        assert_eq!(above, ["groups: Too long."]);
        assert!(beside.is_empty());
        // A refusal of the whole request is said as it is.
        let (above, beside) = split_errors(&ApiError::NoUser, &edit);
        assert_eq!(above, ["No User matches the given query."]);
        assert!(beside.is_empty());
    }

    #[test]
    fn only_changes_that_take_or_grant_access_need_a_recent_sign_in() {
        let mut u = test_user(3, "u", "u@example.com");
        let staff = |s: bool| Change::Access {
            is_staff: s,
            groups: vec!["x".into()],
        };
        let me = 1;
        assert!(!staff(false).destructive(&u, me), "groups alone");
        assert!(staff(true).destructive(&u, me), "made staff");
        assert!(Change::Deactivate.destructive(&u, me));
        assert!(Change::MfaReset.destructive(&u, me));
        assert!(!Change::Restore.destructive(&u, me));
        assert!(!Change::ResetMail.destructive(&u, me));
        assert!(!Change::VerifyMail.destructive(&u, me));
        let edit = |email: &str| {
            Change::Edit(Edit {
                email: email.into(),
                username: "other".into(),
                ..Edit::of_user(&u)
            })
        };
        assert!(!edit("U@Example.com").destructive(&u, me), "same address");
        assert!(
            edit("new@example.com").destructive(&u, me),
            "reset links go elsewhere"
        );
        assert!(Change::EndAll.destructive(&u, me), "someone else's");
        assert!(Change::EndDevice("s".into()).destructive(&u, me));
        assert!(!Change::EndAll.destructive(&u, u.id), "one's own");
        assert!(!Change::EndDevice("s".into()).destructive(&u, u.id));
        assert_eq!(Change::EndAll.describe("ann"), "sign ann out everywhere");
        assert_eq!(
            edit("n@example.com").describe("ann"),
            "change the email address of ann"
        );
        u.is_staff = true;
        assert!(staff(false).destructive(&u, me), "staff taken away");
        u.is_active = false;
        assert!(
            !Change::Deactivate.destructive(&u, me),
            "already deactivated"
        );

        assert_eq!(
            Change::Deactivate.describe("<b>"),
            "deactivate <b>",
            "escaped by the template, not here"
        );
    }
}
