//! Staff changes to other users: staff, active and groups (`change_access`), and restoring a
//! soft-deleted user.

use super::{audit, writer, Actor, Input};
use crate::accounts::form::Fields;
use crate::app::App;
use crate::clock::now;
use crate::error::ApiError;
use crate::store::{group_names, Action, Effects, User, GROUP_NAME_MAX};

/// What a change of one user's access asks for; `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessChange {
    pub is_staff: Option<bool>,
    pub is_active: Option<bool>,
    pub groups: Option<Vec<String>>,
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
        if let Some(groups) = &self.groups {
            u.groups = group_names(groups.clone());
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

/// Any of `is_staff`, `is_active`, `groups` (DRF's BooleanField and
/// `ListField(child=CharField(max_length=150))`) for user `id`; other fields are ignored.
/// Effective on the next request on every path. An unknown id is 404 before the data is
/// read (DRF's get_object comes first).
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
    let change = AccessChange {
        is_staff: f.boolean("is_staff"),
        is_active: f.boolean("is_active"),
        groups: f.char_list("groups", GROUP_NAME_MAX),
    };
    let mfa = f.boolean("mfa");
    f.finish()?;
    if mfa == Some(true) {
        return Err(ApiError::field("mfa", crate::error::field::MFA_ONLY_OFF));
    }
    let when = now();
    let mut user = writer::update(app, id, &|u| change.apply(u, when), &|before, after| {
        audit::changed(actor, Action::AdminUserChanged, before, after)
            .map_or_else(Effects::none, Effects::from)
    })
    .await?;
    if mfa == Some(false) && super::mfa::admin_reset(app, actor, id).await? {
        user = app.store.get_user(id).await?.ok_or(ApiError::NoUser)?;
    }
    Ok(user)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_user;

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
            groups: Some(vec!["ops".into(), "billing".into(), "ops".into()]),
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
}
