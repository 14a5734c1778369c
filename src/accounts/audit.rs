//! The audit events the operations record (SPEC §16): what each action's details hold, made
//! from named fields only (never a password, hash, token, code, key, link or cookie), and the
//! bounded write of events that change nothing.

use super::{writer, Actor};
use crate::app::App;
use crate::metrics::AUDIT_UNWRITTEN;
use crate::store::{Action, Event, User};
use serde_json::{Map, Value};

/// `user.registered` of `user` (the target; the store sets its id when it creates it).
pub(super) fn registered(actor: &Actor, user: &User) -> Event {
    actor
        .event(Action::UserRegistered, Some(user.id))
        .detail("username", user.username.as_str())
        .detail("email", user.email.as_str())
        .detail("is_staff", user.is_staff)
}

/// The fields of a user an event may show, by name: what a person can see and change.
fn shown(u: &User) -> [(&'static str, Value); 8] {
    [
        ("username", u.username.as_str().into()),
        ("email", u.email.as_str().into()),
        ("first_name", u.first_name.as_str().into()),
        ("last_name", u.last_name.as_str().into()),
        ("is_active", u.is_active.into()),
        ("is_staff", u.is_staff.into()),
        ("groups", u.groups.clone().into()),
        ("email_verified", u.email_verified.into()),
    ]
}

/// The shown fields that differ between `before` and `after`: `(before, after)` maps.
pub(super) fn differences(before: &User, after: &User) -> (Map<String, Value>, Map<String, Value>) {
    let (mut was, mut is) = (Map::new(), Map::new());
    for ((name, old), (_, new)) in shown(before).into_iter().zip(shown(after)) {
        if old != new {
            was.insert(name.to_string(), old);
            is.insert(name.to_string(), new);
        }
    }
    (was, is)
}

/// `action` on `after`, with the shown fields that changed before and after; `None` when
/// none did.
pub(super) fn changed(actor: &Actor, action: Action, before: &User, after: &User) -> Option<Event> {
    let (was, is) = differences(before, after);
    if was.is_empty() {
        return None;
    }
    Some(
        actor
            .event(action, Some(after.id))
            .detail("before", was)
            .detail("after", is),
    )
}

/// Records a refused CSRF check of `path` (Django's `reason`): an event that changes
/// nothing, bounded like a failed sign-in.
pub async fn csrf_refused(app: &App, actor: &Actor, reason: &str, path: &str) {
    let event = actor
        .event(Action::CsrfRefused, actor.user_id().ok())
        .detail("reason", reason)
        .detail("path", path);
    record_alone(app, event).await;
}

/// Records an event whose change was written apart (a refresh family's revocation: family
/// records carry no effects).
pub async fn record_event(app: &App, event: Event) -> Result<(), crate::store::StoreError> {
    writer::record(app, event.into()).await
}

/// Records an event that changes nothing (a failed sign-in, a refused CSRF check), within
/// the per-address bound; one that cannot be written is counted and logged, never fails the
/// answer it describes.
pub async fn record_alone(app: &App, event: Event) {
    if !app.unaccompanied.admit(&event, crate::clock::now()) {
        return;
    }
    let action = event.action.as_str();
    if let Err(e) = writer::record(app, event.into()).await {
        AUDIT_UNWRITTEN.with_label_values(&[action]).inc();
        log::warn!("audit: a {action} event was not written: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_user;

    #[test]
    fn a_change_shows_only_the_fields_that_changed_and_never_the_password() {
        let before = test_user(3, "ann", "ann@example.com");
        let mut after = before.clone();
        after.email = "new@example.com".into();
        after.password = "argon2id$secret".into();
        after.token_version += 1;
        after.groups = vec!["ops".into()];
        let event =
            changed(&Actor::system(), Action::AdminUserChanged, &before, &after).expect("a change");
        assert_eq!(event.target_id, Some(3));
        assert_eq!(
            Value::Object(event.details.clone()),
            serde_json::json!({
                "before": {"email": "ann@example.com", "groups": []},
                "after": {"email": "new@example.com", "groups": ["ops"]},
            })
        );
        let mut only_password = before.clone();
        only_password.password = "other".into();
        assert!(changed(
            &Actor::system(),
            Action::AdminUserChanged,
            &before,
            &only_password
        )
        .is_none());
    }
}
