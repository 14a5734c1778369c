//! A user's second factor as the store keeps it (SPEC §17): the sealed TOTP secret (pending
//! until a code confirms it), the last time step used (no replay), the hashes of unused
//! recovery codes, recent failed codes and the lock they cause, and the browser sign-ins
//! waiting for their second step. One record per user, beside the user record and never in
//! it: the user-state cache and every token check never carry a secret. Changed only by
//! compare-and-swap (`UserStore::swap_mfa`), so two replicas racing with the same code
//! cannot both win.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mfa {
    /// `auth::totp::SecretBox::seal` of the secret.
    pub secret: String,
    /// A code confirmed the secret: sign-ins need a second step. `false`: enrolment pending.
    pub enabled: bool,
    /// Unix seconds the secret was made (pending) or confirmed (enabled).
    pub since: u64,
    /// The newest time step accepted: codes of it and older steps are replays.
    pub last_step: u64,
    /// The step whose replay was last reported (one notice per replayed code, however many
    /// racers send it).
    #[serde(default)]
    pub replay_reported: u64,
    /// Keyed hashes of the recovery codes not used yet.
    pub recovery: Vec<String>,
    /// Unix seconds of the failed codes of the last hour (at most the lock's limit).
    pub failures: Vec<u64>,
    /// Unix seconds until which the second step answers 429.
    pub locked_until: u64,
    /// Browser sign-ins whose password was right, waiting for their code.
    pub pending: Vec<PendingStep>,
}

/// A browser's sign-in between its password and its code: single-use, short-lived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStep {
    /// `SecretBox::pending_hash` of the id the browser holds.
    pub id_hash: String,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// "Remember me" was ticked on the password page.
    pub remember: bool,
}
