//! Parsed schedules of stored jobs, remembered between bookings.
//!
//! Every `schedule_job` of an overhead job checks it against each overhead job of its node,
//! and that check needs each one parsed (dates, crontab). A booking runs under its node's lock,
//! so on a busy node parsing the same few thousand stored jobs again for every booking made
//! bookings queue behind each other. The parse is a pure function of the job's schedule
//! fields, so it is kept per job id together with those fields and reused only while they are
//! still exactly what the job holds now (a moved or replaced job is parsed again).
//!
//! One memo per service, owned by [`Ctx`](super::Ctx) (listed with every other cache in
//! docs/architecture.md), so tests and several services in one process do not share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::schedule::overlap::Sched;
use crate::store::{CronSchedule, Job, JobKind};

/// Most jobs remembered; past it the memo starts over (it only saves work).
const MAX_JOBS: usize = 65_536;

/// The fields a [`Sched`] is parsed from.
#[derive(PartialEq, Eq)]
struct Source {
    kind: JobKind,
    schedule: Option<CronSchedule>,
    start_date: String,
    end_date: String,
    length_secs: i64,
}

impl Source {
    fn of(job: &Job) -> Source {
        Source {
            kind: job.kind,
            schedule: job.schedule.clone(),
            start_date: job.start_date.clone(),
            end_date: job.end_date.clone(),
            length_secs: job.length_secs,
        }
    }

    fn matches(&self, job: &Job) -> bool {
        self.kind == job.kind
            && self.schedule == job.schedule
            && self.start_date == job.start_date
            && self.end_date == job.end_date
            && self.length_secs == job.length_secs
    }
}

type Memo = HashMap<String, (Source, Arc<Sched>)>;

/// Parsed schedules by job id (see the module doc).
#[derive(Default)]
pub struct SchedMemo(Mutex<Memo>);

impl std::fmt::Debug for SchedMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedMemo").finish_non_exhaustive()
    }
}

impl SchedMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        // Entries are inserted whole: a panic elsewhere cannot leave one half-written.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schedules of `jobs`, each parsed with `parse` unless remembered; the ones that do
    /// not parse come back as `Err` with the job's id, in order.
    pub(crate) fn scheds<'a>(
        &self,
        jobs: impl Iterator<Item = &'a Job>,
        parse: impl Fn(&Job) -> Result<Sched, String>,
    ) -> Vec<Result<Arc<Sched>, (String, String)>> {
        let mut memo = self.lock();
        let mut out = Vec::new();
        for job in jobs {
            if let Some((src, s)) = memo.get(&job.id) {
                if src.matches(job) {
                    out.push(Ok(s.clone()));
                    continue;
                }
            }
            match parse(job) {
                Ok(s) => {
                    let s = Arc::new(s);
                    if memo.len() >= MAX_JOBS {
                        memo.clear();
                    }
                    memo.insert(job.id.clone(), (Source::of(job), s.clone()));
                    out.push(Ok(s));
                }
                Err(e) => out.push(Err((job.id.clone(), e))),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn job(id: &str, start: &str) -> Job {
        Job {
            id: id.into(),
            nodeid: "n".into(),
            userid: "u".into(),
            kind: JobKind::Atq,
            params: Default::default(),
            schedule: None,
            start_date: start.into(),
            end_date: "2025-01-01 01:00:00".into(),
            length_secs: 60,
            overhead: true,
            server: None,
            trigger: None,
            config: None,
            expire_at: None,
        }
    }

    #[test]
    fn a_parse_is_reused_only_while_the_job_is_unchanged() {
        let parses = AtomicUsize::new(0);
        let parse = |j: &Job| {
            parses.fetch_add(1, Ordering::Relaxed);
            super::super::jobs::sched_of(j)
        };
        let a = job("memo-a", "2025-01-01 00:00:00");
        let memo = SchedMemo::default();
        let first = memo.scheds([&a].into_iter(), parse);
        let again = memo.scheds([&a].into_iter(), parse);
        assert_eq!(parses.load(Ordering::Relaxed), 1, "unchanged: parsed once");
        let (Ok(x), Ok(y)) = (&first[0], &again[0]) else {
            panic!("parsed")
        };
        assert!(Arc::ptr_eq(x, y));
        let moved = job("memo-a", "2025-01-01 00:30:00");
        let got = memo.scheds([&moved].into_iter(), parse);
        assert_eq!(parses.load(Ordering::Relaxed), 2, "moved: parsed again");
        let Ok(m) = &got[0] else { panic!("parsed") };
        assert_eq!(m.start_text, "2025-01-01 00:30:00");
        let bad = job("memo-bad", "not a date");
        assert!(memo.scheds([&bad].into_iter(), parse)[0].is_err());
    }
}
