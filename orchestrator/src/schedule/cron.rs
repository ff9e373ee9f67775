//! Five-field crontab expansion matching the original's `croniter_range` (UTC, bounds inclusive).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};

/// Most run instances one expansion may produce; beyond it the caller gets an error.
pub const MAX_RUNS: usize = 200_000;
/// Longest crontab string accepted.
const MAX_LEN: usize = 256;

/// Why a crontab string or an expansion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The crontab text and why it does not parse.
    #[error("invalid crontab '{0}': {1}")]
    Invalid(String, String),
    /// Expanding the crontab over the range gives more than `MAX_RUNS` runs.
    #[error("more than {MAX_RUNS} runs in the requested range")]
    TooManyRuns,
}

/// A parsed crontab: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    dom_any: bool,
    dow_any: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(token: &str, lo: u32, hi: u32, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Ok(v) = token.parse::<u32>() {
        if v < lo || v > hi {
            return Err(format!("{v} out of range {lo}-{hi}"));
        }
        return Ok(v);
    }
    let lower = token.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32 + name_base)
        .ok_or_else(|| format!("bad value '{token}'"))
}

/// Expands one field into a bitmask over `lo..=hi`.
fn field(expr: &str, lo: u32, hi: u32, names: &[&str], name_base: u32) -> Result<u64, String> {
    let mut mask = 0u64;
    for part in expr.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("bad step '{s}'"))?;
                if step == 0 {
                    return Err("step must be positive".into());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, lo, hi, names, name_base)?,
                value(b, lo, hi, names, name_base)?,
            )
        } else {
            let v = value(range, lo, hi, names, name_base)?;
            // croniter reads "a/n" as "a-max/n".
            (v, if part.contains('/') { hi } else { v })
        };
        if start > end {
            return Err(format!("range {start}-{end} is reversed"));
        }
        let mut v = start;
        while v <= end {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

/// The five fields a croniter nickname stands for (croniter 1.4, the original's: the whole
/// string, any case, no surrounding space). `@reboot` is not one of them.
pub fn nickname(expr: &str) -> Option<&'static str> {
    Some(match expr.to_ascii_lowercase().as_str() {
        "@midnight" | "@daily" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        _ => return None,
    })
}

impl Cron {
    /// Parses `"m h dom mon dow"`; names (`jan`, `mon`) and `7` for Sunday are accepted, and
    /// the nicknames croniter accepts ([`nickname`]).
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let bad = |why: String| CronError::Invalid(expr.chars().take(64).collect(), why);
        if expr.len() > MAX_LEN {
            return Err(bad("too long".into()));
        }
        let fields: Vec<&str> = nickname(expr).unwrap_or(expr).split_whitespace().collect();
        if fields.len() != 5 {
            return Err(bad(format!("expected 5 fields, got {}", fields.len())));
        }
        let minutes = field(fields[0], 0, 59, &[], 0).map_err(bad)?;
        let hours = field(fields[1], 0, 23, &[], 0).map_err(bad)? as u32;
        let days = field(fields[2], 1, 31, &[], 0).map_err(bad)? as u32;
        let months = field(fields[3], 1, 12, &MONTHS, 1).map_err(bad)? as u16;
        let mut weekdays = field(fields[4], 0, 7, &WEEKDAYS, 0).map_err(bad)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            minutes,
            hours,
            days,
            months,
            weekdays: weekdays as u8,
            // croniter ORs day-of-month and day-of-week only when both are restricted.
            dom_any: days == 0xffff_fffe,
            dow_any: weekdays == 0x7f,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// Every matching minute in `[start, stop]` (both inclusive), at most [`MAX_RUNS`].
    pub fn range(
        &self,
        start: DateTime<Utc>,
        stop: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, CronError> {
        let mut out = Vec::new();
        self.for_each(start, stop, |t| {
            out.push(t);
            true
        })?;
        Ok(out)
    }

    /// Calls `f` for each matching minute in `[start, stop]` until it returns `false`.
    pub fn for_each(
        &self,
        start: DateTime<Utc>,
        stop: DateTime<Utc>,
        mut f: impl FnMut(DateTime<Utc>) -> bool,
    ) -> Result<(), CronError> {
        if stop < start {
            return Ok(());
        }
        let mut count = 0usize;
        let mut day = start.date_naive();
        let last = stop.date_naive();
        while day <= last {
            if self.day_matches(day) {
                for h in 0..24u32 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    for m in 0..60u32 {
                        if self.minutes & (1 << m) == 0 {
                            continue;
                        }
                        let Some(t) = day.and_hms_opt(h, m, 0).map(|t| t.and_utc()) else {
                            continue;
                        };
                        if t < start {
                            continue;
                        }
                        if t > stop {
                            return Ok(());
                        }
                        count += 1;
                        if count > MAX_RUNS {
                            return Err(CronError::TooManyRuns);
                        }
                        if !f(t) {
                            return Ok(());
                        }
                    }
                }
            }
            match day.succ_opt() {
                Some(d) => day = d,
                None => break,
            }
        }
        Ok(())
    }
}

/// Seconds → duration, saturating on absurd values instead of overflowing.
pub fn secs(length: i64) -> Duration {
    Duration::try_seconds(length.clamp(-10_000_000_000, 10_000_000_000)).unwrap_or(Duration::zero())
}

/// `true` if `t` lies on a whole minute (croniter only yields those).
pub fn on_minute(t: DateTime<Utc>) -> bool {
    t.second() == 0 && t.nanosecond() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::timefmt::parse_datetime(s).expect("date")
    }

    fn fmt(v: &[DateTime<Utc>]) -> Vec<String> {
        v.iter()
            .map(|x| crate::timefmt::format_python(*x))
            .collect()
    }

    #[test]
    fn croniter_nicknames() {
        let hourly = Cron::parse("@hourly").expect("@hourly");
        assert_eq!(hourly, Cron::parse("0 * * * *").expect("fields"));
        assert_eq!(
            fmt(&hourly
                .range(t("2024-01-01 00:30"), t("2024-01-01 02:00"))
                .expect("range")),
            vec!["2024-01-01 01:00:00", "2024-01-01 02:00:00"]
        );
        for (nick, fields) in [
            ("@daily", "0 0 * * *"),
            ("@MIDNIGHT", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
        ] {
            assert_eq!(Cron::parse(nick), Cron::parse(fields), "{nick}");
        }
        for bad in ["@reboot", "@every 5m", " @hourly", "@hourly 1"] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expansion_table() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            (
                "*/20 * * * *",
                "2024-01-01 00:00",
                "2024-01-01 01:00",
                &[
                    "2024-01-01 00:00:00",
                    "2024-01-01 00:20:00",
                    "2024-01-01 00:40:00",
                    "2024-01-01 01:00:00",
                ],
            ),
            (
                "0 0 29 2 *",
                "2011-01-01",
                "2016-12-31",
                &["2012-02-29 00:00:00", "2016-02-29 00:00:00"],
            ),
            (
                "30 23 31 * *",
                "2024-01-15",
                "2024-05-15",
                &["2024-01-31 23:30:00", "2024-03-31 23:30:00"],
            ),
            // DST does not exist in the original's naive UTC arithmetic.
            (
                "30 2 * * *",
                "2024-03-31",
                "2024-03-31 23:59",
                &["2024-03-31 02:30:00"],
            ),
            (
                "0 12 1 * mon",
                "2024-04-01",
                "2024-04-10",
                &["2024-04-01 12:00:00", "2024-04-08 12:00:00"],
            ),
            (
                "0 12 * * 7",
                "2024-04-01",
                "2024-04-10",
                &["2024-04-07 12:00:00"],
            ),
            (
                "0 0 1 jan-feb,dec *",
                "2024-01-01",
                "2024-12-31",
                &[
                    "2024-01-01 00:00:00",
                    "2024-02-01 00:00:00",
                    "2024-12-01 00:00:00",
                ],
            ),
            (
                "5/30 1 * * *",
                "2024-01-01",
                "2024-01-01 23:00",
                &["2024-01-01 01:05:00", "2024-01-01 01:35:00"],
            ),
            ("0 0 * * *", "2024-01-02", "2024-01-01", &[]),
            ("0 0 * * *", "2024-01-01 00:00:01", "2024-01-01 12:00", &[]),
        ];
        for (expr, a, b, want) in cases {
            let c = Cron::parse(expr).expect(expr);
            assert_eq!(fmt(&c.range(t(a), t(b)).expect("range")), *want, "{expr}");
        }
    }

    #[test]
    fn invalid_crontabs() {
        for expr in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
        ] {
            assert!(Cron::parse(expr).is_err(), "{expr}");
        }
    }

    #[test]
    fn expansion_is_bounded() {
        let c = Cron::parse("* * * * *").expect("cron");
        assert_eq!(
            c.range(t("2000-01-01"), t("2010-01-01")),
            Err(CronError::TooManyRuns)
        );
    }
}
