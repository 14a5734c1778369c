//! Every Prometheus metric gatehouse exports, defined once, in the process-wide default
//! registry (which also carries the standard `process_*` metrics). A leaf: it imports nothing
//! of the crate; whoever knows a value sets it here.

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};
use std::sync::LazyLock;

// Registration fails only on an invalid or duplicate static name: a programming error caught
// by the first test that touches the metric, never by a request or a config file.
const DEFINED_ONCE: &str = "metric names are valid and registered once";

pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_http_requests_total",
        "Requests answered, by kind (api|proxy), route, method and status.",
        &["kind", "route", "method", "status"]
    )
    .expect(DEFINED_ONCE)
});

pub static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "gatehouse_http_request_duration_seconds",
        "Request latency by kind, route, method and status class.",
        &["kind", "route", "method", "status"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
    )
    .expect(DEFINED_ONCE)
});

pub static LOGINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_logins_total",
        "Login attempts by result (success|failure|throttled).",
        &["result"]
    )
    .expect(DEFINED_ONCE)
});

pub static AUTH_DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_auth_decisions_total",
        "Token checks by result (allow|deny) and reason.",
        &["result", "reason"]
    )
    .expect(DEFINED_ONCE)
});

pub static USER_CACHE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_user_cache_requests_total",
        "User-state cache lookups by result (hit|miss).",
        &["result"]
    )
    .expect(DEFINED_ONCE)
});

pub static APIKEY_CACHE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_apikey_cache_requests_total",
        "API-key cache lookups by result (hit|miss|bypass); miss and bypass read the store.",
        &["result"]
    )
    .expect(DEFINED_ONCE)
});

/// API keys presented on routes and forward-auth (SPEC §19), by result.
pub static APIKEY_CHECKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_apikey_checks_total",
        "API keys presented, by result (allowed|malformed|unknown|revoked|expired|owner_inactive|unavailable).",
        &["result"]
    )
    .expect(DEFINED_ONCE)
});

pub static PASSWORD_HASH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "gatehouse_password_hash_duration_seconds",
        "Time of one argon2 hash or verification.",
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
    )
    .expect(DEFINED_ONCE)
});

pub static PASSWORD_HASH_QUEUE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "gatehouse_password_hash_queue_depth",
        "Password-hash jobs waiting or running."
    )
    .expect(DEFINED_ONCE)
});

pub static UPSTREAM_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_upstream_requests_total",
        "Requests forwarded, by route, upstream address and upstream status (0: no answer).",
        &["route", "upstream", "status"]
    )
    .expect(DEFINED_ONCE)
});

pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_rate_limited_total",
        "Requests refused with 429 by a route's rate limit (SPEC §20), by route.",
        &["route"]
    )
    .expect(DEFINED_ONCE)
});

pub static RATE_LIMIT_BUCKETS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "gatehouse_rate_limit_buckets",
        "Local rate-limit buckets held in memory (at most limits.rate_limit_buckets)."
    )
    .expect(DEFINED_ONCE)
});

pub static UPSTREAM_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "gatehouse_upstream_duration_seconds",
        "Time from choosing an upstream to its response header, by route.",
        &["route"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect(DEFINED_ONCE)
});

pub static STORE_FLUSH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "gatehouse_store_flush_duration_seconds",
        "Time to make a write durable (sled flush; concurrent writers share one).",
        vec![0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
    )
    .expect(DEFINED_ONCE)
});

// PostgreSQL store (several replicas).

pub static STORE_QUERY_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "gatehouse_store_query_duration_seconds",
        "PostgreSQL store operations by kind, pool wait included.",
        &["op"],
        vec![0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5]
    )
    .expect(DEFINED_ONCE)
});

pub static STORE_POOL_CONNECTIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "gatehouse_store_pool_connections",
        "PostgreSQL pool connections: open, idle (open minus idle are in use).",
        &["state"]
    )
    .expect(DEFINED_ONCE)
});

pub static STORE_NOTIFY_LAG_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "gatehouse_store_notification_lag_seconds",
        "Time from sending a heartbeat to receiving it back through the change feed.",
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
    )
    .expect(DEFINED_ONCE)
});

pub static STORE_FEED_RECONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "gatehouse_store_feed_reconnects_total",
        "Times the change feed's listening connection was lost and the cache dropped."
    )
    .expect(DEFINED_ONCE)
});

pub static CACHE_FRESH: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "gatehouse_cache_fresh",
        "1 while the user-state cache is proven fresh (decisions from memory), 0 while decisions read the database (a replica on PostgreSQL whose feed is behind)."
    )
    .expect(DEFINED_ONCE)
});

pub static USERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "gatehouse_users",
        "Users by state (active|inactive), counted at scrape time.",
        &["state"]
    )
    .expect(DEFINED_ONCE)
});

pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "gatehouse_build_info",
        "Always 1; the version label says which build.",
        &["version"]
    )
    .expect(DEFINED_ONCE)
});

pub static MAIL_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_mail_sent_total",
        "Mails by kind (password_changed|email_changed|password_reset|verify_email) and result (sent|failed: will retry|gave_up|rejected|stale|capped: dropped).",
        &["kind", "result"]
    )
    .expect(DEFINED_ONCE)
});

pub static CONFIG_RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_config_reloads_total",
        "Config reloads (SIGHUP / gatehouse reload) by result (success|failure).",
        &["result"]
    )
    .expect(DEFINED_ONCE)
});

pub static MAIL_OUTBOX: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "gatehouse_mail_outbox_depth",
        "Mails in the outbox waiting to be sent (as the sender last saw it)."
    )
    .expect(DEFINED_ONCE)
});

pub static TLS_CERT_EXPIRY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "gatehouse_tls_certificate_expiry_timestamp_seconds",
        "When each certificate in use expires (Unix time), by role (listener, upstream_ca ROUTE, upstream_client ROUTE), file and subject.",
        &["role", "path", "subject"]
    )
    .expect(DEFINED_ONCE)
});

// Handles of the label sets nearly every request touches, resolved once: a lookup by label
// values hashes them, takes a read lock and clones a handle each time.
pub static USER_CACHE_HIT: LazyLock<IntCounter> =
    LazyLock::new(|| USER_CACHE.with_label_values(&["hit"]));
pub static USER_CACHE_MISS: LazyLock<IntCounter> =
    LazyLock::new(|| USER_CACHE.with_label_values(&["miss"]));
pub static APIKEY_CACHE_HIT: LazyLock<IntCounter> =
    LazyLock::new(|| APIKEY_CACHE.with_label_values(&["hit"]));
pub static AUTH_ALLOW_TOKEN: LazyLock<IntCounter> =
    LazyLock::new(|| AUTH_DECISIONS.with_label_values(&["allow", "valid_token"]));
pub static AUTH_ALLOW_SESSION: LazyLock<IntCounter> =
    LazyLock::new(|| AUTH_DECISIONS.with_label_values(&["allow", "valid_session"]));
pub static AUTH_ALLOW_APIKEY: LazyLock<IntCounter> =
    LazyLock::new(|| AUTH_DECISIONS.with_label_values(&["allow", "valid_apikey"]));
/// Session cookies that named no live session (unknown, expired, ended): the request went
/// on as anonymous.
pub static SESSIONS_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "gatehouse_sessions_refused_total",
        "Session cookies that named no live session (unknown, expired, ended, or from before a password change)."
    )
    .expect(DEFINED_ONCE)
});
pub static AUTH_ALLOW_ANONYMOUS: LazyLock<IntCounter> =
    LazyLock::new(|| AUTH_DECISIONS.with_label_values(&["allow", "anonymous"]));

// The label values of the counters with a fixed label set. Each of their series exists at 0
// from the first scrape on (`init_series`), before anything was counted: Prometheus' guide,
// "avoid missing metrics". A series that appears only with its first event loses that event
// to `rate()` and `increase()`, and an alert or a panel on it shows no data instead of 0.

/// `gatehouse_config_reloads_total{result}` (reload.rs).
pub const RELOAD_RESULTS: [&str; 2] = ["success", "failure"];
/// `gatehouse_mail_sent_total{kind}`: `store::MailKind::label`.
pub const MAIL_KINDS: [&str; 10] = [
    "password_changed",
    "email_changed",
    "password_reset",
    "verify_email",
    "mfa_enabled",
    "mfa_disabled",
    "recovery_codes_renewed",
    "mfa_replay_refused",
    "mfa_locked",
    "apikey_created",
];
/// `gatehouse_mail_sent_total{result}` of every kind (mail/sender.rs).
pub const MAIL_RESULTS: [&str; 5] = ["sent", "failed", "gave_up", "rejected", "stale"];
/// The kinds that count against the send caps, and so can be `result="capped"` (mail/mod.rs).
pub const MAIL_CAPPED_KINDS: [&str; 2] = ["password_reset", "verify_email"];
/// `gatehouse_logins_total{result}` (api/tokens.rs).
pub const LOGIN_RESULTS: [&str; 3] = ["success", "failure", "throttled"];
/// `gatehouse_auth_decisions_total{result="allow", reason}` (auth/credentials.rs).
pub const AUTH_ALLOW_REASONS: [&str; 4] =
    ["valid_token", "valid_session", "valid_apikey", "anonymous"];
/// `gatehouse_auth_decisions_total{result="deny", reason}`: `AuthError::reason`.
pub const AUTH_DENY_REASONS: [&str; 8] = [
    "no_credentials",
    "bad_authorization_header",
    "token_expired",
    "token_invalid",
    "user_not_found",
    "user_inactive",
    "not_staff",
    "unavailable",
];
/// `gatehouse_user_cache_requests_total{result}` (auth/cache.rs).
pub const USER_CACHE_RESULTS: [&str; 2] = ["hit", "miss"];
/// `gatehouse_apikey_cache_requests_total{result}` (auth/cache.rs).
pub const APIKEY_CACHE_RESULTS: [&str; 3] = ["hit", "miss", "bypass"];
/// `gatehouse_apikey_checks_total{result}`: `credentials::KeyCheck::label`.
pub const APIKEY_RESULTS: [&str; 7] = [
    "allowed",
    "malformed",
    "unknown",
    "revoked",
    "expired",
    "owner_inactive",
    "unavailable",
];

/// Audit events the store committed, by action (SPEC §16); counted by the process that wrote
/// them.
pub static AUDIT_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_audit_events_total",
        "Audit events recorded, by action.",
        &["action"]
    )
    .expect(DEFINED_ONCE)
});

/// Events that change nothing (a failed sign-in, a refused CSRF check) over the per-address
/// bound, or whose write failed: counted here instead of written.
pub static AUDIT_UNWRITTEN: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_audit_events_unwritten_total",
        "Audit events counted but not written: over the per-address bound for events that change nothing, or their write failed.",
        &["action"]
    )
    .expect(DEFINED_ONCE)
});

pub static MFA_CHECKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "gatehouse_mfa_checks_total",
        "Second-factor checks by result: code, recovery_code (accepted), wrong, replayed, locked (refused).",
        &["result"]
    )
    .expect(DEFINED_ONCE)
});
/// `gatehouse_mfa_checks_total{result}` (accounts/mfa.rs).
pub const MFA_RESULTS: [&str; 5] = ["code", "recovery_code", "wrong", "replayed", "locked"];

/// Creates every series of the fixed label sets above at 0 (a counter that already counted
/// keeps its value). The one place they are listed; `render` runs it before the first scrape.
pub fn init_series() {
    for result in RELOAD_RESULTS {
        CONFIG_RELOADS.with_label_values(&[result]);
    }
    for kind in MAIL_KINDS {
        for result in MAIL_RESULTS {
            MAIL_SENT.with_label_values(&[kind, result]);
        }
    }
    for kind in MAIL_CAPPED_KINDS {
        MAIL_SENT.with_label_values(&[kind, "capped"]);
    }
    for result in LOGIN_RESULTS {
        LOGINS.with_label_values(&[result]);
    }
    for result in MFA_RESULTS {
        MFA_CHECKS.with_label_values(&[result]);
    }
    for reason in AUTH_ALLOW_REASONS {
        AUTH_DECISIONS.with_label_values(&["allow", reason]);
    }
    for reason in AUTH_DENY_REASONS {
        AUTH_DECISIONS.with_label_values(&["deny", reason]);
    }
    for result in USER_CACHE_RESULTS {
        USER_CACHE.with_label_values(&[result]);
    }
    for result in APIKEY_CACHE_RESULTS {
        APIKEY_CACHE.with_label_values(&[result]);
    }
    for result in APIKEY_RESULTS {
        APIKEY_CHECKS.with_label_values(&[result]);
    }
}

static SERIES: std::sync::Once = std::sync::Once::new();

/// The text exposition of every registered metric.
pub fn render() -> Result<Vec<u8>, prometheus::Error> {
    use prometheus::Encoder;
    SERIES.call_once(init_series);
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthError;
    use crate::store::MailKind;

    #[test]
    fn the_label_lists_are_the_values_the_code_sets() {
        // A new variant fails to compile here until it is listed above.
        let kind = |k: MailKind| match k {
            MailKind::PasswordChanged
            | MailKind::EmailChanged
            | MailKind::PasswordReset
            | MailKind::VerifyEmail
            | MailKind::MfaEnabled
            | MailKind::MfaDisabled
            | MailKind::RecoveryCodesRenewed
            | MailKind::MfaReplayRefused
            | MailKind::MfaLocked
            | MailKind::ApikeyCreated => k.label(),
        };
        let kinds = [
            MailKind::PasswordChanged,
            MailKind::EmailChanged,
            MailKind::PasswordReset,
            MailKind::VerifyEmail,
            MailKind::MfaEnabled,
            MailKind::MfaDisabled,
            MailKind::RecoveryCodesRenewed,
            MailKind::MfaReplayRefused,
            MailKind::MfaLocked,
            MailKind::ApikeyCreated,
        ];
        assert_eq!(kinds.map(kind), MAIL_KINDS);
        let reason = |e: AuthError| match e {
            AuthError::NoCredentials
            | AuthError::BadHeader
            | AuthError::Token(_)
            | AuthError::UserNotFound
            | AuthError::UserInactive
            | AuthError::NotStaff
            | AuthError::Unavailable => e.reason(),
        };
        assert_eq!(AuthError::ALL.map(reason), AUTH_DENY_REASONS);
        assert!(MAIL_CAPPED_KINDS.iter().all(|k| MAIL_KINDS.contains(k)));
    }
}
