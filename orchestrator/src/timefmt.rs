//! Timestamps as the original reads (dateutil ISO forms) and writes them (Python `str(datetime)`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};

/// Longest timestamp string accepted; anything longer is not a date.
const MAX_LEN: usize = 64;

/// Parses the ISO-8601 forms the original's clients send: RFC 3339 (`T` or space separator,
/// optional fraction, `Z` or `±HH:MM`), naive date-times (taken as UTC, as MongoDB does) and
/// bare dates (midnight UTC).
pub fn parse_datetime(input: &str) -> Option<DateTime<Utc>> {
    let s = input.trim();
    if s.is_empty() || s.len() > MAX_LEN {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
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

/// Python's `str()` of the naive UTC datetime MongoDB returns: `2024-05-01 10:20:30` or, with a
/// sub-second part, `2024-05-01 10:20:30.123000`.
pub fn format_python(t: DateTime<Utc>) -> String {
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn accepts_the_original_forms() {
        let cases = [
            ("2024-05-01", "2024-05-01T00:00:00Z"),
            ("2024-05-01 10:20:30", "2024-05-01T10:20:30Z"),
            ("2024-05-01T10:20:30", "2024-05-01T10:20:30Z"),
            ("2024-05-01T10:20:30Z", "2024-05-01T10:20:30Z"),
            ("2024-05-01T10:20:30.5+05:30", "2024-05-01T04:50:30.5Z"),
            ("2024-05-01 10:20:30+00:00", "2024-05-01T10:20:30Z"),
            ("2024-05-01 10:20:30.123456", "2024-05-01T10:20:30.123456Z"),
            ("2024-05-01 10:20", "2024-05-01T10:20:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_datetime(input), Some(utc(want)), "{input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            &"9".repeat(100),
        ] {
            assert_eq!(parse_datetime(input), None, "{input}");
        }
    }

    #[test]
    fn formats_like_python_str() {
        assert_eq!(
            format_python(utc("2020-01-01T00:00:00Z")),
            "2020-01-01 00:00:00"
        );
        assert_eq!(
            format_python(utc("2020-01-01T00:00:00.25Z")),
            "2020-01-01 00:00:00.250000"
        );
    }
}
