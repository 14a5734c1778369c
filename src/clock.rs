//! The wall clock in unix seconds, as tokens, users and throttles count time (and in
//! milliseconds, as audit events do), and its ISO 8601 form.

/// Seconds since the unix epoch (0 on a clock set before 1970, which no token can pass).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the unix epoch (0 before 1970): audit event times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `ms` (unix milliseconds) as ISO 8601 in UTC with milliseconds, as DRF renders a
/// `DateTimeField`: `2026-12-07T08:15:02.123Z`.
pub fn iso_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        // Beyond year 9999: no instant this process makes.
        Err(_) => ms.to_string(),
    }
}

/// An ISO 8601 date-time (`2026-12-07T08:15:02Z`, with fractions or an offset, or a date
/// alone as its midnight UTC) as unix milliseconds; `None` when it is not one.
pub fn parse_iso_ms(text: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            let date = time::Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()?;
            Some(date.midnight().assume_utc())
        })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_round_trip_in_milliseconds() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1_796_631_302_123), "2026-12-07T08:15:02.123Z");
        assert_eq!(
            parse_iso_ms("2026-12-07T08:15:02.123Z"),
            Some(1_796_631_302_123)
        );
        assert_eq!(
            parse_iso_ms("2026-12-07T09:15:02.123+01:00"),
            Some(1_796_631_302_123)
        );
        assert_eq!(parse_iso_ms("2026-12-07"), Some(1_796_601_600_000));
        assert_eq!(parse_iso_ms("yesterday"), None);
        assert_eq!(parse_iso_ms("1969-12-31T23:59:59Z"), None);
    }
}
