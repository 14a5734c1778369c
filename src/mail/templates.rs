//! A mail's subject and body from the configured templates: `{name}` placeholders filled in
//! one pass (a value that itself looks like a placeholder stays as it is).

use crate::config::MailTemplates;
use crate::store::{MailKind, User};

/// What a template may name beyond the user's fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extra<'a> {
    /// The reset or verification link.
    pub link: Option<&'a str>,
    /// The new address (the email-changed notice).
    pub new_email: Option<&'a str>,
    /// The key's name and prefix (the API-key notice).
    pub api_key: Option<&'a str>,
    /// The account a key is for (the API-key notice).
    pub account: Option<&'a str>,
}

/// The (subject, body) of `kind` for `user`.
pub fn render(
    t: &MailTemplates,
    kind: MailKind,
    user: &User,
    extra: Extra<'_>,
) -> (String, String) {
    let (subject, body) = match kind {
        MailKind::PasswordChanged => (&t.password_changed_subject, &t.password_changed_body),
        MailKind::EmailChanged => (&t.email_changed_subject, &t.email_changed_body),
        MailKind::PasswordReset => (&t.password_reset_subject, &t.password_reset_body),
        MailKind::VerifyEmail => (&t.verify_email_subject, &t.verify_email_body),
        MailKind::MfaEnabled => (&t.mfa_enabled_subject, &t.mfa_enabled_body),
        MailKind::MfaDisabled => (&t.mfa_disabled_subject, &t.mfa_disabled_body),
        MailKind::RecoveryCodesRenewed => (
            &t.recovery_codes_renewed_subject,
            &t.recovery_codes_renewed_body,
        ),
        MailKind::MfaReplayRefused => (&t.mfa_replay_refused_subject, &t.mfa_replay_refused_body),
        MailKind::MfaLocked => (&t.mfa_locked_subject, &t.mfa_locked_body),
        MailKind::ApikeyCreated => (&t.apikey_created_subject, &t.apikey_created_body),
    };
    let value = |name: &str| -> Option<&str> {
        match name {
            "username" => Some(&user.username),
            "email" => Some(&user.email),
            "first_name" => Some(&user.first_name),
            "last_name" => Some(&user.last_name),
            "link" => extra.link,
            "new_email" => extra.new_email,
            "api_key" => extra.api_key,
            "account" => extra.account,
            _ => None,
        }
    };
    // A subject is one line: a newline in a value must not start a header.
    let subject = fill(subject, &value).replace(['\r', '\n'], " ");
    (subject, fill(body, &value))
}

/// The names a template may use (`check-config` and the unit tests).
pub const PLACEHOLDERS: &[&str] = &[
    "username",
    "email",
    "first_name",
    "last_name",
    "link",
    "new_email",
    "api_key",
    "account",
];

/// Replaces each `{name}` that `value` knows; anything else is copied.
pub fn fill<'a>(template: &str, value: &dyn Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let found = after
            .find('}')
            .and_then(|close| value(&after[..close]).map(|v| (v, close)));
        match found {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            id: 1,
            username: "ann".into(),
            email: "ann@example.com".into(),
            first_name: name.into(),
            last_name: String::new(),
            password: String::new(),
            is_active: true,
            is_staff: false,
            date_joined: 0,
            last_login: None,
            deleted_at: None,
            token_version: 0,
            groups: Vec::new(),
            email_verified: true,
            ended: Vec::new(),
            is_service: false,
        }
    }

    #[test]
    fn the_defaults_carry_the_seed_notice_and_the_link() {
        let t = MailTemplates::default();
        let u = user("Ann");
        let (s, b) = render(&t, MailKind::PasswordChanged, &u, Extra::default());
        assert_eq!(
            (s.as_str(), b.as_str()),
            (
                "Password Changed",
                "Your password was changed successfully."
            )
        );
        let link = "http://app/reset/MQ/abc-123";
        let (_, b) = render(
            &t,
            MailKind::PasswordReset,
            &u,
            Extra {
                link: Some(link),
                new_email: None,
                ..Extra::default()
            },
        );
        assert!(b.contains(link) && b.contains("ann"), "{b}");
    }

    #[test]
    fn values_are_filled_once_and_unknown_names_stay() {
        let u = user("{link}");
        let t = MailTemplates {
            password_reset_subject: "Hi {first_name}\n{nope} {".into(),
            password_reset_body: "{first_name} {link}{link} {x".into(),
            ..MailTemplates::default()
        };
        let (s, b) = render(
            &t,
            MailKind::PasswordReset,
            &u,
            Extra {
                link: Some("L"),
                new_email: None,
                ..Extra::default()
            },
        );
        assert_eq!(s, "Hi {link} {nope} {");
        assert_eq!(b, "{link} LL {x");
    }
}
