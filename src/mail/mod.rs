//! Mail (SPEC §10): what gatehouse sends (the password-changed and email-changed notices, the
//! reset and verification links), the caps on how much, and the tokens the links carry.
//! Mails go into the store's outbox with the change that causes them (`store::MailOutbox`);
//! `sender` sends them in the background, so the API never waits for a mail server.

pub mod sender;
pub mod templates;
pub mod tokens;

use crate::auth::throttle::{count_shared, Limiter};
use crate::clock::now;
use crate::config::{Config, EmailConfig, MailBackend};
use crate::metrics::MAIL_SENT;
use crate::store::{MailKind, OutboxMail, User, UserStore};
use std::sync::Arc;
use tokens::MailTokens;
use tokio::sync::Notify;

/// A rendered mail, ready for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub kind: MailKind,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// The mail policy the API applies: which mails a change causes, and the send caps.
pub struct Mailer {
    pub config: EmailConfig,
    pub tokens: MailTokens,
    /// Reset and verification mails per address per hour.
    per_address: Limiter,
    /// Reset and verification mails per hour in all.
    overall: Limiter,
    /// Wakes the sender when a mail was recorded (it also polls).
    pub wake: Arc<Notify>,
    /// Where the caps on reset and resend mails are counted when the store shares counters
    /// (several replicas): N replicas do not send N times the cap.
    shared: Option<Arc<dyn UserStore>>,
}

const HOUR: u64 = 3600;
/// The one key of the overall cap.
const OVERALL: &str = "all";

impl Mailer {
    /// `material`: the secret the JWT keys were made from (`Keys::material`), shared by
    /// every replica, so a link made by one is good on all.
    pub fn new(config: &Config, material: &[u8]) -> Result<Mailer, String> {
        let (password_reset_url, verify_email_url) = config.mail_links();
        Ok(Mailer {
            config: EmailConfig {
                password_reset_url,
                verify_email_url,
                ..config.email.clone()
            },
            tokens: MailTokens::new(material, config.email.token_lifetime_seconds),
            per_address: Limiter::new(config.throttle.max_keys, HOUR),
            overall: Limiter::new(1, HOUR),
            wake: Arc::new(Notify::new()),
            shared: None,
        })
    }

    /// Counts the caps (`permit`) in `store` when it shares counters.
    pub fn shared_by(mut self, store: Arc<dyn UserStore>) -> Mailer {
        self.shared = Some(store);
        self
    }

    /// Mail is sent at all (`backend` is not `none`): otherwise nothing is recorded.
    pub fn enabled(&self) -> bool {
        self.config.backend != MailBackend::None
    }

    fn mail(kind: MailKind, user: &User, to: &str, at: u64) -> OutboxMail {
        OutboxMail {
            kind,
            user_id: user.id,
            to: to.to_string(),
            new_email: None,
            api_key: None,
            account: None,
            created_at: at,
        }
    }

    /// The notices a change of `before` into `after` at `at` causes: "Password Changed" when
    /// the password changed, the email-changed notice to the old address, and a verification
    /// mail to a new address when `verify_permitted` (`verification_permit`, taken once
    /// before the write). Pure: the store may call it once per attempt of its transaction.
    pub fn notices(
        &self,
        before: &User,
        after: &User,
        verify_permitted: bool,
        at: u64,
    ) -> Vec<OutboxMail> {
        let mut mails = Vec::new();
        if !self.enabled() {
            return mails;
        }
        // Imported users may have no address: nothing to send them.
        if before.password != after.password && !after.email.is_empty() {
            mails.push(Mailer::mail(
                MailKind::PasswordChanged,
                after,
                &after.email,
                at,
            ));
        }
        if crate::store::name_key(&before.email) != crate::store::name_key(&after.email) {
            if !before.email.is_empty() {
                let mut notice = Mailer::mail(MailKind::EmailChanged, after, &before.email, at);
                notice.new_email = Some(after.email.clone());
                mails.push(notice);
            }
            if verify_permitted && !after.email_verified {
                mails.push(Mailer::mail(MailKind::VerifyEmail, after, &after.email, at));
            }
        }
        mails
    }

    /// A notice of `kind` to `user` at `at` (the second factor's, SPEC §17): none when mail
    /// is off or the user has no address. Pure, as `notices`.
    pub fn notice(&self, kind: MailKind, user: &User, at: u64) -> Vec<OutboxMail> {
        if !self.enabled() || user.email.is_empty() {
            return Vec::new();
        }
        vec![Mailer::mail(kind, user, &user.email, at)]
    }

    /// The verification mail of a new user at `at`, when `verify_permitted`
    /// (`verification_permit`, taken once before the write). Pure, as `notices`.
    pub fn on_register(&self, user: &User, verify_permitted: bool, at: u64) -> Vec<OutboxMail> {
        if verify_permitted {
            vec![Mailer::mail(MailKind::VerifyEmail, user, &user.email, at)]
        } else {
            Vec::new()
        }
    }

    /// Whether a write that gives a user the address `to` (a registration, an email change)
    /// may send it a verification mail: `verify_on_register` is on and the caps let it
    /// through (counted here, once: call it before the write, outside the store's
    /// transaction, and pass the answer to `on_register` or `notices`).
    pub async fn verification_permit(&self, to: &str) -> bool {
        self.enabled()
            && self.config.verify_on_register
            && self.permit(to, MailKind::VerifyEmail).await
    }

    /// A reset or verification mail to `user` at `at`, unless a cap drops it (`None`,
    /// counted).
    pub async fn link_mail(&self, kind: MailKind, user: &User, at: u64) -> Option<OutboxMail> {
        if !self.enabled() {
            return None;
        }
        self.permit(&user.email, kind)
            .await
            .then(|| Mailer::mail(kind, user, &user.email, at))
    }

    /// Counts one reset or verification mail to `to` against the caps: in the shared store
    /// when there is one (several replicas do not send N times the cap), else in this process.
    /// False (and counted as `capped`) when a cap is reached.
    async fn permit(&self, to: &str, kind: MailKind) -> bool {
        match self.allow_shared(to, kind).await {
            Some(allowed) => allowed,
            None => self.allow(to, kind),
        }
    }

    /// `allow` in the shared counters; `None` without them (or when they cannot answer).
    async fn allow_shared(&self, to: &str, kind: MailKind) -> Option<bool> {
        let store = self.shared.as_deref()?;
        let t = now();
        let c = &self.config;
        let key = format!("mail-cap-to:{}", crate::store::name_key(to));
        let per_address = count_shared(store, &key, c.max_per_address_per_hour, HOUR, t).await?;
        let overall = match per_address {
            Ok(()) => count_shared(store, "mail-cap-all", c.max_per_hour, HOUR, t).await?,
            Err(_) => Err(0),
        };
        if overall.is_err() {
            MAIL_SENT.with_label_values(&[kind.label(), "capped"]).inc();
            return Some(false);
        }
        Some(true)
    }

    /// Counts a reset or verification mail against the caps; false (and counted as
    /// `capped`) when one of them is reached.
    fn allow(&self, to: &str, kind: MailKind) -> bool {
        let t = now();
        let key = crate::store::name_key(to);
        let c = &self.config;
        if self
            .per_address
            .check(&key, c.max_per_address_per_hour, t)
            .is_err()
            || self.overall.check(OVERALL, c.max_per_hour, t).is_err()
        {
            MAIL_SENT.with_label_values(&[kind.label(), "capped"]).inc();
            return false;
        }
        self.per_address.hit(&key, t);
        self.overall.hit(OVERALL, t);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_user;

    fn user(id: u64, email: &str) -> User {
        test_user(id, &format!("u{id}"), email)
    }

    fn mailer(edit: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Mailer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        edit(&mut config);
        let mailer = Mailer::new(&config, &[7; 32]).expect("a mailer");
        (dir, mailer)
    }

    #[tokio::test]
    async fn caps_per_address_and_overall() {
        let (_dir, m) = mailer(|c| {
            c.email.max_per_address_per_hour = 2;
            c.email.max_per_hour = 3;
        });
        let a = user(1, "A@example.com");
        assert!(m.link_mail(MailKind::PasswordReset, &a, 0).await.is_some());
        assert!(m.link_mail(MailKind::VerifyEmail, &a, 0).await.is_some());
        // The address in another case is the same address.
        assert!(m
            .link_mail(MailKind::PasswordReset, &user(1, "a@example.com"), 0)
            .await
            .is_none());
        let b = user(2, "b@example.com");
        assert!(m.link_mail(MailKind::PasswordReset, &b, 0).await.is_some());
        assert!(
            m.link_mail(MailKind::PasswordReset, &user(3, "c@example.com"), 0)
                .await
                .is_none(),
            "the overall cap"
        );
    }

    #[tokio::test]
    async fn notices_follow_what_changed() {
        let (_dir, m) = mailer(|c| c.email.verify_on_register = true);
        let before = user(1, "a@example.com");
        let mut after = before.clone();
        after.password = "new".into();
        let kinds = |v: Vec<OutboxMail>| v.into_iter().map(|m| (m.kind, m.to)).collect::<Vec<_>>();
        assert_eq!(
            kinds(m.notices(&before, &after, true, 0)),
            [(MailKind::PasswordChanged, "a@example.com".to_string())]
        );
        let mut moved = before.clone();
        moved.email = "new@example.com".into();
        moved.email_verified = false;
        let mails = m.notices(&before, &moved, true, 0);
        assert_eq!(
            kinds(mails.clone()),
            [
                (MailKind::EmailChanged, "a@example.com".to_string()),
                (MailKind::VerifyEmail, "new@example.com".to_string())
            ]
        );
        assert_eq!(mails[0].new_email.as_deref(), Some("new@example.com"));
        assert!(m.notices(&before, &before, true, 0).is_empty());
        let (_dir, off) = mailer(|c| c.email.backend = MailBackend::None);
        assert!(off.notices(&before, &after, true, 0).is_empty());
        assert!(off
            .link_mail(MailKind::PasswordReset, &before, 0)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn the_verification_cap_is_counted_by_the_permit_not_by_the_decision() {
        let (_dir, m) = mailer(|c| {
            c.email.verify_on_register = true;
            c.email.max_per_address_per_hour = 1;
        });
        let before = user(1, "a@example.com");
        let mut moved = before.clone();
        moved.email = "new@example.com".into();
        moved.email_verified = false;
        // A store that retries its transaction decides again: nothing is counted.
        for _ in 0..3 {
            assert_eq!(m.notices(&before, &moved, true, 5).len(), 2);
            assert_eq!(m.on_register(&moved, true, 5).len(), 1);
        }
        assert!(m.verification_permit("New@example.com").await);
        assert!(!m.verification_permit("new@example.com").await, "capped");
        let kinds: Vec<_> = m
            .notices(&before, &moved, false, 5)
            .into_iter()
            .map(|m| m.kind)
            .collect();
        assert_eq!(kinds, [MailKind::EmailChanged]);
        assert!(m.on_register(&moved, false, 5).is_empty());
        let (_dir, off) = mailer(|c| c.email.verify_on_register = false);
        assert!(!off.verification_permit("a@example.com").await);
    }
}
