//! Five-field cron expressions as the orchestrator reads them (croniter's syntax: numbers,
//! `*`, ranges, steps, lists, month and weekday names, `@hourly`-style macros), for the
//! client-side checks and `job --action=plan`. The orchestrator stays the judge: this only
//! has to find the same run times for the expressions it accepts.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

/// A parsed expression: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cron {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day of month and weekday both restricted: a day matches if either does (cron's rule).
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(text: &str, names: &[&str], offset: u32) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| i + offset)
}

/// One field (`*/15`, `1-5`, `mon,wed`) as a bit set over `lo..=hi`.
fn field(text: &str, lo: u32, hi: u32, names: &[&str], offset: u32) -> Result<u64, String> {
    let bad = || format!("invalid cron field {text:?} (allowed {lo}-{hi})");
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, names, offset).ok_or_else(bad)?,
                value(b, names, offset).ok_or_else(bad)?,
            )
        } else {
            let a = value(range, names, offset).ok_or_else(bad)?;
            // `5/10` means from 5 to the end in steps of 10.
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(bad());
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub(super) fn parse(text: &str) -> Result<Cron, String> {
        let expanded = match text.trim().to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            _ => text.trim().to_string(),
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let [mi, h, dom, mon, dow] = parts.as_slice() else {
            return Err(format!(
                "invalid cron schedule {text:?}: expected 5 fields (minute hour day month weekday)"
            ));
        };
        let mut dow_bits = field(dow, 0, 7, &DAYS, 0)?;
        if dow_bits & (1 << 7) != 0 {
            dow_bits |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            minute: field(mi, 0, 59, &[], 0)?,
            hour: field(h, 0, 23, &[], 0)?,
            dom: field(dom, 1, 31, &[], 0)?,
            month: field(mon, 1, 12, &MONTHS, 1)?,
            dow: dow_bits,
            either_day: *dom != "*" && *dow != "*",
        })
    }

    fn matches(&self, t: DateTime<Utc>) -> bool {
        let has = |bits: u64, v: u32| bits & (1 << v) != 0;
        let dom = has(self.dom, t.day());
        let dow = has(self.dow, t.weekday().num_days_from_sunday());
        let day = if self.either_day {
            dom || dow
        } else {
            dom && dow
        };
        has(self.minute, t.minute())
            && has(self.hour, t.hour())
            && has(self.month, t.month())
            && day
    }

    /// Run starts in `[from, to)`, at most `limit` of them.
    pub(super) fn runs(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let Some(mut t) = from.with_second(0).and_then(|t| t.with_nanosecond(0)) else {
            return out;
        };
        if t < from {
            t += Duration::minutes(1);
        }
        while t < to && out.len() < limit {
            if self.matches(t) {
                out.push(t);
            }
            t += Duration::minutes(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn steps_ranges_and_macros() {
        let c = Cron::parse("*/10 * * * *").unwrap();
        let runs = c.runs(at("2019-01-01T00:00:00Z"), at("2019-01-01T01:00:00Z"), 100);
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[1], at("2019-01-01T00:10:00Z"));
        let h = Cron::parse("@hourly").unwrap();
        assert_eq!(h, Cron::parse("0 * * * *").unwrap());
        let d = Cron::parse("0 12 * * mon-fri").unwrap();
        // 2019-01-05 is a Saturday.
        assert!(d
            .runs(at("2019-01-05T00:00:00Z"), at("2019-01-07T00:00:00Z"), 10)
            .is_empty());
        assert!(Cron::parse("* * *").is_err());
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("").is_err());
    }
}
