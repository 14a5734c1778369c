//! The rate-limit arithmetic (SPEC §20) as plain functions: GCRA over a theoretical arrival
//! time (TAT) and `now`, in nanoseconds, returning what to answer, and the IETF RateLimit
//! header values of that answer. No clock, no table, no I/O.

use crate::config::RateLimitConfig;

pub const NANOS: u64 = 1_000_000_000;

/// A limit as the arithmetic needs it: one request's share of the refill and the bucket's
/// depth, both in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gcra {
    /// `per_seconds / requests`: the time one request's token takes to come back.
    pub interval: u64,
    /// `requests + burst` requests at once from a full bucket.
    pub capacity: u64,
    /// `capacity * interval`: how far ahead of `now` the TAT may run.
    pub tolerance: u64,
}

/// What one request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted: `remaining` more requests would be admitted now; the bucket is full again
    /// in `reset` seconds.
    Admitted { remaining: u64, reset: u64 },
    /// Refused: one request is admitted again in `retry_after` seconds (at least 1).
    Refused { retry_after: u64, reset: u64 },
}

impl Verdict {
    /// `r` and `t` of the `RateLimit` field.
    pub fn remaining_and_reset(self) -> (u64, u64) {
        match self {
            Verdict::Admitted { remaining, reset } => (remaining, reset),
            Verdict::Refused { reset, .. } => (0, reset),
        }
    }
}

/// Whole seconds, rounded up: a client that waits that long is never early.
pub fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS)
}

impl Gcra {
    pub fn of(limit: &RateLimitConfig) -> Gcra {
        let requests = limit.requests.max(1);
        let window = u128::from(limit.per_seconds) * u128::from(NANOS);
        let interval = u64::try_from(window / u128::from(requests))
            .unwrap_or(u64::MAX)
            .max(1);
        let capacity = requests.saturating_add(limit.burst);
        Gcra::new(interval, capacity)
    }

    pub fn new(interval: u64, capacity: u64) -> Gcra {
        let tolerance = u64::try_from(u128::from(interval) * u128::from(capacity))
            .unwrap_or(u64::MAX / 4)
            .min(u64::MAX / 4);
        Gcra {
            interval,
            capacity,
            tolerance,
        }
    }

    /// One request at `now` against a bucket whose TAT is `tat` (0: never used): the verdict,
    /// and the new TAT when it was admitted.
    pub fn take(&self, tat: u64, now: u64) -> (Verdict, Option<u64>) {
        let base = tat.max(now);
        let next = base.saturating_add(self.interval);
        let ahead = next - now;
        if ahead > self.tolerance {
            let verdict = Verdict::Refused {
                retry_after: ceil_seconds(ahead - self.tolerance).max(1),
                reset: ceil_seconds(base - now),
            };
            return (verdict, None);
        }
        let verdict = Verdict::Admitted {
            remaining: (self.tolerance - ahead) / self.interval,
            reset: ceil_seconds(ahead),
        };
        (verdict, Some(next))
    }

    /// The bucket as it stands, nothing spent: for answers that do not count (a refused
    /// credential, a preflight) and the shared slices' view of the database's bucket.
    pub fn peek(&self, tat: u64, now: u64) -> (u64, u64) {
        let ahead = tat.max(now) - now;
        (
            self.tolerance.saturating_sub(ahead) / self.interval,
            ceil_seconds(ahead),
        )
    }

    /// How long until one request is admitted again, in nanoseconds (0: now).
    pub fn wait(&self, tat: u64, now: u64) -> u64 {
        let ahead = tat.max(now).saturating_add(self.interval) - now;
        ahead.saturating_sub(self.tolerance)
    }
}

/// The name every policy goes by in the fields (one policy per route).
pub const POLICY_NAME: &str = "default";
pub const RATELIMIT_POLICY_HEADER: &str = "RateLimit-Policy";
pub const RATELIMIT_HEADER: &str = "RateLimit";
/// The same names parsed once, for Pingora's `insert_parsed_header` (vendor/patches 0002):
/// written into every proxied answer of a limited route without a parse, a copy and an
/// allocation of the name per field.
pub static RATELIMIT_POLICY_NAME: http::HeaderName =
    http::HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT_NAME: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// `RateLimit-Policy: "default";q=100;w=60` (draft-ietf-httpapi-ratelimit-headers, an
/// sf-list of one item whose parameters are the quota and its window in seconds).
pub fn policy_value(limit: &RateLimitConfig) -> String {
    format!(
        "\"{POLICY_NAME}\";q={};w={}",
        limit.requests, limit.per_seconds
    )
}

/// `RateLimit: "default";r=<left>;t=<seconds>`, written per answer of a limited route: the
/// digits go into a stack buffer (no `format!`, no `String`), copied once into the value.
pub fn ratelimit_value(remaining: u64, reset: u64) -> http::HeaderValue {
    // `"default";r=` + 20 digits + `;t=` + 20 digits.
    let mut buf = [0u8; 64];
    let mut n = 0;
    for part in [&b"\""[..], POLICY_NAME.as_bytes(), b"\";r="] {
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    n = put_decimal(&mut buf, n, remaining);
    buf[n..n + 3].copy_from_slice(b";t=");
    n = put_decimal(&mut buf, n + 3, reset);
    // Quotes, letters, digits, `;` and `=`: always a valid value.
    http::HeaderValue::from_bytes(&buf[..n])
        .unwrap_or_else(|_| http::HeaderValue::from_static("\"default\""))
}

/// Writes `v` in decimal at `buf[at..]` (itoa: two digits per step from a table, where a
/// digit at a time cost ~150 instructions per answer); the index after its last digit.
fn put_decimal(buf: &mut [u8; 64], at: usize, v: u64) -> usize {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(v).as_bytes();
    buf[at..at + digits.len()].copy_from_slice(digits);
    at + digits.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimitBy;

    #[test]
    fn the_parsed_names_are_the_fields_names() {
        for (name, case) in [
            (&RATELIMIT_NAME, RATELIMIT_HEADER),
            (&RATELIMIT_POLICY_NAME, RATELIMIT_POLICY_HEADER),
        ] {
            assert!(name.as_str().eq_ignore_ascii_case(case), "{name} / {case}");
        }
    }

    fn limit(requests: u64, per_seconds: u64, burst: u64) -> Gcra {
        Gcra::of(&RateLimitConfig {
            requests,
            per_seconds,
            burst,
            by: RateLimitBy::Credential,
        })
    }

    /// Requests at `now` until one is refused: how many were admitted, and the TAT.
    fn drain(g: &Gcra, mut tat: u64, now: u64) -> (u64, u64, Verdict) {
        let mut admitted = 0;
        loop {
            match g.take(tat, now) {
                (v @ Verdict::Refused { .. }, _) => return (admitted, tat, v),
                (_, Some(next)) => {
                    tat = next;
                    admitted += 1;
                }
                (v, None) => panic!("admitted without a TAT: {v:?}"),
            }
        }
    }

    #[test]
    fn a_full_bucket_holds_requests_plus_burst_and_refills_evenly() {
        let g = limit(100, 60, 20);
        let start = 1_000 * NANOS;
        let (admitted, tat, refused) = drain(&g, 0, start);
        assert_eq!(admitted, 120);
        // One token comes back every 0.6 s.
        assert_eq!(
            refused,
            Verdict::Refused {
                retry_after: 1,
                reset: 72
            }
        );
        assert!(matches!(
            g.take(tat, start + 599_000_000).0,
            Verdict::Refused { .. }
        ));
        let (v, _) = g.take(tat, start + 600_000_000);
        assert_eq!(
            v,
            Verdict::Admitted {
                remaining: 0,
                reset: 72
            }
        );
        // A minute later: 100 more, not 120.
        let (more, _, _) = drain(&g, tat, start + 60 * NANOS);
        assert_eq!(more, 100);
    }

    #[test]
    fn the_first_request_sees_the_rest_of_the_bucket() {
        let g = limit(10, 1, 0);
        let (v, tat) = g.take(0, 5 * NANOS);
        assert_eq!(
            v,
            Verdict::Admitted {
                remaining: 9,
                reset: 1
            }
        );
        assert_eq!(tat, Some(5 * NANOS + 100_000_000));
        assert_eq!(g.peek(0, 5 * NANOS), (10, 0));
        assert_eq!(g.peek(5 * NANOS + 100_000_000, 5 * NANOS), (9, 1));
    }

    #[test]
    fn retry_after_is_honest_a_retry_then_is_admitted() {
        for (requests, per, burst) in [(1, 60, 0), (5, 7, 2), (100, 60, 20), (3, 1, 0)] {
            let g = limit(requests, per, burst);
            let now = 77 * NANOS + 123;
            let (_, tat, refused) = drain(&g, 0, now);
            let Verdict::Refused { retry_after, .. } = refused else {
                unreachable!()
            };
            assert_eq!(retry_after, ceil_seconds(g.wait(tat, now)).max(1));
            assert!(
                matches!(
                    g.take(tat, now + retry_after * NANOS).0,
                    Verdict::Admitted { .. }
                ),
                "{requests}/{per}s+{burst}: retry after {retry_after} s refused"
            );
            // And not grossly early: a second before, still refused when the wait is long.
            if retry_after > 1 {
                assert!(matches!(
                    g.take(tat, now + (retry_after - 1) * NANOS).0,
                    Verdict::Refused { .. }
                ));
            }
        }
    }

    #[test]
    fn a_steady_rate_above_the_limit_is_admitted_at_the_limit() {
        // 10 per second with a burst of 5, offered 50 per second for 20 s: the bucket
        // (15) plus 20 s of refill (200), within one burst.
        let g = limit(10, 1, 5);
        let (mut tat, mut admitted) = (0, 0u64);
        for i in 0..1_000u64 {
            let now = NANOS + i * (NANOS / 50);
            if let (_, Some(next)) = g.take(tat, now) {
                tat = next;
                admitted += 1;
            }
        }
        let expected = 15 + 200;
        assert!(admitted.abs_diff(expected) <= 5, "{admitted} vs {expected}");
    }

    #[test]
    fn huge_limits_do_not_overflow() {
        let g = limit(1, 366 * 86_400, 1_000_000_000);
        let (v, tat) = g.take(0, u64::MAX / 2);
        assert!(matches!(v, Verdict::Admitted { .. }));
        assert!(tat.is_some());
        let g = limit(1_000_000_000, 1, 0);
        assert_eq!(g.interval, 1);
        assert!(matches!(g.take(0, NANOS).0, Verdict::Admitted { .. }));
    }

    #[test]
    fn header_values_are_the_drafts_structured_fields() {
        let l = RateLimitConfig {
            requests: 100,
            per_seconds: 60,
            burst: 20,
            by: RateLimitBy::Credential,
        };
        assert_eq!(policy_value(&l), "\"default\";q=100;w=60");
        assert_eq!(ratelimit_value(7, 3), "\"default\";r=7;t=3");
        assert_eq!(ratelimit_value(0, 0), "\"default\";r=0;t=0");
        assert_eq!(
            ratelimit_value(u64::MAX, 1_000_000),
            "\"default\";r=18446744073709551615;t=1000000"
        );
    }
}
