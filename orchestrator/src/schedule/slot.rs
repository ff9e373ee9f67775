//! `reschedule_job_nearest`'s search for the nearest free slot.
//!
//! [`OverlapRules::Original`] searches as the original does: each existing job is consulted
//! once, in order (a later job can push the start past an earlier one without it being
//! re-checked), a cron run already under way at the candidate start is not seen, and a cron
//! run starting exactly when the candidate ends still pushes it. [`OverlapRules::Strict`]
//! sees every run intersecting the candidate (an atq job's run is `[start_date, start_date +
//! length)`, where the original blocks `[start_date, end_date]`) and repeats the passes until
//! no job moves the start, so its slot passes the strict conflict check. Under both, a slot
//! must end strictly before `end`.

use chrono::{DateTime, Utc};

use super::cron::{secs, CronError};
use super::overlap::Sched;
use super::OverlapRules;
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

/// Strict: end of the last run of `sched` intersecting `[start, start+length)`, including a
/// cron run that began before `start` and is still under way; touching runs do not count. An
/// atq job occupies its run `[start_date, start_date + length)`, as in the conflict check.
fn strict_clash_end(
    start: DateTime<Utc>,
    length: i64,
    s: &Sched,
) -> Result<Option<DateTime<Utc>>, CronError> {
    match s.kind {
        JobKind::Cron => {
            let Some(c) = &s.cron else { return Ok(None) };
            let end = start + secs(length);
            let run = secs(s.length);
            let mut last = None;
            c.for_each(s.start.max(start - run), s.end.min(end), |dt| {
                if dt < end && dt + run > start {
                    last = Some(dt + run);
                }
                true
            })?;
            Ok(last)
        }
        JobKind::Atq => Ok(super::overlap::intersect(start, length, s.start, s.length)
            .map(|_| s.start + secs(s.length))),
    }
}

/// The earliest start at or after `start` the rules choose, or `None`.
pub fn find_empty_slot(
    mut start: DateTime<Utc>,
    end: DateTime<Utc>,
    length: i64,
    existing: &[Sched],
    rules: OverlapRules,
) -> Result<Option<DateTime<Utc>>, CronError> {
    let mut steps = 0;
    loop {
        let mut moved = false;
        for s in existing {
            if rules == OverlapRules::Original {
                steps = 0;
            }
            while start + secs(length) < end {
                let clash = match rules {
                    OverlapRules::Original => clash_end(start, length, s)?,
                    OverlapRules::Strict => strict_clash_end(start, length, s)?,
                };
                match clash {
                    Some(e) if e > start => {
                        start = e;
                        moved = true;
                    }
                    _ => break,
                }
                steps += 1;
                if steps >= MAX_STEPS {
                    return Ok(None);
                }
            }
        }
        // Strict: a job pushed the start, so an earlier one may clash again; every pass that
        // moves advances `start`, so this ends (at the latest when the slot passes `end`).
        if rules == OverlapRules::Original || !moved || start + secs(length) >= end {
            break;
        }
    }
    Ok((start + secs(length) < end).then_some(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::overlap::tests::sched;

    /// name, start, end, length, existing jobs, slot under `original`, slot under `strict`.
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        i64,
        Vec<Sched>,
        Option<&'static str>,
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
                Some("2024-01-01 10:00"),
            ),
            (
                "after atq",
                "2024-01-01 10:00",
                "2024-01-01 12:00",
                600,
                vec![sched("a", "", "2024-01-01 10:05", "2024-01-01 10:30", 600)],
                Some("2024-01-01 10:30"),
                Some("2024-01-01 10:15"),
            ),
            (
                "after cron run",
                "2024-01-01 10:00",
                "2024-01-01 12:00",
                600,
                vec![sched("c", "5 * * * *", "2024-01-01", d1, 900)],
                Some("2024-01-01 10:20"),
                Some("2024-01-01 10:20"),
            ),
            // (d) a cron run under way at the candidate start.
            (
                "cron run under way",
                "2024-01-01 10:03",
                "2024-01-01 12:00",
                600,
                vec![sched("c", "0 * * * *", "2024-01-01", d1, 600)],
                Some("2024-01-01 10:03"),
                Some("2024-01-01 10:10"),
            ),
            (
                "month end run under way",
                "2024-02-01 00:00",
                "2024-02-01 12:00",
                600,
                vec![sched("c", "30 23 31 * *", "2024-01-01", "2024-12-31", 3600)],
                Some("2024-02-01 00:00"),
                Some("2024-02-01 00:30"),
            ),
            (
                "leap day run under way",
                "2024-02-29 00:05",
                "2024-02-29 12:00",
                60,
                vec![sched("c", "0 0 29 2 *", "2024-01-01", "2024-12-31", 600)],
                Some("2024-02-29 00:05"),
                Some("2024-02-29 00:10"),
            ),
            // A cron run starting as the candidate ends only touches it.
            (
                "*/n gap fits exactly",
                "2024-01-01 10:00",
                "2024-01-01 12:00",
                300,
                vec![sched("c", "*/15 * * * *", "2024-01-01", d1, 600)],
                None,
                Some("2024-01-01 10:10"),
            ),
            // Original: one pass, so the push past `y` lands inside `x`, checked before it
            // (and an atq job blocks its whole [start_date, end_date] window).
            (
                "later job pushes into an earlier one",
                "2024-01-01 10:00",
                "2024-01-01 12:00",
                600,
                vec![
                    sched("x", "", "2024-01-01 10:12", "2024-01-01 10:30", 600),
                    sched("y", "", "2024-01-01 10:00", "2024-01-01 10:05", 600),
                ],
                Some("2024-01-01 10:05"),
                Some("2024-01-01 10:22"),
            ),
            (
                "slot must end before end",
                "2024-01-01 10:00",
                "2024-01-01 10:10",
                600,
                vec![],
                None,
                None,
            ),
            (
                "end before start",
                "2024-01-01 12:00",
                "2024-01-01 10:00",
                60,
                vec![sched("c", "0 * * * *", "2024-01-01", d1, 600)],
                None,
                None,
            ),
            // Original: the atq job blocks up to its end_date; strict: up to the end of its run.
            (
                "pushed past the end",
                "2024-01-01 10:00",
                "2024-01-01 11:00",
                600,
                vec![sched("a", "", "2024-01-01 09:55", "2024-01-01 10:55", 600)],
                None,
                Some("2024-01-01 10:05"),
            ),
        ];
        for (name, a, b, len, existing, original, strict) in cases {
            for (rules, want) in [
                (OverlapRules::Original, original),
                (OverlapRules::Strict, strict),
            ] {
                let got = find_empty_slot(p(a), p(b), len, &existing, rules).expect("search");
                assert_eq!(got, want.map(p), "{name} ({rules:?})");
            }
        }
    }

    #[test]
    fn strict_slot_has_no_strict_conflict() {
        // Whatever strict finds, the strict conflict check accepts as an atq job there.
        let p = |s: &str| crate::timefmt::parse_datetime(s).expect("date");
        let existing = vec![
            sched("x", "", "2024-01-01 10:12", "2024-01-01 10:12", 600),
            sched("c", "*/15 * * * *", "2024-01-01", "2024-01-02", 300),
            sched("y", "", "2024-01-01 10:00", "2024-01-01 10:00", 600),
        ];
        let slot = find_empty_slot(
            p("2024-01-01 10:00"),
            p("2024-01-01 12:00"),
            300,
            &existing,
            OverlapRules::Strict,
        )
        .expect("search")
        .expect("a slot");
        let text = crate::timefmt::format_python(slot);
        let me = sched("me", "", &text, "2024-01-02", 300);
        let c = crate::schedule::overlap::conflicts(&me, &existing, OverlapRules::Strict)
            .expect("check");
        assert!(c.is_empty(), "slot {text} conflicts: {c:?}");
    }
}
