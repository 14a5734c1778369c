//! What a write causes beyond the user record (mails, browser sessions, refresh-family
//! records, audit events),
//! decided by the caller as a plain value and written by the backend in the same transaction
//! as the change, or not at all. A new kind of effect is a new field here: no write's
//! signature changes.

use super::{ApiKey, Event, Family, OutboxMail, Session, User};

/// The effects of one write, in the order they are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Mails for the outbox (SPEC §10).
    pub mails: Vec<OutboxMail>,
    /// Browser sessions created (SPEC §15).
    pub sessions: Vec<Session>,
    /// Id hashes of browser sessions ended: deleted (unknown ones are no error). Applied
    /// after `sessions`, so a session both created and ended is gone.
    pub end_sessions: Vec<String>,
    /// Refresh-family records created or overwritten, keyed by family id.
    pub families: Vec<(String, Family)>,
    /// Users whose second factor is removed (SPEC §17: turned off, or reset by an admin).
    pub mfa_removed: Vec<u64>,
    /// Audit events (SPEC §16); the store assigns their ids.
    pub events: Vec<Event>,
    /// API keys (SPEC §19) created, or written over the record with the same id (`store
    /// copy`). Only through `UserStore::record` (sled's user writes cannot carry them).
    pub api_keys: Vec<ApiKey>,
    /// API keys revoked: `(id, unix seconds)`; a key already revoked keeps its first time,
    /// an unknown id is no error. Only through `UserStore::record`.
    pub api_keys_revoked: Vec<(String, u64)>,
}

impl Effects {
    /// A write that causes nothing beyond itself.
    pub fn none() -> Effects {
        Effects::default()
    }

    /// Nothing to record.
    pub fn is_empty(&self) -> bool {
        let Effects {
            mails,
            sessions,
            end_sessions,
            families,
            mfa_removed,
            events,
            api_keys,
            api_keys_revoked,
        } = self;
        mails.is_empty()
            && sessions.is_empty()
            && end_sessions.is_empty()
            && families.is_empty()
            && mfa_removed.is_empty()
            && events.is_empty()
            && api_keys.is_empty()
            && api_keys_revoked.is_empty()
    }

    /// These effects and `event` too.
    pub fn with(mut self, event: Event) -> Effects {
        self.events.push(event);
        self
    }

    /// The effects of a user created by the same write, made before the store assigned the
    /// id: each now names `user_id`.
    pub fn about(mut self, user_id: u64) -> Effects {
        for mail in &mut self.mails {
            mail.user_id = user_id;
        }
        for session in &mut self.sessions {
            session.user_id = user_id;
        }
        for (_, family) in &mut self.families {
            family.user_id = user_id;
        }
        for event in &mut self.events {
            event.target_id = Some(user_id);
        }
        self
    }
}

impl From<Vec<OutboxMail>> for Effects {
    fn from(mails: Vec<OutboxMail>) -> Effects {
        Effects {
            mails,
            ..Effects::default()
        }
    }
}

impl From<Event> for Effects {
    fn from(event: Event) -> Effects {
        Effects::none().with(event)
    }
}

impl From<OutboxMail> for Effects {
    fn from(mail: OutboxMail) -> Effects {
        Effects::from(vec![mail])
    }
}

// A backend may call either decision once per attempt of its transaction: they must be pure
// (no counting against a cap, no clock of their own); what must happen once is decided
// before the write and passed in.

/// The effects of creating a user, decided from the user as created (with its id where the
/// backend knows it inside the transaction; see `Effects::about`).
pub type NewUserEffects<'a> = &'a (dyn Fn(&User) -> Effects + Sync);
/// The effects of a change, decided from the user before and after it.
pub type ChangeEffects<'a> = &'a (dyn Fn(&User, &User) -> Effects + Sync);
