//! Times as printed: every timestamp field of a reply in one zone (UTC with `Z` unless
//! `--tz` says otherwise), in RFC 3339, whatever form the server stored it in. Also the date
//! parsing the client-side scheduling checks use (the orchestrator's rules: naive means UTC),
//! and the relative times (`now+2h`) the CLI turns into dates before sending.

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, SubsecRound, Utc};
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
pub(crate) enum TimeZone {
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
    pub(crate) fn parse(text: &str) -> Result<TimeZone, String> {
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
    pub(crate) fn format(self, t: DateTime<Utc>) -> String {
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
pub(super) fn parse(input: &str) -> Option<DateTime<Utc>> {
    leotest_proto::timefmt::parse_datetime(input)
}

/// How a relative time is written, for error messages and help.
pub(super) const RELATIVE_FORMS: &str =
    "now, now+N or now-N with N in s, m, h or d (now+2h, now-30m)";

/// A date option's value as sent: a relative time (`now`, `now+2h`, `now-30m`, `now+30d`)
/// becomes that UTC time at `now`, in whole seconds, so help examples never go out of date;
/// any other text is sent as given (the orchestrator's date forms, which the scheduling
/// checks read with their own message). The orchestrator knows only absolute dates.
pub(super) fn absolute_at(text: &str, now: DateTime<Utc>) -> Result<String, String> {
    let Some(offset) = text.trim().strip_prefix("now") else {
        return Ok(text.to_string());
    };
    let bad = || format!("{text:?} is not a relative time: {RELATIVE_FORMS}");
    let shift = if offset.is_empty() {
        Duration::zero()
    } else {
        let (sign, rest) = match offset.as_bytes().first() {
            Some(b'+') => (1, &offset[1..]),
            Some(b'-') => (-1, &offset[1..]),
            _ => return Err(bad()),
        };
        let (digits, unit_secs) = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)]
            .into_iter()
            .find_map(|(unit, secs)| rest.strip_suffix(unit).map(|d| (d, secs)))
            .ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        n.checked_mul(unit_secs)
            .and_then(|s| s.checked_mul(sign))
            .and_then(Duration::try_seconds)
            .ok_or_else(bad)?
    };
    now.trunc_subsecs(0)
        .checked_add_signed(shift)
        .map(|t| TimeZone::Utc.format(t))
        .ok_or_else(bad)
}

/// [`absolute_at`] the current time: the value parser of the date options.
pub(super) fn absolute(text: &str) -> Result<String, String> {
    absolute_at(text, Utc::now())
}

/// Rewrites every timestamp field (at any depth) in zone `tz`; values that are not dates
/// (empty, free text) stay as they are.
pub(super) fn normalize(value: &mut Value, tz: TimeZone) {
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

    #[test]
    fn relative_times_become_dates_and_others_pass_unchanged() {
        let now = parse("2019-01-01T00:00:00.75Z").unwrap();
        let at = |s: &str| absolute_at(s, now);
        assert_eq!(at("now").unwrap(), "2019-01-01T00:00:00Z");
        assert_eq!(at(" now+2h ").unwrap(), "2019-01-01T02:00:00Z");
        assert_eq!(at("now-30m").unwrap(), "2018-12-31T23:30:00Z");
        assert_eq!(at("now+30d").unwrap(), "2019-01-31T00:00:00Z");
        assert_eq!(at("now+90s").unwrap(), "2019-01-01T00:01:30Z");
        // Absolute dates, and text that is no date at all, go on as typed.
        assert_eq!(at("2019-01-01 05:00").unwrap(), "2019-01-01 05:00");
        assert_eq!(at("soon").unwrap(), "soon");
        for bad in [
            "now+",
            "now+h",
            "now+2",
            "now+2y",
            "now2h",
            "now+-2h",
            "now+2.5h",
            "nowish",
            "now+2é",
            "now+99999999999999999d",
        ] {
            let e = at(bad).unwrap_err();
            assert!(e.contains("now+2h"), "{bad}: {e}");
        }
    }
}
