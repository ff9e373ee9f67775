//! The schedule-conflict check (`check_schedule_conflict_list`) under either rule set.
//!
//! [`OverlapRules::Original`] reproduces the original rule for rule, including its blind
//! spots: a cron run that starts before an atq window and runs into it is not a conflict,
//! cron/cron checks use the new job's length on both sides of its run, and atq/atq windows
//! that merely touch do conflict. [`OverlapRules::Strict`] compares run intervals
//! `[start, start + length)` of both jobs, each with its own length: any intersection is a
//! conflict and nothing else is.

use chrono::{DateTime, Utc};

use super::cron::{secs, Cron, CronError};
use super::OverlapRules;
use crate::store::JobKind;

/// One job as the conflict check sees it.
#[derive(Debug, Clone)]
pub struct Sched {
    /// Job id.
    pub id: String,
    /// Cron or one-shot.
    pub kind: JobKind,
    /// Parsed crontab (cron jobs only).
    pub cron: Option<Cron>,
    /// Crontab text as stored (`''` for atq), used in messages.
    pub cron_text: String,
    /// Parsed `start_date`: the first run (cron) or the only one (atq).
    pub start: DateTime<Utc>,
    /// Parsed `end_date`: no cron run starts after it.
    pub end: DateTime<Utc>,
    /// Dates as stored, used in messages.
    pub start_text: String,
    /// End date as stored.
    pub end_text: String,
    /// Length of each run, in seconds.
    pub length: i64,
}

/// A detected conflict: the existing job and the window the original reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Id of the existing job.
    pub id: String,
    /// Its crontab text as stored.
    pub cron_text: String,
    /// Its start date as stored.
    pub start_text: String,
    /// Its end date as stored.
    pub end_text: String,
    /// Start of the overlapping window.
    pub start: DateTime<Utc>,
    /// End of the overlapping window.
    pub end: DateTime<Utc>,
}

type Window = Option<(DateTime<Utc>, DateTime<Utc>)>;

fn atq_atq(a: &Sched, b: &Sched) -> Window {
    let lo = a.start.max(b.start);
    let hi = (a.start + secs(a.length)).min(b.start + secs(b.length));
    (lo <= hi).then_some((lo, hi))
}

fn cron_atq(atq: &Sched, cron: &Sched) -> Result<Window, CronError> {
    let atq_end = atq.start + secs(atq.length);
    if cron.start.max(atq.start) >= cron.end.min(atq_end) {
        return Ok(None);
    }
    let Some(c) = &cron.cron else { return Ok(None) };
    let mut hit = false;
    c.for_each(atq.start, atq_end, |dt| {
        let touches = dt == atq_end || dt + secs(cron.length) == atq.start;
        hit = !touches;
        !hit
    })?;
    Ok(hit.then_some((atq.start, atq_end)))
}

fn cron_cron(a: &Sched, b: &Sched) -> Result<Window, CronError> {
    let lo = a.start.max(b.start);
    let hi = a.end.min(b.end);
    if lo >= hi {
        return Ok(None);
    }
    let (Some(ca), Some(cb)) = (&a.cron, &b.cron) else {
        return Ok(None);
    };
    let mut found: Window = None;
    let mut inner_err = None;
    ca.for_each(lo, hi, |dt1| {
        let (ws, we) = (dt1 - secs(a.length), dt1 + secs(a.length));
        let r = cb.for_each(ws, we, |dt2| {
            let touches = dt2 == we || dt2 + secs(b.length) == dt1;
            if !touches {
                found = Some((ws, we));
            }
            touches
        });
        if let Err(e) = r {
            inner_err = Some(e);
            return false;
        }
        found.is_none()
    })?;
    match inner_err {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// The intersection of the runs `[a, a + la)` and `[b, b + lb)`, if not empty.
pub(crate) fn intersect(a: DateTime<Utc>, la: i64, b: DateTime<Utc>, lb: i64) -> Window {
    let lo = a.max(b);
    let hi = (a + secs(la)).min(b + secs(lb));
    (lo < hi).then_some((lo, hi))
}

/// Strict: the first cron run (a start in `[cron.start, cron.end]`) intersecting the atq run,
/// including one that started before the atq run and is still under way.
fn strict_cron_atq(atq: &Sched, cron: &Sched) -> Result<Window, CronError> {
    let Some(c) = &cron.cron else { return Ok(None) };
    // A cron run starting at dt intersects iff atq.start - cron.length < dt < atq end.
    let lo = cron.start.max(atq.start - secs(cron.length));
    let hi = cron.end.min(atq.start + secs(atq.length));
    let mut found: Window = None;
    c.for_each(lo, hi, |dt| {
        found = intersect(dt, cron.length, atq.start, atq.length);
        found.is_none()
    })?;
    Ok(found)
}

/// Strict: the first pair of runs of `a` and `b` (each bounded by its own dates, each with its
/// own length) that intersect.
fn strict_cron_cron(a: &Sched, b: &Sched) -> Result<Window, CronError> {
    let (Some(ca), Some(cb)) = (&a.cron, &b.cron) else {
        return Ok(None);
    };
    // A run of a at dt1 can only meet a run of b at dt2 in [b.start, b.end] when
    // b.start - a.length < dt1 < b.end + b.length.
    let lo = a.start.max(b.start - secs(a.length));
    let hi = a.end.min(b.end + secs(b.length));
    let mut found: Window = None;
    let mut inner_err = None;
    ca.for_each(lo, hi, |dt1| {
        // Runs of b are ordered: only the first one ending after dt1 can start before
        // dt1's run ends, so at most two candidates are looked at per run of a.
        let r = cb.for_each(
            b.start.max(dt1 - secs(b.length)),
            b.end.min(dt1 + secs(a.length)),
            |dt2| {
                if dt2 + secs(b.length) <= dt1 {
                    return true;
                }
                found = intersect(dt1, a.length, dt2, b.length);
                false
            },
        );
        if let Err(e) = r {
            inner_err = Some(e);
            return false;
        }
        found.is_none()
    })?;
    match inner_err {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// Conflicts of `new` with each of `existing`, in order (the original's list check).
pub fn conflicts<'a>(
    new: &Sched,
    existing: impl IntoIterator<Item = &'a Sched>,
    rules: OverlapRules,
) -> Result<Vec<Conflict>, CronError> {
    let mut out = Vec::new();
    for e in existing {
        let window = match (rules, new.kind, e.kind) {
            (OverlapRules::Original, JobKind::Cron, JobKind::Cron) => cron_cron(new, e)?,
            (OverlapRules::Original, JobKind::Atq, JobKind::Atq) => atq_atq(new, e),
            (OverlapRules::Original, JobKind::Atq, JobKind::Cron) => cron_atq(new, e)?,
            (OverlapRules::Original, JobKind::Cron, JobKind::Atq) => cron_atq(e, new)?,
            (OverlapRules::Strict, JobKind::Cron, JobKind::Cron) => strict_cron_cron(new, e)?,
            (OverlapRules::Strict, JobKind::Atq, JobKind::Atq) => {
                intersect(new.start, new.length, e.start, e.length)
            }
            (OverlapRules::Strict, JobKind::Atq, JobKind::Cron) => strict_cron_atq(new, e)?,
            (OverlapRules::Strict, JobKind::Cron, JobKind::Atq) => strict_cron_atq(e, new)?,
        };
        if let Some((start, end)) = window {
            out.push(Conflict {
                id: e.id.clone(),
                cron_text: e.cron_text.clone(),
                start_text: e.start_text.clone(),
                end_text: e.end_text.clone(),
                start,
                end,
            });
        }
    }
    Ok(out)
}

/// The original's reply text for a non-empty conflict list; windows print with `offset`.
pub fn message(conflicts: &[Conflict], offset: Option<chrono::FixedOffset>) -> String {
    let mut msg = String::from("schedule conflict:");
    for (i, c) in conflicts.iter().enumerate() {
        msg.push_str(&format!(
            "<{i}, jobid={}, cron='{}', start={}, end={},conflict_start={}, conflict_end={}>",
            c.id,
            c.cron_text,
            c.start_text,
            c.end_text,
            super::pystr(c.start, offset),
            super::pystr(c.end, offset)
        ));
    }
    msg
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sched(id: &str, cron: &str, start: &str, end: &str, length: i64) -> Sched {
        let p = |s: &str| crate::timefmt::parse_datetime(s).expect("date");
        Sched {
            id: id.into(),
            kind: if cron.is_empty() {
                JobKind::Atq
            } else {
                JobKind::Cron
            },
            cron: (!cron.is_empty()).then(|| Cron::parse(cron).expect("cron")),
            cron_text: cron.into(),
            start: p(start),
            end: p(end),
            start_text: start.into(),
            end_text: end.into(),
            length,
        }
    }

    /// Dates most cases share.
    const D0: &str = "2024-01-01 00:00";
    const D1: &str = "2024-01-02 00:00";

    /// name, new job, existing job, conflict under `original`, conflict under `strict`.
    type Case = (&'static str, Sched, Sched, bool, bool);

    fn cases() -> Vec<Case> {
        let (d0, d1) = (D0, D1);
        vec![
            (
                "atq overlap",
                sched("n", "", "2024-01-01 10:00", d1, 600),
                sched("e", "", "2024-01-01 10:05", d1, 600),
                true,
                true,
            ),
            // (a) windows that only touch.
            (
                "atq touching",
                sched("n", "", "2024-01-01 10:00", d1, 600),
                sched("e", "", "2024-01-01 10:10", d1, 600),
                true,
                false,
            ),
            (
                "atq apart",
                sched("n", "", "2024-01-01 10:00", d1, 600),
                sched("e", "", "2024-01-01 10:11", d1, 600),
                false,
                false,
            ),
            (
                "cron same minutes",
                sched("n", "0 * * * *", d0, d1, 300),
                sched("e", "0 * * * *", d0, d1, 300),
                true,
                true,
            ),
            (
                "cron back to back",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "10 * * * *", d0, d1, 600),
                false,
                false,
            ),
            (
                "cron interleaved",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "5 * * * *", d0, d1, 600),
                true,
                true,
            ),
            // (b) the new job's length on both sides: a long existing run reaching into
            // the new one is missed...
            (
                "cron long existing run reaches in",
                sched("n", "0 * * * *", d0, d1, 60),
                sched("e", "55 * * * *", d0, d1, 600),
                false,
                true,
            ),
            // ...and a short existing run that ended before the new one starts is reported.
            (
                "cron short existing run ended before",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "50 * * * *", d0, d1, 300),
                true,
                false,
            ),
            (
                "cron disjoint dates",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "0 * * * *", "2024-01-02 00:30", "2024-01-03", 600),
                false,
                false,
            ),
            // croniter_range includes its end: both jobs run at 2024-01-02 00:00, which the
            // original's date-range pre-check (`start < end`) skips.
            (
                "cron sharing the boundary minute",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "0 * * * *", d1, "2024-01-03", 600),
                false,
                true,
            ),
            (
                "*/n steps meet on the hour",
                sched("n", "*/20 * * * *", d0, d1, 300),
                sched("e", "*/15 * * * *", d0, d1, 60),
                true,
                true,
            ),
            (
                "*/n steps only touch",
                sched("n", "5/20 * * * *", d0, d1, 300),
                sched("e", "*/30 * * * *", d0, d1, 300),
                false,
                false,
            ),
            (
                "atq holds cron start",
                sched("n", "", "2024-01-01 09:55", d1, 600),
                sched("e", "0 * * * *", d0, d1, 60),
                true,
                true,
            ),
            (
                "atq ends at cron start",
                sched("n", "", "2024-01-01 09:50", d1, 600),
                sched("e", "0 * * * *", d0, d1, 60),
                false,
                false,
            ),
            // (c) a cron run already under way when the atq run starts.
            (
                "cron run under way",
                sched("n", "", "2024-01-01 10:01", d1, 300),
                sched("e", "0 * * * *", d0, d1, 600),
                false,
                true,
            ),
            (
                "cron run ends as atq starts",
                sched("n", "", "2024-01-01 10:10", d1, 300),
                sched("e", "0 * * * *", d0, d1, 600),
                false,
                false,
            ),
            (
                "cron new vs atq",
                sched("n", "30 10 * * *", d0, d1, 60),
                sched("e", "", "2024-01-01 10:25", d1, 600),
                true,
                true,
            ),
            // (c) across a month end: the Jan 31 23:30 run lasts into February.
            (
                "month end run under way",
                sched("n", "", "2024-02-01 00:10", "2024-02-02", 300),
                sched("e", "30 23 31 * *", d0, "2024-03-31", 3600),
                false,
                true,
            ),
            (
                "leap day run",
                sched("n", "", "2016-02-29 11:55", "2016-03-01", 600),
                sched("e", "0 12 29 2 *", "2011-01-01", "2017-01-01", 600),
                true,
                true,
            ),
            (
                "no leap day in 2015",
                sched("n", "", "2015-03-01 11:55", "2015-03-02", 600),
                sched("e", "0 12 29 2 *", "2011-01-01", "2017-01-01", 600),
                false,
                false,
            ),
            // All arithmetic is naive UTC, as in the original: 02:30 on the European spring
            // DST day is an ordinary minute.
            (
                "UTC across a DST switch day",
                sched("n", "", "2024-03-31 02:25", "2024-04-01", 600),
                sched("e", "30 2 * * *", "2024-03-01", "2024-04-30", 60),
                true,
                true,
            ),
            (
                "cron new ends before it starts",
                sched("n", "0 * * * *", d1, d0, 600),
                sched("e", "0 * * * *", d0, d1, 600),
                false,
                false,
            ),
            (
                "cron existing ends before it starts",
                sched("n", "", "2024-01-01 10:00", d1, 600),
                sched("e", "0 * * * *", d1, d0, 600),
                false,
                false,
            ),
        ]
    }

    #[test]
    fn conflict_table() {
        for (name, new, existing, original, strict) in cases() {
            for (rules, want) in [
                (OverlapRules::Original, original),
                (OverlapRules::Strict, strict),
            ] {
                let got = conflicts(&new, std::slice::from_ref(&existing), rules).expect("check");
                assert_eq!(!got.is_empty(), want, "{name} ({rules:?})");
            }
        }
    }

    #[test]
    fn strict_is_symmetric() {
        // Each job's own length: which one is "new" does not change the answer.
        for (name, new, existing, _, strict) in cases() {
            let got = conflicts(&existing, std::slice::from_ref(&new), OverlapRules::Strict)
                .expect("check");
            assert_eq!(!got.is_empty(), strict, "{name} swapped");
        }
    }

    #[test]
    fn strict_reports_the_intersection() {
        let p = |s: &str| crate::timefmt::parse_datetime(s).expect("date");
        let c = conflicts(
            &sched("n", "", "2024-01-01 10:01", D1, 300),
            &[sched("e", "0 * * * *", D0, D1, 600)],
            OverlapRules::Strict,
        )
        .expect("check");
        assert_eq!(
            (c[0].start, c[0].end),
            (p("2024-01-01 10:01"), p("2024-01-01 10:06"))
        );
    }

    #[test]
    fn message_format() {
        let c = conflicts(
            &sched("n", "", "2024-01-01 10:00", "2024-01-02", 600),
            &[sched("e", "", "2024-01-01 10:05", "2024-01-02", 600)],
            OverlapRules::Original,
        )
        .expect("check");
        assert_eq!(
            message(&c, None),
            "schedule conflict:<0, jobid=e, cron='', start=2024-01-01 10:05, end=2024-01-02,\
             conflict_start=2024-01-01 10:05:00, conflict_end=2024-01-01 10:10:00>"
        );
    }
}
