//! Scheduling rules of the original: cron expansion, overlap, nearest slot, triggers.

pub mod cron;
pub mod overlap;
pub mod slot;
pub mod trigger;

use chrono::{DateTime, FixedOffset, Utc};

/// Which overlap rules `schedule_job` and `reschedule_job_nearest` apply
/// (`--overlap-rules`, docs/compatibility.md "Overlap rules").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OverlapRules {
    /// The original's checks, blind spots included (drop-in default).
    #[default]
    Original,
    /// Any intersection of two runs `[start, start + length)` conflicts, and nothing else:
    /// touching runs do not, each job uses its own length, runs already under way count.
    Strict,
}

/// The UTC offset written in an ISO-8601 string (`Z` counts as `+00:00`), `None` if naive.
///
/// The original prints the datetimes it computes with Python's `str()`, which shows the
/// offset only for offset-aware inputs; this keeps that distinction.
pub fn offset_of(input: &str) -> Option<FixedOffset> {
    let s = input.trim();
    if let Some(t) = crate::timefmt::parse_aware(s) {
        return Some(*t.offset());
    }
    s.ends_with('Z').then(|| FixedOffset::east_opt(0)).flatten()
}

/// Python's `str(datetime)`: naive form without an offset, else local time plus `+HH:MM`.
pub fn pystr(t: DateTime<Utc>, offset: Option<FixedOffset>) -> String {
    match offset {
        None => crate::timefmt::format_python(t),
        Some(off) => crate::timefmt::format_python_offset(t, off),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_str_keeps_the_input_offset() {
        let cases = [
            ("2019-01-15T18:10:00+00:00", "2019-01-15 18:10:00+00:00"),
            ("2019-01-15T18:10:00Z", "2019-01-15 18:10:00+00:00"),
            (
                "2019-01-15T18:10:00.5+05:30",
                "2019-01-15 18:10:00.500000+05:30",
            ),
            ("2019-01-15 18:10:00", "2019-01-15 18:10:00"),
        ];
        for (input, want) in cases {
            let t = crate::timefmt::parse_datetime(input).expect("date");
            assert_eq!(pystr(t, offset_of(input)), want, "{input}");
        }
    }
}
