//! The wall clock in unix seconds, as tokens, users and throttles count time.

/// Seconds since the unix epoch (0 on a clock set before 1970, which no token can pass).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
