//! The groups page (`groups/`): every group with its member count, each linking to the users
//! list filtered by it, and the rename and delete forms, carried out by
//! `accounts::groups::change_group` (member by member through the admin API's change) after
//! the re-authentication step.

use super::reauth;
use super::render::ACTION_FIELD;
use super::views::{self, GroupDone, GroupRow, GROUP_DONE_PARAM, GROUP_FIELD, NEW_NAME_FIELD};
use crate::accounts::groups::{change_group, group_name, GroupChange};
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::response::Response;
use crate::web::kit::{self, Csrf, PageRequest};
use serde_json::{Map, Value};

/// How many groups the page lists (by name).
pub const GROUPS_SHOWN: usize = 1_000;
/// Above the page when a posted form names no change this page makes.
const UNKNOWN_FORM: &str = "That form is not one this page knows. Nothing was changed.";

/// The users list of `group`'s members (`users/?group=NAME`), under `prefix`.
pub fn list_url(prefix: &str, group: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("group", group);
    format!("{prefix}users/?{}", query.finish())
}

/// The change a posted form asks for, its names checked by the admin API's group-name rule
/// (messages under `name` for the group, `to` for the new name); `None` when the form is
/// not one of this page's.
pub fn change_of(data: &Map<String, Value>) -> Option<Result<GroupChange, ApiError>> {
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("");
    let action = text(ACTION_FIELD);
    if action != "rename" && action != "delete" {
        return None;
    }
    let name = match group_name(text(GROUP_FIELD), "name") {
        Ok(name) => name,
        Err(e) => return Some(Err(e)),
    };
    Some(match action {
        "rename" => group_name(text(NEW_NAME_FIELD), NEW_NAME_FIELD)
            .map(|to| GroupChange::Rename { from: name, to }),
        _ => Ok(GroupChange::Delete { name }),
    })
}

/// The form fields that post `change` again (the re-authentication page carries them).
pub fn fields_of(change: &GroupChange) -> Vec<(String, String)> {
    let mut out = vec![(GROUP_FIELD.to_string(), change.name().to_string())];
    match change {
        GroupChange::Rename { to, .. } => {
            out.push((ACTION_FIELD.to_string(), "rename".into()));
            out.push((NEW_NAME_FIELD.to_string(), to.clone()));
        }
        GroupChange::Delete { .. } => out.push((ACTION_FIELD.to_string(), "delete".into())),
    }
    out
}

/// What `change` does, completing "To …, enter your password".
pub fn describe(change: &GroupChange) -> String {
    match change {
        GroupChange::Rename { from, to } => format!("rename the group {from} to {to}"),
        GroupChange::Delete { name } => format!("delete the group {name}"),
    }
}

/// The groups page, with the notice of a change just made.
pub(super) async fn page(app: &App, p: &PageRequest<'_>, who: &Identity, csrf: &Csrf) -> Response {
    let done = p.req.query_param(GROUP_DONE_PARAM);
    let notice = done
        .as_deref()
        .and_then(GroupDone::parse)
        .map(GroupDone::text);
    view(app, who, csrf, notice, &[], 200).await
}

/// A rename or delete form: after the password again when the sign-in is old.
pub(super) async fn act(app: &App, p: &PageRequest<'_>, who: &Identity, csrf: &Csrf) -> Response {
    let data = match p.req.data() {
        Ok(data) => data,
        Err(e) => return e.to_response(),
    };
    let change = match change_of(&data) {
        None => return view(app, who, csrf, None, &[UNKNOWN_FORM.to_string()], 400).await,
        Some(Err(e)) => return refused(app, who, csrf, &e).await,
        Some(Ok(change)) => change,
    };
    let prefix = &app.config.console.prefix;
    let action_url = format!("{prefix}groups/");
    let asked = reauth::Asked {
        action_url: &action_url,
        what: &describe(&change),
        carried: &fields_of(&change),
    };
    if let Some(page) = reauth::cleared(app, p, who, csrf, &data, &asked).await {
        return page;
    }
    let me = kit::actor(p, Some(who));
    match change_group(app, &me, &change).await {
        Ok(_) => {
            let done = match change {
                GroupChange::Rename { .. } => GroupDone::Renamed,
                GroupChange::Delete { .. } => GroupDone::Deleted,
            };
            Response::redirect(
                303,
                format!("{action_url}?{GROUP_DONE_PARAM}={}", done.as_str()),
            )
        }
        Err(e) => refused(app, who, csrf, &e).await,
    }
}

/// The page again with the operation's messages (field names said as the form says them).
async fn refused(app: &App, who: &Identity, csrf: &Csrf, e: &ApiError) -> Response {
    let errors: Vec<String> = kit::field_errors(e)
        .into_iter()
        .flat_map(|(field, messages)| {
            let label = match field.as_str() {
                "name" => "Group: ",
                NEW_NAME_FIELD => "New name: ",
                _ => "",
            };
            messages.into_iter().map(move |m| format!("{label}{m}"))
        })
        .collect();
    let status = e.to_response().status;
    view(app, who, csrf, None, &errors, status).await
}

async fn view(
    app: &App,
    who: &Identity,
    csrf: &Csrf,
    notice: Option<&str>,
    errors: &[String],
    status: u16,
) -> Response {
    let mut counts = match app.store.group_counts(GROUPS_SHOWN + 1).await {
        Ok(c) => c,
        Err(e) => return kit::rendered_error(app, &ApiError::from(e)),
    };
    let more = counts.len() > GROUPS_SHOWN;
    counts.truncate(GROUPS_SHOWN);
    let prefix = &app.config.console.prefix;
    let rows: Vec<GroupRow<'_>> = counts
        .iter()
        .enumerate()
        .map(|(i, g)| GroupRow {
            index: i + 1,
            name: &g.name,
            members: g.members,
            list_url: list_url(prefix, &g.name),
        })
        .collect();
    let token = csrf.token();
    kit::rendered(
        status,
        views::groups(&views::GroupsPage {
            frame: super::frame(app, &who.username, &token),
            groups: &rows,
            more,
            notice,
            errors,
            recent_minutes: app.config.console.recent_sign_in_minutes,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn forms_name_their_change_and_post_it_again_unchanged() {
        let rename = change_of(&form(
            json!({"action": "rename", "group": " ops ", "to": " sre "}),
        ));
        assert_eq!(
            rename,
            Some(Ok(GroupChange::Rename {
                from: "ops".into(),
                to: "sre".into()
            }))
        );
        let delete = change_of(&form(json!({"action": "delete", "group": "ops"})));
        assert_eq!(delete, Some(Ok(GroupChange::Delete { name: "ops".into() })));
        for change in [rename, delete].into_iter().flatten().flatten() {
            let again: Map<String, Value> = fields_of(&change)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            assert_eq!(change_of(&again), Some(Ok(change.clone())));
        }
        assert_eq!(change_of(&form(json!({"action": "nope"}))), None);
        assert_eq!(change_of(&form(json!({}))), None);
        let blank = change_of(&form(
            json!({"action": "rename", "group": "ops", "to": " "}),
        ));
        assert!(
            matches!(&blank, Some(Err(ApiError::Validation(f))) if f[0].0 == "to"),
            "{blank:?}"
        );
        let long = change_of(&form(
            json!({"action": "rename", "group": "ops", "to": "x".repeat(151)}),
        ));
        assert!(matches!(long, Some(Err(ApiError::Validation(_)))));
    }

    #[test]
    fn each_group_links_to_its_members_list() {
        assert_eq!(list_url("/admin/", "ops"), "/admin/users/?group=ops");
        assert_eq!(
            list_url("/admin/", "a&b c/<x>"),
            "/admin/users/?group=a%26b+c%2F%3Cx%3E"
        );
        assert_eq!(
            describe(&GroupChange::Delete { name: "ops".into() }),
            "delete the group ops"
        );
    }
}
