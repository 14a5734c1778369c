//! The audit trail's record (SPEC §16): one security event, as the store keeps it, the admin
//! API lists it and the sink writes it. An event is written by the same transaction as the
//! change it describes (it rides in `Effects`); the store assigns its id.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What happened. The names are the contract (SPEC §16): the API's `action` filter, the
/// sink's lines and the metric's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "user.registered")]
    UserRegistered,
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    #[serde(rename = "login.failed")]
    LoginFailed,
    #[serde(rename = "logout")]
    Logout,
    #[serde(rename = "token.reuse_detected")]
    TokenReuseDetected,
    #[serde(rename = "password.changed")]
    PasswordChanged,
    #[serde(rename = "password.reset_requested")]
    PasswordResetRequested,
    #[serde(rename = "password.reset_completed")]
    PasswordResetCompleted,
    #[serde(rename = "email.changed")]
    EmailChanged,
    #[serde(rename = "email.verified")]
    EmailVerified,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "user.restored")]
    UserRestored,
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    #[serde(rename = "mfa.enabled")]
    MfaEnabled,
    #[serde(rename = "mfa.disabled")]
    MfaDisabled,
    #[serde(rename = "mfa.recovery_code_used")]
    MfaRecoveryCodeUsed,
    /// SPEC §17: a code of a step already used, refused (someone else saw it).
    #[serde(rename = "mfa.replay_refused")]
    MfaReplayRefused,
    /// A new set of recovery codes replaced the old.
    #[serde(rename = "mfa.recovery_codes_renewed")]
    MfaRecoveryCodesRenewed,
    /// Too many wrong codes: the second step is locked.
    #[serde(rename = "mfa.locked")]
    MfaLocked,
    #[serde(rename = "admin.user_changed")]
    AdminUserChanged,
    #[serde(rename = "admin.group_changed")]
    AdminGroupChanged,
    #[serde(rename = "apikey.created")]
    ApikeyCreated,
    #[serde(rename = "apikey.revoked")]
    ApikeyRevoked,
    #[serde(rename = "csrf.refused")]
    CsrfRefused,
    /// `gatehouse import`: one summary event per run.
    #[serde(rename = "users.imported")]
    UsersImported,
}

impl Action {
    /// Every action, in the order of SPEC §16.
    pub const ALL: [Action; 25] = [
        Action::UserRegistered,
        Action::LoginSucceeded,
        Action::LoginFailed,
        Action::Logout,
        Action::TokenReuseDetected,
        Action::PasswordChanged,
        Action::PasswordResetRequested,
        Action::PasswordResetCompleted,
        Action::EmailChanged,
        Action::EmailVerified,
        Action::UserDeleted,
        Action::UserRestored,
        Action::SessionRevoked,
        Action::MfaEnabled,
        Action::MfaDisabled,
        Action::MfaRecoveryCodeUsed,
        Action::MfaReplayRefused,
        Action::MfaRecoveryCodesRenewed,
        Action::MfaLocked,
        Action::AdminUserChanged,
        Action::AdminGroupChanged,
        Action::ApikeyCreated,
        Action::ApikeyRevoked,
        Action::CsrfRefused,
        Action::UsersImported,
    ];

    /// The name: what is stored, filtered on, written and counted.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::UserRegistered => "user.registered",
            Action::LoginSucceeded => "login.succeeded",
            Action::LoginFailed => "login.failed",
            Action::Logout => "logout",
            Action::TokenReuseDetected => "token.reuse_detected",
            Action::PasswordChanged => "password.changed",
            Action::PasswordResetRequested => "password.reset_requested",
            Action::PasswordResetCompleted => "password.reset_completed",
            Action::EmailChanged => "email.changed",
            Action::EmailVerified => "email.verified",
            Action::UserDeleted => "user.deleted",
            Action::UserRestored => "user.restored",
            Action::SessionRevoked => "session.revoked",
            Action::MfaEnabled => "mfa.enabled",
            Action::MfaDisabled => "mfa.disabled",
            Action::MfaRecoveryCodeUsed => "mfa.recovery_code_used",
            Action::MfaReplayRefused => "mfa.replay_refused",
            Action::MfaRecoveryCodesRenewed => "mfa.recovery_codes_renewed",
            Action::MfaLocked => "mfa.locked",
            Action::AdminUserChanged => "admin.user_changed",
            Action::AdminGroupChanged => "admin.group_changed",
            Action::ApikeyCreated => "apikey.created",
            Action::ApikeyRevoked => "apikey.revoked",
            Action::CsrfRefused => "csrf.refused",
            Action::UsersImported => "users.imported",
        }
    }

    /// The action named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// One security event. Never holds a password, hash, token, code, key, link or cookie: the
/// callers build `details` from named fields only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the store when the event is written, increasing; 0 before.
    pub id: u64,
    /// Unix milliseconds.
    pub time: u64,
    pub action: Action,
    /// Who acted: `None` for nobody signed in, or the operator on the command line.
    pub actor_id: Option<u64>,
    /// The actor's username then ("" for nobody signed in, "(system)" for the operator).
    pub actor_username: String,
    /// The user acted on, if any.
    pub target_id: Option<u64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// JSON object: for changes, `{"before": {...}, "after": {...}}` of the changed fields.
    pub details: Map<String, Value>,
}

impl Event {
    /// The event as the admin API lists it and the sink writes it: every field, `time` in
    /// ISO 8601 (UTC, milliseconds).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "time": crate::clock::iso_ms(self.time),
            "action": self.action.as_str(),
            "actor_id": self.actor_id,
            "actor_username": self.actor_username,
            "target_id": self.target_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "details": self.details,
        })
    }

    /// This event with `details[key] = value`.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// What `UserStore::list_events` selects; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub actor: Option<u64>,
    pub target: Option<u64>,
    pub action: Option<Action>,
    /// Unix milliseconds, inclusive.
    pub since: Option<u64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<u64>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        self.actor.is_none_or(|a| e.actor_id == Some(a))
            && self.target.is_none_or(|t| e.target_id == Some(t))
            && self.action.is_none_or(|a| e.action == a)
            && self.since.is_none_or(|s| e.time >= s)
            && self.until.is_none_or(|u| e.time < u)
    }
}

/// Told of the events of every committed write, with their ids, after the commit (the sink
/// and the metric): exactly the events the store holds, no more.
pub type EventTap = Arc<dyn Fn(&[Event]) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_name_and_parses_back() {
        let mut names = std::collections::HashSet::new();
        for a in Action::ALL {
            assert!(names.insert(a.as_str()), "{} twice", a.as_str());
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert_eq!(
                serde_json::to_value(a).expect("json"),
                Value::String(a.as_str().into())
            );
        }
        assert_eq!(Action::parse("nope"), None);
    }
}
