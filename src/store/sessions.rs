//! Browser sessions as the store keeps them (SPEC §15), and the record of sessions and
//! refresh families a user ended, which rides in the user record to every replica.

use serde::{Deserialize, Serialize};

/// How a session's user signed in: with the password alone.
pub const METHOD_PASSWORD: &str = "pwd";
/// How a session's user signed in: with the password and a second factor.
pub const METHOD_PASSWORD_OTP: &str = "pwd+otp";

/// One browser session. The cookie holds an opaque 256-bit id; the store keeps only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Lowercase hex SHA-256 of the cookie's id (64 characters): the key.
    pub id_hash: String,
    pub user_id: u64,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds, written at most once a minute by the caller.
    pub last_seen: u64,
    /// The absolute limit (or the remember-me limit), unix seconds.
    pub expires_at: u64,
    pub client_ip: String,
    /// The first 200 characters (the caller cuts).
    pub user_agent: String,
    pub remember: bool,
    /// `METHOD_PASSWORD` or `METHOD_PASSWORD_OTP`.
    pub method: String,
    /// The user's token_version at sign-in.
    pub token_version: u64,
}

impl Session {
    /// Whether it is still usable at `now` with `idle` seconds of allowed inactivity
    /// (remember-me sessions only have `expires_at`). Both limits are exclusive: at
    /// `expires_at`, or `idle` seconds after `last_seen`, it is over.
    pub fn live_at(&self, now: u64, idle: u64) -> bool {
        now < self.expires_at && (self.remember || now < self.last_seen.saturating_add(idle))
    }
}

/// A session or refresh family the user ended: kept in the user record (so the user-state
/// cache and the change feed carry it to every replica) until `until`, when it would have
/// expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub id: String,
    pub until: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(remember: bool) -> Session {
        Session {
            id_hash: "ab".repeat(32),
            user_id: 1,
            created: 1_000,
            last_seen: 1_000,
            expires_at: 1_000 + 12 * 3600,
            client_ip: "192.0.2.1".into(),
            user_agent: "test".into(),
            remember,
            method: METHOD_PASSWORD.into(),
            token_version: 0,
        }
    }

    #[test]
    fn a_session_dies_after_idle_seconds_without_a_visit() {
        let s = session(false);
        assert!(s.live_at(1_000, 1_800));
        assert!(s.live_at(2_799, 1_800));
        assert!(!s.live_at(2_800, 1_800), "idle limit reached");
        let seen = Session {
            last_seen: 2_700,
            ..s
        };
        assert!(
            seen.live_at(4_000, 1_800),
            "a visit restarts the idle clock"
        );
    }

    #[test]
    fn a_session_dies_at_its_absolute_limit_however_active() {
        let s = Session {
            last_seen: 1_000 + 12 * 3600 - 1,
            ..session(false)
        };
        assert!(s.live_at(1_000 + 12 * 3600 - 1, 1_800));
        assert!(!s.live_at(1_000 + 12 * 3600, 1_800));
    }

    #[test]
    fn remember_me_ignores_idle_but_not_expiry() {
        let s = session(true);
        assert!(s.live_at(1_000 + 3600 * 11, 60), "idle does not apply");
        assert!(!s.live_at(1_000 + 12 * 3600, 60), "expires_at does");
    }

    #[test]
    fn an_idle_limit_near_the_end_of_time_does_not_overflow() {
        let s = Session {
            expires_at: u64::MAX,
            last_seen: u64::MAX - 1,
            ..session(false)
        };
        assert!(s.live_at(u64::MAX - 1, u64::MAX));
    }
}
