//! Timestamps in the forms the original's clients send (dateutil's ISO forms): one parser for
//! the orchestrator, which stores them, and the CLI, which checks them before sending.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};

/// Longest timestamp string accepted; anything longer is not a date.
const MAX_LEN: usize = 64;

/// The offset-aware forms of [`parse_datetime`] (RFC 3339, space or `T`, `±HH:MM` or `±HHMM`,
/// minutes-only times), with the offset kept; `None` for naive input.
pub fn parse_aware(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok().or_else(|| {
        [
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%z",
            "%Y-%m-%dT%H:%M:%S%.f%z",
            "%Y-%m-%d %H:%M%:z",
            "%Y-%m-%dT%H:%M%:z",
        ]
        .iter()
        .find_map(|fmt| DateTime::parse_from_str(s, fmt).ok())
    })
}

/// Parses the ISO-8601 forms the original's clients send: RFC 3339 (`T` or space separator,
/// optional fraction, `Z` or `±HH:MM`), naive date-times (taken as UTC, as MongoDB does) and
/// bare dates (midnight UTC).
pub fn parse_datetime(input: &str) -> Option<DateTime<Utc>> {
    let s = input.trim();
    if s.is_empty() || s.len() > MAX_LEN {
        return None;
    }
    if let Some(t) = parse_aware(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
