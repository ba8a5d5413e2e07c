//! The daemon's one clock and the time formats it speaks, over chrono:
//! RFC 3339 in the API and the audit log, RFC 5322 in the mail it sends.

use chrono::{DateTime, Utc};

/// The current time in seconds since the epoch.
pub fn unix_now() -> i64 {
    Utc::now().timestamp()
}

/// Seconds since the epoch as RFC 3339 UTC (`2026-11-22T10:00:00Z`): the
/// message model's own formatter, so the API and `${now}` agree.
pub use weir_stdlib::value::format_time;

/// Parses RFC 3339 (`2026-11-22T10:00:00Z`, `…T10:00:00.5+01:00`, a
/// space instead of the `T`) to seconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.replacen(' ', "T", 1);
    DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|t| t.timestamp())
}

/// An RFC 5322 date in UTC (`Thu, 19 Nov 2026 10:00:00 +0000`).
pub fn rfc5322_date(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%a, %-d %b %Y %H:%M:%S +0000")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(parse_time("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(parse_time("2026-11-18 11:06:40Z"), Some(1_795_000_000));
        assert_eq!(
            parse_time("2026-11-18T12:06:40.25+01:00"),
            Some(1_795_000_000)
        );
        assert_eq!(parse_time("2026-11-18"), None);
        assert_eq!(parse_time("2026-13-18T11:06:40Z"), None);
    }

    #[test]
    fn mail_dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_000_000),
            "Wed, 18 Nov 2026 11:06:40 +0000"
        );
    }
}
