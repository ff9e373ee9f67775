//! The original's schedule-conflict check (`check_schedule_conflict_list`), rule for rule.
//!
//! Reproduced as the original applies it, including its blind spots: a cron run that starts
//! before an atq window and runs into it is not a conflict, cron/cron checks use the new job's
//! length on both sides, and atq/atq windows that merely touch do conflict.

use chrono::{DateTime, Utc};

use super::cron::{secs, Cron, CronError};
use crate::store::JobKind;

/// One job as the conflict check sees it.
#[derive(Debug, Clone)]
pub struct Sched {
    pub id: String,
    pub kind: JobKind,
    /// Parsed crontab (cron jobs only).
    pub cron: Option<Cron>,
    /// Crontab text as stored (`''` for atq), used in messages.
    pub cron_text: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Dates as stored, used in messages.
    pub start_text: String,
    pub end_text: String,
    pub length: i64,
}

/// A detected conflict: the existing job and the window the original reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub id: String,
    pub cron_text: String,
    pub start_text: String,
    pub end_text: String,
    pub start: DateTime<Utc>,
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

/// Conflicts of `new` with each of `existing`, in order (the original's list check).
pub fn conflicts(new: &Sched, existing: &[Sched]) -> Result<Vec<Conflict>, CronError> {
    let mut out = Vec::new();
    for e in existing {
        let window = match (new.kind, e.kind) {
            (JobKind::Cron, JobKind::Cron) => cron_cron(new, e)?,
            (JobKind::Atq, JobKind::Atq) => atq_atq(new, e),
            (JobKind::Atq, JobKind::Cron) => cron_atq(new, e)?,
            (JobKind::Cron, JobKind::Atq) => cron_atq(e, new)?,
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

    pub fn sched(id: &str, cron: &str, start: &str, end: &str, length: i64) -> Sched {
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

    #[test]
    fn conflict_table() {
        let d0 = "2024-01-01 00:00";
        let d1 = "2024-01-02 00:00";
        let cases: &[(&str, Sched, Sched, bool)] = &[
            (
                "atq overlap",
                sched("n", "", "2024-01-01 10:00", d1, 600),
                sched("e", "", "2024-01-01 10:05", d1, 600),
                true,
            ),
            (
                "atq touching counts",
                sched("n", "", "2024-01-01 10:00", d1, 600),
                sched("e", "", "2024-01-01 10:10", d1, 600),
                true,
            ),
            (
                "atq apart",
                sched("n", "", "2024-01-01 10:00", d1, 600),
                sched("e", "", "2024-01-01 10:11", d1, 600),
                false,
            ),
            (
                "cron same minutes",
                sched("n", "0 * * * *", d0, d1, 300),
                sched("e", "0 * * * *", d0, d1, 300),
                true,
            ),
            (
                "cron back to back",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "10 * * * *", d0, d1, 600),
                false,
            ),
            (
                "cron interleaved",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "5 * * * *", d0, d1, 600),
                true,
            ),
            (
                "cron disjoint dates",
                sched("n", "0 * * * *", d0, d1, 600),
                sched("e", "0 * * * *", d1, "2024-01-03", 600),
                false,
            ),
            (
                "atq holds cron start",
                sched("n", "", "2024-01-01 09:55", d1, 600),
                sched("e", "0 * * * *", d0, d1, 60),
                true,
            ),
            (
                "atq ends at cron start",
                sched("n", "", "2024-01-01 09:50", d1, 600),
                sched("e", "0 * * * *", d0, d1, 60),
                false,
            ),
            // The original's blind spot: a cron run already under way is not seen.
            (
                "cron run under way",
                sched("n", "", "2024-01-01 10:01", d1, 300),
                sched("e", "0 * * * *", d0, d1, 600),
                false,
            ),
            (
                "cron new vs atq",
                sched("n", "30 10 * * *", d0, d1, 60),
                sched("e", "", "2024-01-01 10:25", d1, 600),
                true,
            ),
        ];
        for (name, new, existing, want) in cases {
            let got = conflicts(new, std::slice::from_ref(existing)).expect("check");
            assert_eq!(!got.is_empty(), *want, "{name}");
        }
    }

    #[test]
    fn message_format() {
        let c = conflicts(
            &sched("n", "", "2024-01-01 10:00", "2024-01-02", 600),
            &[sched("e", "", "2024-01-01 10:05", "2024-01-02", 600)],
        )
        .expect("check");
        assert_eq!(
            message(&c, None),
            "schedule conflict:<0, jobid=e, cron='', start=2024-01-01 10:05, end=2024-01-02,\
             conflict_start=2024-01-01 10:05:00, conflict_end=2024-01-01 10:10:00>"
        );
    }
}
