//! Staff changes to other users: username, email, names, staff, active and groups
//! (`change_access`; one group at a time, `change_groups`), restoring a soft-deleted user, and ending a user's sessions and refresh
//! families (`end_user_devices`).

use super::fields::{self, name_field, PARTIAL_UPDATE};
use super::{audit, sessions, writer, Actor, Input};
use crate::accounts::form::Fields;
use crate::app::App;
use crate::clock::now;
use crate::error::{ApiError, FieldError};
use crate::store::{group_names, name_key, Action, Effects, User, GROUP_NAME_MAX};
use serde_json::{json, Map};

/// What a change of one user's access asks for; `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessChange {
    pub is_staff: Option<bool>,
    pub is_active: Option<bool>,
    pub groups: Option<GroupsEdit>,
}

/// How a change sets a user's groups: the API's whole list, or one group added, removed or
/// renamed in the groups the user has when the write happens (so that a change made meanwhile
/// to the user's other groups is kept: the console's bulk actions and group pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupsEdit {
    Replace(Vec<String>),
    Add(String),
    Remove(String),
    /// A member of both keeps one; a user without `from` is left as they are.
    Rename {
        from: String,
        to: String,
    },
}

impl GroupsEdit {
    /// `groups` after the edit, sorted, each once.
    pub fn apply(&self, groups: &[String]) -> Vec<String> {
        let without =
            |name: &str| -> Vec<String> { groups.iter().filter(|g| *g != name).cloned().collect() };
        match self {
            GroupsEdit::Replace(names) => group_names(names.clone()),
            GroupsEdit::Add(name) => {
                group_names(groups.iter().cloned().chain([name.clone()]).collect())
            }
            GroupsEdit::Remove(name) => group_names(without(name)),
            GroupsEdit::Rename { from, to } if groups.contains(from) => {
                group_names(without(from).into_iter().chain([to.clone()]).collect())
            }
            GroupsEdit::Rename { .. } => group_names(groups.to_vec()),
        }
    }

    /// The group names it brings in or takes out (checked by [`group_name`]).
    fn names(&self) -> Vec<&str> {
        match self {
            GroupsEdit::Replace(names) => names.iter().map(String::as_str).collect(),
            GroupsEdit::Add(name) | GroupsEdit::Remove(name) => vec![name],
            GroupsEdit::Rename { from, to } => vec![from, to],
        }
    }
}

/// `raw` checked by the admin API's rule for a name in a user's `groups` (DRF's
/// `CharField(max_length=150)`: trimmed, not blank, no NUL), its messages under `field`.
pub fn group_name(raw: &str, field: &str) -> Result<String, ApiError> {
    let mut data = Map::new();
    data.insert("groups".into(), json!([raw]));
    let mut f = Fields::new(&data);
    let names = f.char_list("groups", GROUP_NAME_MAX);
    match f.finish() {
        Ok(()) => names
            .and_then(|n| n.into_iter().next())
            .ok_or_else(|| ApiError::field(field, crate::error::field::BLANK)),
        Err(ApiError::Validation(errors)) => {
            let messages = errors
                .iter()
                .flat_map(|(_, e)| e.messages())
                .map(str::to_string)
                .collect();
            Err(ApiError::Validation(vec![(
                field.to_string(),
                FieldError::Messages(messages),
            )]))
        }
        Err(other) => Err(other),
    }
}

impl AccessChange {
    /// Applies the change at `when`. Deactivating is a soft delete (every token of the user
    /// dies, as with the user's own delete); activating is a restore (the old tokens stay
    /// dead). Staff and groups are read from the current state on every request, so changing
    /// them revokes nothing.
    pub fn apply(&self, u: &mut User, when: u64) {
        if let Some(staff) = self.is_staff {
            u.is_staff = staff;
        }
        if let Some(edit) = &self.groups {
            u.groups = edit.apply(&u.groups);
        }
        match self.is_active {
            Some(false) if u.is_active => {
                u.is_active = false;
                u.deleted_at = Some(when);
                u.token_version += 1;
            }
            Some(true) if !u.is_active => {
                u.is_active = true;
                u.deleted_at = None;
            }
            _ => {}
        }
    }
}

/// A staff member's edit of what identifies a user; `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityChange {
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl IdentityChange {
    /// Applies the change: a new address (not the same one in another case) is not verified
    /// yet. Nothing is revoked: tokens carry the user id, and the name is read per request.
    pub fn apply(&self, u: &mut User) {
        if let Some(v) = &self.username {
            u.username.clone_from(v);
        }
        if let Some(v) = &self.email {
            if name_key(v) != name_key(&u.email) {
                u.email_verified = false;
            }
            u.email.clone_from(v);
        }
        if let Some(v) = &self.first_name {
            u.first_name.clone_from(v);
        }
        if let Some(v) = &self.last_name {
            u.last_name.clone_from(v);
        }
    }
}

/// Any of `username`, `email`, `first_name`, `last_name` (the profile update's fields and
/// messages: a name or address someone else holds is taken), `is_staff`, `is_active`,
/// `groups` (DRF's BooleanField and `ListField(child=CharField(max_length=150))`) for user
/// `id`; other fields are ignored. One `admin.user_changed` event with the fields before and
/// after; a new address gets the profile update's mails (a notice to the old one, a
/// verification mail to the new one when `verify_on_register`). Effective on the next
/// request on every path. An unknown id is 404 before the data is read (DRF's get_object
/// comes first).
pub async fn change_access(
    app: &App,
    actor: &Actor,
    id: u64,
    input: &dyn Input,
) -> Result<User, ApiError> {
    actor.require_staff()?;
    if app.store.get_user(id).await?.is_none() {
        return Err(ApiError::NoUser);
    }
    let data = input.data()?;
    let mut f = Fields::new(&data);
    let names = fields::names(app.store.as_ref(), &mut f, PARTIAL_UPDATE, Some(id)).await?;
    let identity = IdentityChange {
        username: names.username,
        email: names.email.clone(),
        first_name: name_field(&mut f, "first_name"),
        last_name: name_field(&mut f, "last_name"),
    };
    let change = AccessChange {
        is_staff: f.boolean("is_staff"),
        is_active: f.boolean("is_active"),
        groups: f
            .char_list("groups", GROUP_NAME_MAX)
            .map(GroupsEdit::Replace),
    };
    let mfa = f.boolean("mfa");
    f.finish()?;
    if mfa == Some(true) {
        return Err(ApiError::field("mfa", crate::error::field::MFA_ONLY_OFF));
    }
    // The cap is counted here, once, not in the store's (retryable) transaction.
    let verify = match (&names.email, names.new_address) {
        (Some(email), true) => app.mailer.verification_permit(email).await,
        _ => false,
    };
    let mut user = write(app, actor, id, &identity, &change, verify).await?;
    if mfa == Some(false) && super::mfa::admin_reset(app, actor, id).await? {
        user = app.store.get_user(id).await?.ok_or(ApiError::NoUser)?;
    }
    Ok(user)
}

/// One group of user `id` added, removed or renamed (`edit`, not a whole list), as the admin
/// API changes groups: its name rule, its `admin.user_changed` event with before and after.
pub async fn change_groups(
    app: &App,
    actor: &Actor,
    id: u64,
    edit: &GroupsEdit,
) -> Result<User, ApiError> {
    actor.require_staff()?;
    for name in edit.names() {
        group_name(name, "groups")?;
    }
    let change = AccessChange {
        groups: Some(edit.clone()),
        ..AccessChange::default()
    };
    write(app, actor, id, &IdentityChange::default(), &change, false).await
}

/// The one write of a staff change to user `id`: applied to the user as stored at that
/// moment, with its notices (`verify`: mail the new address a verification link) and its
/// `admin.user_changed` event.
async fn write(
    app: &App,
    actor: &Actor,
    id: u64,
    identity: &IdentityChange,
    change: &AccessChange,
    verify: bool,
) -> Result<User, ApiError> {
    let when = now();
    let mailer = &app.mailer;
    writer::update(
        app,
        id,
        &|u| {
            identity.apply(u);
            change.apply(u, when);
        },
        &|before, after| {
            let mails = Effects::from(mailer.notices(before, after, verify, when));
            match audit::changed(actor, Action::AdminUserChanged, before, after) {
                Some(event) => mails.with(event),
                None => mails,
            }
        },
    )
    .await
    .map_err(ApiError::from)
}

/// User `id` active again; tokens issued before the soft delete stay dead (the user logs in
/// again). Restoring an active user changes nothing.
pub async fn restore(app: &App, actor: &Actor, id: u64) -> Result<User, ApiError> {
    actor.require_staff()?;
    let user = writer::update(
        app,
        id,
        &|u| {
            u.is_active = true;
            u.deleted_at = None;
        },
        // Restoring an active user changes nothing, and records nothing.
        &|before, after| {
            if before.is_active {
                return Effects::none();
            }
            actor.event(Action::UserRestored, Some(after.id)).into()
        },
    )
    .await?;
    Ok(user)
}

/// Ends user `id`'s sessions and refresh families (`session.revoked`, the user as target):
/// the one whose id is `device`, or every one when `None`. Refused at once on every path;
/// how many ended (0: the device was no longer theirs, or they had none).
pub async fn end_user_devices(
    app: &App,
    actor: &Actor,
    id: u64,
    device: Option<&str>,
) -> Result<usize, ApiError> {
    actor.require_staff()?;
    if app.store.get_user(id).await?.is_none() {
        return Err(ApiError::NoUser);
    }
    match device {
        Some(device) => Ok(usize::from(
            sessions::end_device(app, actor, id, device).await?,
        )),
        None => sessions::end_all_devices(app, actor, id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_user;

    #[test]
    fn one_group_edits_apply_to_the_groups_at_hand() {
        let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let have = v(&["billing", "ops"]);
        let add = |n: &str| GroupsEdit::Add(n.into());
        let rename = |from: &str, to: &str| GroupsEdit::Rename {
            from: from.into(),
            to: to.into(),
        };
        assert_eq!(add("audit").apply(&have), v(&["audit", "billing", "ops"]));
        assert_eq!(add("ops").apply(&have), have, "already in it");
        assert_eq!(
            GroupsEdit::Remove("ops".into()).apply(&have),
            v(&["billing"])
        );
        assert_eq!(GroupsEdit::Remove("sre".into()).apply(&have), have);
        assert_eq!(rename("ops", "sre").apply(&have), v(&["billing", "sre"]));
        assert_eq!(
            rename("ops", "billing").apply(&have),
            v(&["billing"]),
            "merged"
        );
        assert_eq!(rename("sre", "x").apply(&have), have, "not a member");
        assert_eq!(
            GroupsEdit::Replace(v(&["b", "a", "b"])).apply(&have),
            v(&["a", "b"])
        );
    }

    fn someone() -> User {
        let mut u = test_user(1, "u", "u@example.com");
        u.token_version = 3;
        u.groups = vec!["old".into()];
        u
    }

    #[test]
    fn access_changes_revoke_only_on_deactivation() {
        let mut u = someone();
        AccessChange {
            is_staff: Some(true),
            groups: Some(GroupsEdit::Replace(vec![
                "ops".into(),
                "billing".into(),
                "ops".into(),
            ])),
            ..AccessChange::default()
        }
        .apply(&mut u, 50);
        assert!(u.is_staff && u.is_active);
        assert_eq!(u.groups, ["billing", "ops"]);
        assert_eq!(u.token_version, 3);
        let off = AccessChange {
            is_active: Some(false),
            ..AccessChange::default()
        };
        off.apply(&mut u, 60);
        assert_eq!(
            (u.is_active, u.deleted_at, u.token_version),
            (false, Some(60), 4)
        );
        // Already inactive: nothing more dies, the deletion time stays.
        off.apply(&mut u, 70);
        assert_eq!((u.deleted_at, u.token_version), (Some(60), 4));
        AccessChange {
            is_active: Some(true),
            ..AccessChange::default()
        }
        .apply(&mut u, 80);
        assert_eq!(
            (u.is_active, u.deleted_at, u.token_version),
            (true, None, 4)
        );
        let before = u.clone();
        AccessChange::default().apply(&mut u, 90);
        assert_eq!(u, before);
    }

    #[test]
    fn a_new_address_is_unverified_and_the_same_one_in_another_case_stays_verified() {
        let mut u = someone();
        u.email_verified = true;
        let before = u.clone();
        IdentityChange::default().apply(&mut u);
        assert_eq!(u, before, "nothing asked, nothing changed");
        IdentityChange {
            email: Some("U@Example.com".into()),
            first_name: Some("Ann".into()),
            ..IdentityChange::default()
        }
        .apply(&mut u);
        assert_eq!(
            (u.email.as_str(), u.email_verified, u.first_name.as_str()),
            ("U@Example.com", true, "Ann")
        );
        IdentityChange {
            username: Some("ann".into()),
            email: Some("ann@example.com".into()),
            last_name: Some(String::new()),
            ..IdentityChange::default()
        }
        .apply(&mut u);
        assert_eq!(
            (u.username.as_str(), u.email.as_str(), u.email_verified),
            ("ann", "ann@example.com", false)
        );
        assert_eq!(u.token_version, before.token_version, "nothing revoked");
    }
}
