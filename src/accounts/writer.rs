//! The one writer of users: every operation's change goes through here, in this order:
//! the store write with its effects (one transaction: the change and the mails it causes,
//! or neither), then this replica's cache (the next request anywhere on it sees the new
//! state, a revocation included, before the caller hears back), then the mailer's wake-up
//! when mail was recorded. No other code follows a user write with those steps by hand.

use crate::app::App;
use crate::store::{ChangeEffects, Effects, NewUser, NewUserEffects, StoreError, User, UserChange};
use std::sync::atomic::{AtomicBool, Ordering};

/// Creates a user with the effects `effects(&created)` decides.
pub(super) async fn create(
    app: &App,
    new: NewUser,
    effects: NewUserEffects<'_>,
) -> Result<User, StoreError> {
    let mailed = AtomicBool::new(false);
    let user = app
        .store
        .create_user(new, &|created| noted(&mailed, effects(created)))
        .await?;
    written(app, &user, &mailed);
    Ok(user)
}

/// Applies `change` to user `id` with the effects `effects(&before, &after)` decides.
pub(super) async fn update(
    app: &App,
    id: u64,
    change: UserChange<'_>,
    effects: ChangeEffects<'_>,
) -> Result<User, StoreError> {
    let mailed = AtomicBool::new(false);
    let user = app
        .store
        .update_user(id, change, &|before, after| {
            noted(&mailed, effects(before, after))
        })
        .await?;
    written(app, &user, &mailed);
    Ok(user)
}

/// Records effects no user change causes (a link mail).
pub(super) async fn record(app: &App, effects: Effects) -> Result<(), StoreError> {
    let mailed = !effects.mails.is_empty();
    app.store.record(effects).await?;
    if mailed {
        app.mailer.wake.notify_one();
    }
    Ok(())
}

/// Remembers whether the effects the store is about to write hold mail. A backend decides
/// once per attempt of its transaction: the last decision is the one that committed.
fn noted(mailed: &AtomicBool, effects: Effects) -> Effects {
    mailed.store(!effects.mails.is_empty(), Ordering::Relaxed);
    effects
}

fn written(app: &App, user: &User, mailed: &AtomicBool) {
    app.cache.updated(user);
    if mailed.load(Ordering::Relaxed) {
        app.mailer.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::{new_user, MailKind, OutboxMail};
    use std::time::Duration;

    fn app() -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            "[server]\ndata_dir = \"{}\"\n[passwords]\nargon2_memory_kib = 64\nargon2_iterations = 1\n",
            dir.path().display()
        );
        let config = Config::from_toml_and_env(&toml, "t", &[]).expect("config");
        let app = App::open(config).expect("app");
        (dir, app)
    }

    fn notice(u: &User) -> OutboxMail {
        OutboxMail {
            kind: MailKind::PasswordChanged,
            user_id: u.id,
            to: u.email.clone(),
            new_email: None,
            api_key: None,
            account: None,
            created_at: 0,
        }
    }

    /// Whether the sender was woken since the last look (a stored permit).
    async fn woken(app: &App) -> bool {
        tokio::time::timeout(Duration::from_millis(20), app.mailer.wake.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_sender_is_woken_when_mail_was_recorded_and_only_then() {
        let (_dir, app) = app();
        let ann = create(&app, new_user("ann"), &|_| Effects::none())
            .await
            .expect("create");
        assert!(!woken(&app).await, "no mail, no wake-up");
        let ann = update(
            &app,
            ann.id,
            &|u| u.first_name = "Ann".into(),
            &|_, after| notice(after).into(),
        )
        .await
        .expect("update");
        assert_eq!(ann.first_name, "Ann");
        assert!(woken(&app).await);
        assert_eq!(app.store.outbox_depth().await.expect("depth"), 1);
        // A change that fails records nothing and wakes nobody.
        create(&app, new_user("bob"), &|_| Effects::none())
            .await
            .expect("create");
        let taken = update(&app, ann.id, &|u| u.username = "BOB".into(), &|_, after| {
            notice(after).into()
        })
        .await;
        assert_eq!(taken.err(), Some(StoreError::UsernameTaken));
        assert!(!woken(&app).await);
        record(&app, notice(&ann).into()).await.expect("record");
        assert!(woken(&app).await);
        record(&app, Effects::none()).await.expect("record");
        assert!(!woken(&app).await);
        assert_eq!(app.store.outbox_depth().await.expect("depth"), 2);
    }

    #[tokio::test]
    async fn the_written_state_is_in_the_cache_before_the_writer_returns() {
        let (_dir, app) = app();
        let ann = create(&app, new_user("ann"), &|_| Effects::none())
            .await
            .expect("create");
        update(&app, ann.id, &|u| u.is_active = false, &|_, _| {
            Effects::none()
        })
        .await
        .expect("deactivate");
        // Behind the cache's back (as no code path does): the cache still answers with what
        // the writer put there, so it was put there, not loaded.
        app.store
            .update_user(ann.id, &|u| u.is_active = true, &|_, _| Effects::none())
            .await
            .expect("raw write");
        let cached = app
            .cache
            .get(ann.id, app.store.as_ref())
            .await
            .expect("get");
        assert!(cached.is_some_and(|s| !s.is_active));
    }
}
