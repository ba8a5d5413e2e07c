//! Times in a zone: `local(TIME, ZONE)`, `time("RFC 3339")` and the
//! message's `Date:` (docs/language.md ("Times and zones")).
//!
//! A `time` value is an instant (seconds since the epoch) and the zone its
//! members are read in: UTC for `now`, `date` and `time(...)`, the named
//! IANA zone for `local(...)`. The zone database is chrono-tz's, embedded,
//! so daylight saving does not depend on the host's `/usr/share/zoneinfo`.

use chrono::{DateTime, Datelike, TimeZone, Timelike};
pub use chrono_tz::Tz as Zone;

/// The IANA zone named `name` (`"Europe/Berlin"`, `"UTC"`), exactly as
/// the tz database spells it.
pub fn zone(name: &str) -> Option<Zone> {
    name.parse().ok()
}

/// Every zone name of the embedded database (for "did you mean").
pub fn zone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())
}

/// `time("...")`: an RFC 3339 date-time with an offset
/// (`2024-12-20T00:00:00+01:00`, `2024-12-20T18:00:00Z`), as seconds since
/// the epoch. Fractions of a second are dropped.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp())
}

/// The broken-down fields of an instant in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalFields {
    /// Year.
    pub year: i32,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
    /// Second, 0-59.
    pub second: u32,
    /// Day of the week.
    pub weekday: chrono::Weekday,
}

/// The fields of `secs` in `zone`; an instant out of chrono's range reads
/// as the epoch.
pub fn fields(secs: i64, zone: Zone) -> LocalFields {
    let utc = DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let t = utc.with_timezone(&zone);
    LocalFields {
        year: t.year(),
        month: t.month(),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: t.second(),
        weekday: t.weekday(),
    }
}

/// A time as interpolation renders it: RFC 3339, with `Z` in UTC
/// (`2024-12-20T17:00:00Z`) and the zone's offset at that instant
/// otherwise (`2024-12-20T18:00:00+01:00`). Out-of-range times print as
/// their number of seconds.
pub fn format(secs: i64, zone: Zone) -> String {
    let Some(utc) = DateTime::from_timestamp(secs, 0) else {
        return secs.to_string();
    };
    if zone == Zone::UTC {
        return utc.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    zone.from_utc_datetime(&utc.naive_utc())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A `Date:` header's value as seconds since the epoch, read as RFC 5322
/// allows it, obsolete forms included (§4.3): a time without seconds, the
/// zones `UT`, `GMT`, `EST`/`EDT`, `CST`/`CDT`, `MST`/`MDT`, `PST`/`PDT`,
/// and any other alphabetic zone (the military letters) as `-0000`; a
/// two-digit year is 1950-2049. A day-of-week that does not match the date
/// is ignored, as mail readers do. `None` when it still does not parse.
pub fn parse_date_header(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc2822(text) {
        return Some(t.timestamp());
    }
    // chrono refuses a weekday that contradicts the date: retry without it.
    let (_, rest) = text.split_once(',')?;
    DateTime::parse_from_rfc2822(rest.trim())
        .ok()
        .map(|t| t.timestamp())
}
