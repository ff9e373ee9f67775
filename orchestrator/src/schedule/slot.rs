//! `reschedule_job_nearest`'s search for the nearest free slot, as the original performs it.
//!
//! Each existing job is consulted once, in order (a later job can push the start past an
//! earlier one without it being re-checked), and a slot must end strictly before `end`.

use chrono::{DateTime, Utc};

use super::cron::{secs, CronError};
use super::overlap::Sched;
use crate::store::JobKind;

/// Upper bound on pushes per existing job; past it the search gives up (no slot).
pub const MAX_STEPS: usize = 100_000;

/// End of the last clash of `[start, start+length)` with `sched` (`check_schedule_conflict_range`).
fn clash_end(
    start: DateTime<Utc>,
    length: i64,
    s: &Sched,
) -> Result<Option<DateTime<Utc>>, CronError> {
    let end = start + secs(length);
    match s.kind {
        JobKind::Cron => {
            let (lo, hi) = (start.max(s.start), end.min(s.end));
            if lo >= hi {
                return Ok(None);
            }
            let Some(c) = &s.cron else { return Ok(None) };
            let mut last = None;
            c.for_each(lo, hi, |dt| {
                last = Some(dt + secs(s.length));
                true
            })?;
            Ok(last)
        }
        JobKind::Atq => {
            let (lo, hi) = (s.start.max(start), s.end.min(end));
            Ok((lo < hi).then_some(hi))
        }
    }
}

/// The earliest start at or after `start` the original would choose, or `None`.
pub fn find_empty_slot(
    mut start: DateTime<Utc>,
    end: DateTime<Utc>,
    length: i64,
    existing: &[Sched],
) -> Result<Option<DateTime<Utc>>, CronError> {
    for s in existing {
        let mut steps = 0;
        while start + secs(length) < end {
            match clash_end(start, length, s)? {
                Some(e) if e > start => start = e,
                _ => break,
            }
            steps += 1;
            if steps >= MAX_STEPS {
                return Ok(None);
            }
        }
    }
    Ok((start + secs(length) < end).then_some(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::overlap::tests::sched;

    /// name, start, end, length, existing jobs, expected slot.
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        i64,
        Vec<Sched>,
        Option<&'static str>,
    );

    #[test]
    fn slot_table() {
        let p = |s: &str| crate::timefmt::parse_datetime(s).expect("date");
        let d1 = "2024-01-02 00:00";
        let cases: Vec<Case> = vec![
            (
                "no jobs",
                "2024-01-01 10:00",
                "2024-01-01 12:00",
                600,
                vec![],
                Some("2024-01-01 10:00"),
            ),
            (
                "after atq",
                "2024-01-01 10:00",
                "2024-01-01 12:00",
                600,
                vec![sched("a", "", "2024-01-01 10:05", "2024-01-01 10:30", 600)],
                Some("2024-01-01 10:30"),
            ),
            (
                "after cron run",
                "2024-01-01 10:00",
                "2024-01-01 12:00",
                600,
                vec![sched("c", "5 * * * *", "2024-01-01", d1, 900)],
                Some("2024-01-01 10:20"),
            ),
            (
                "slot must end before end",
                "2024-01-01 10:00",
                "2024-01-01 10:10",
                600,
                vec![],
                None,
            ),
            (
                "end before start",
                "2024-01-01 12:00",
                "2024-01-01 10:00",
                60,
                vec![],
                None,
            ),
            (
                "pushed past the end",
                "2024-01-01 10:00",
                "2024-01-01 11:00",
                600,
                vec![sched("a", "", "2024-01-01 09:00", "2024-01-01 10:55", 600)],
                None,
            ),
        ];
        for (name, a, b, len, existing, want) in cases {
            let got = find_empty_slot(p(a), p(b), len, &existing).expect("search");
            assert_eq!(got, want.map(p), "{name}");
        }
    }
}
