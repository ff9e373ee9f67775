//! Times as printed: every timestamp field of a reply in one zone (UTC with `Z` unless
//! `--tz` says otherwise), in RFC 3339, whatever form the server stored it in. Also the date
//! parsing the client-side scheduling checks use (the orchestrator's rules: naive means UTC).

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::Value;

/// Reply fields that hold a timestamp.
const TIME_FIELDS: &[&str] = &[
    "start_date",
    "end_date",
    "start_time",
    "end_time",
    "last_updated",
    "last_active",
    "start",
    "end",
    "starttime",
    "endtime",
];

/// Zone times are printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeZone {
    /// UTC, written with `Z`.
    #[default]
    Utc,
    /// The machine's local zone.
    Local,
    /// A fixed offset such as +05:30.
    Fixed(FixedOffset),
}

impl TimeZone {
    /// `UTC`/`Z`, `local`, or `±HH:MM` / `±HHMM`.
    pub fn parse(text: &str) -> Result<TimeZone, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(TimeZone::Utc);
        }
        if t.eq_ignore_ascii_case("local") {
            return Ok(TimeZone::Local);
        }
        let bad = || format!("expected UTC, local or an offset like +05:30, got {t:?}");
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let h: i32 = digits[..2].parse().map_err(|_| bad())?;
        let m: i32 = digits[2..].parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(TimeZone::Fixed)
            .ok_or_else(bad)
    }

    /// `t` in this zone, RFC 3339 (`Z` for UTC; fractions only when there are any).
    pub fn format(self, t: DateTime<Utc>) -> String {
        match self {
            TimeZone::Utc => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            TimeZone::Local => t
                .with_timezone(&chrono::Local)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false),
            TimeZone::Fixed(off) => t
                .with_timezone(&off)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        }
    }
}

/// Parses the date forms the orchestrator accepts (the one parser both use).
pub fn parse(input: &str) -> Option<DateTime<Utc>> {
    leotest_proto::timefmt::parse_datetime(input)
}

/// Rewrites every timestamp field (at any depth) in zone `tz`; values that are not dates
/// (empty, free text) stay as they are.
pub fn normalize(value: &mut Value, tz: TimeZone) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let Value::String(s) = v {
                    if TIME_FIELDS.contains(&k.as_str()) {
                        if let Some(t) = parse(s) {
                            *s = tz.format(t);
                        }
                    }
                } else {
                    normalize(v, tz);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalize(v, tz)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_form_prints_in_utc_with_z() {
        let mut v = json!({"jobs": [
            {"start_date": "2019-01-01T05:30:00+05:30", "end_date": "2019-01-01 00:10:00",
             "schedule": "*/10 * * * *"},
            {"start_date": "2019-01-01", "end_date": "", "config": "2019-01-01"}
        ], "last_active": "2025-12-07 10:00:00.250000"});
        normalize(&mut v, TimeZone::Utc);
        assert_eq!(v["jobs"][0]["start_date"], "2019-01-01T00:00:00Z");
        assert_eq!(v["jobs"][0]["end_date"], "2019-01-01T00:10:00Z");
        assert_eq!(v["jobs"][1]["start_date"], "2019-01-01T00:00:00Z");
        assert_eq!(v["jobs"][1]["end_date"], "");
        assert_eq!(v["jobs"][1]["config"], "2019-01-01", "not a time field");
        assert_eq!(v["last_active"], "2025-12-07T10:00:00.250Z");
    }

    #[test]
    fn tz_option_takes_offsets() {
        let tz = TimeZone::parse("+05:30").unwrap();
        let t = parse("2019-01-01T00:00:00Z").unwrap();
        assert_eq!(tz.format(t), "2019-01-01T05:30:00+05:30");
        assert_eq!(TimeZone::parse("utc").unwrap(), TimeZone::Utc);
        assert!(TimeZone::parse("Mars/Olympus").is_err());
        assert!(TimeZone::parse("+25:00").is_err());
    }
}
