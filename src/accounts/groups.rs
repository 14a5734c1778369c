//! Groups as a whole (SPEC §12, §18): renaming (onto an existing group: a merge) and deleting
//! a group. Made member by member through `admin::change_groups`, the admin API's change of
//! one user's groups (its name rules and `admin.user_changed` events with before and after),
//! applied to each member's groups as they are at the write, then one `admin.group_changed`
//! event for the group.

use super::admin::{self, GroupsEdit};
use super::{audit, Actor};
use crate::app::App;
use crate::error::ApiError;
use crate::store::{Action, UserCursor, UserQuery};
use serde_json::{json, Map, Value};

pub use super::admin::group_name;

/// Members read per store call while collecting a group's members.
const MEMBERS_BATCH: usize = 500;
/// The answer when the group to change has no member (a group exists only on its users).
pub const NO_SUCH_GROUP: &str = "No user is in this group.";

/// What a change to a group does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Every member's `from` becomes `to` (a member of both keeps one).
    Rename {
        from: String,
        to: String,
    },
    Delete {
        name: String,
    },
}

impl GroupChange {
    /// The group changed.
    pub fn name(&self) -> &str {
        match self {
            GroupChange::Rename { from, .. } => from,
            GroupChange::Delete { name } => name,
        }
    }

    /// The change to one member's groups.
    pub fn edit(&self) -> GroupsEdit {
        match self {
            GroupChange::Rename { from, to } => GroupsEdit::Rename {
                from: from.clone(),
                to: to.clone(),
            },
            GroupChange::Delete { name } => GroupsEdit::Remove(name.clone()),
        }
    }

    /// A member's groups after the change.
    pub fn apply(&self, groups: &[String]) -> Vec<String> {
        self.edit().apply(groups)
    }
}

/// Carries out `change` (its names already checked by [`group_name`]) on every member of the
/// group, as `actor`; how many users changed. A group nobody is in is a `name` field error
/// ([`NO_SUCH_GROUP`]); a rename onto the same name changes nothing.
pub async fn change_group(
    app: &App,
    actor: &Actor,
    change: &GroupChange,
) -> Result<usize, ApiError> {
    actor.require_staff()?;
    if let GroupChange::Rename { from, to } = change {
        if from == to {
            return Ok(0);
        }
    }
    let members = members_of(app, change.name()).await?;
    if members.is_empty() {
        return Err(ApiError::field("name", NO_SUCH_GROUP));
    }
    let edit = change.edit();
    let mut changed = 0;
    for id in members {
        // Read again: the member may have left the group since the list was read. The change
        // itself applies to the groups the member has at its write.
        let Some(user) = app.store.get_user(id).await? else {
            continue;
        };
        if !user.groups.iter().any(|g| g == change.name()) {
            continue;
        }
        admin::change_groups(app, actor, id, &edit).await?;
        changed += 1;
    }
    let (before, after) = match change {
        GroupChange::Rename { from, to } => (json!({"name": from}), json!({"name": to})),
        GroupChange::Delete { name } => (json!({"name": name}), Value::Object(Map::new())),
    };
    let event = actor
        .event(Action::AdminGroupChanged, None)
        .detail("before", before)
        .detail("after", after)
        .detail("members", changed);
    audit::record_event(app, event).await?;
    Ok(changed)
}

/// The ids of every user in `group`, read a batch at a time before anything changes.
async fn members_of(app: &App, group: &str) -> Result<Vec<u64>, ApiError> {
    let query = UserQuery {
        group: Some(group.to_string()),
        ..UserQuery::default()
    };
    let mut ids = Vec::new();
    let mut after: Option<UserCursor> = None;
    loop {
        let page = app
            .store
            .query_users(&query, after.as_ref(), MEMBERS_BATCH)
            .await?;
        ids.extend(page.users.iter().map(|u| u.id));
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_rename_replaces_the_name_and_merges_into_an_existing_group() {
        let rename = |from: &str, to: &str| GroupChange::Rename {
            from: from.into(),
            to: to.into(),
        };
        assert_eq!(
            rename("ops", "sre").apply(&names(&["billing", "ops"])),
            names(&["billing", "sre"])
        );
        assert_eq!(
            rename("ops", "billing").apply(&names(&["billing", "ops"])),
            names(&["billing"]),
            "merged"
        );
        let delete = GroupChange::Delete { name: "ops".into() };
        assert_eq!(
            delete.apply(&names(&["billing", "ops"])),
            names(&["billing"])
        );
        assert_eq!(delete.name(), "ops");
    }

    #[test]
    fn names_follow_the_admin_apis_rules() {
        assert_eq!(group_name("  sre ", "to"), Ok("sre".to_string()));
        let messages = |raw: &str| match group_name(raw, "to") {
            Err(ApiError::Validation(errors)) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].0, "to");
                errors[0].1.messages().join(" ")
            }
            other => panic!("{raw:?}: {other:?}"),
        };
        assert_eq!(messages("   "), crate::error::field::BLANK);
        assert!(messages(&"x".repeat(151)).contains("150"));
        assert!(messages("a\0b").contains("Null characters"));
    }
}
