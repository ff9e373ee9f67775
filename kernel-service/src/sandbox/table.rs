//! The job table: jobs by id, the bounded list of finished ones, and the counters behind every
//! concurrency limit (running jobs and watchers, each global and per user, watchers per job).
//!
//! All limits are checked and taken under the one table lock, so concurrent requests can never
//! exceed them; the guards ([`RunSlot`], [`WatchSlot`]) give a slot back when dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;

use super::cgroup::JobCgroup;
use super::job::{ExitInfo, JobId, JobState, JobStats, JobStatus};
use super::output::OutputLog;
use super::spec::SandboxConfig;
use super::SandboxError;
use crate::sys::pidfd::AsyncPidfd;

/// The mutable part of a job.
#[derive(Debug, Default)]
pub(super) struct Record {
    pub state: Option<JobState>,
    pub exit: Option<ExitInfo>,
    pub reason: Option<String>,
    pub final_stats: Option<JobStats>,
    pub finished_at: Option<SystemTime>,
    pub stop_requested: bool,
}

/// One job, running or finished.
#[derive(Debug)]
pub(super) struct Job {
    pub id: JobId,
    pub owner: String,
    pub argv: Vec<String>,
    /// The uid (and gid) it runs as.
    pub uid: u32,
    pub started_at: SystemTime,
    pub output: Arc<OutputLog>,
    pub cgroup: Option<Arc<dyn JobCgroup>>,
    pub pidfd: Option<Arc<AsyncPidfd>>,
    pub rec: Mutex<Record>,
    pub done: watch::Sender<bool>,
}

impl Job {
    pub(super) fn rec(&self) -> MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn status(&self) -> JobStatus {
        let r = self.rec();
        let state = r.state.unwrap_or(JobState::Running);
        let stats = match (&r.final_stats, &self.cgroup) {
            (Some(s), _) => *s,
            (None, Some(cg)) if state == JobState::Running => cg.stats(),
            _ => JobStats::default(),
        };
        JobStatus {
            id: self.id.clone(),
            owner: self.owner.clone(),
            argv: self.argv.clone(),
            uid: self.uid,
            state,
            exit: r.exit,
            reason: r.reason.clone(),
            stats,
            started_at: self.started_at,
            finished_at: r.finished_at,
        }
    }
}

fn dec(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// Jobs and counters; only ever used under [`Jobs`]' lock.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub jobs: HashMap<JobId, Arc<Job>>,
    finished: VecDeque<JobId>,
    running: usize,
    running_by_user: HashMap<String, usize>,
    watchers: usize,
    watchers_by_user: HashMap<String, usize>,
    watchers_by_job: HashMap<JobId, usize>,
}

/// The limits the table enforces, from the configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quotas {
    pub max_running: usize,
    pub max_running_per_user: usize,
    pub max_watchers: usize,
    pub max_watchers_per_user: usize,
    pub max_watchers_per_job: usize,
    pub max_finished: usize,
    pub max_finished_per_user: usize,
}

impl Quotas {
    pub(super) fn from_config(c: &SandboxConfig) -> Self {
        Quotas {
            max_running: c.max_running,
            max_running_per_user: c.max_running_per_user.min(c.max_running),
            max_watchers: c.max_watchers,
            max_watchers_per_user: c.max_watchers_per_user.min(c.max_watchers),
            max_watchers_per_job: c.max_watchers_per_job.min(c.max_watchers),
            max_finished: c.max_finished,
            max_finished_per_user: c.max_finished_per_user.min(c.max_finished),
        }
    }
}

/// The shared table with its quotas.
#[derive(Debug)]
pub(super) struct Jobs {
    table: Mutex<Table>,
    quotas: Quotas,
}

impl Jobs {
    pub(super) fn new(quotas: Quotas) -> Self {
        Jobs {
            table: Mutex::new(Table::default()),
            quotas,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Jobs holding a running slot now.
    pub(super) fn running(&self) -> usize {
        self.lock().running
    }

    /// Takes a running slot for `owner`, or says which limit is reached.
    pub(super) fn reserve_run(self: &Arc<Self>, owner: &str) -> Result<RunSlot, SandboxError> {
        let q = self.quotas;
        let mut t = self.lock();
        if t.running >= q.max_running {
            return Err(SandboxError::TooManyJobs(q.max_running));
        }
        let mine = t.running_by_user.get(owner).copied().unwrap_or(0);
        if mine >= q.max_running_per_user {
            return Err(SandboxError::TooManyUserJobs(q.max_running_per_user));
        }
        t.running += 1;
        *t.running_by_user.entry(owner.to_string()).or_default() += 1;
        Ok(RunSlot {
            jobs: self.clone(),
            owner: owner.to_string(),
            armed: true,
        })
    }

    /// Takes a watcher slot of `caller` on `job`, or says which limit is reached.
    pub(super) fn reserve_watch(
        self: &Arc<Self>,
        caller: &str,
        job: &JobId,
    ) -> Result<WatchSlot, SandboxError> {
        let q = self.quotas;
        let mut t = self.lock();
        let refuse =
            |scope: &'static str, limit: usize| Err(SandboxError::TooManyWatchers { scope, limit });
        if t.watchers >= q.max_watchers {
            return refuse("in total", q.max_watchers);
        }
        if t.watchers_by_user.get(caller).copied().unwrap_or(0) >= q.max_watchers_per_user {
            return refuse("for this user", q.max_watchers_per_user);
        }
        if t.watchers_by_job.get(job).copied().unwrap_or(0) >= q.max_watchers_per_job {
            return refuse("on this job", q.max_watchers_per_job);
        }
        t.watchers += 1;
        *t.watchers_by_user.entry(caller.to_string()).or_default() += 1;
        *t.watchers_by_job.entry(job.clone()).or_default() += 1;
        Ok(WatchSlot {
            jobs: self.clone(),
            caller: caller.to_string(),
            job: job.clone(),
        })
    }

    /// Moves a job from the running counts to the list of finished jobs, forgetting the oldest
    /// finished job of its owner beyond the per-user bound, then the oldest of whoever keeps the
    /// most beyond the global one (so one user's jobs never push out everybody else's).
    pub(super) fn retire(&self, slot: RunSlot, id: &JobId) {
        let q = self.quotas;
        let mut t = self.lock();
        slot.release(&mut t);
        t.finished.push_back(id.clone());
        let owner_of = |t: &Table, id: &JobId| t.jobs.get(id).map(|j| j.owner.clone());
        let Some(owner) = owner_of(&t, id) else {
            return;
        };
        let mine = t
            .finished
            .iter()
            .filter(|j| owner_of(&t, j).as_deref() == Some(owner.as_str()))
            .count();
        if mine > q.max_finished_per_user {
            let oldest = t
                .finished
                .iter()
                .position(|j| owner_of(&t, j).as_deref() == Some(owner.as_str()));
            if let Some(old) = oldest.and_then(|i| t.finished.remove(i)) {
                t.jobs.remove(&old);
            }
        }
        while t.finished.len() > q.max_finished {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for j in &t.finished {
                if let Some(o) = owner_of(&t, j) {
                    *counts.entry(o).or_default() += 1;
                }
            }
            let heaviest = counts.into_iter().max_by_key(|(_, n)| *n).map(|(o, _)| o);
            let pos = t
                .finished
                .iter()
                .position(|j| owner_of(&t, j) == heaviest)
                .unwrap_or(0);
            if let Some(old) = t.finished.remove(pos) {
                t.jobs.remove(&old);
            }
        }
    }
}

/// A taken running slot; given back on drop unless the job retires with it.
#[derive(Debug)]
pub(super) struct RunSlot {
    jobs: Arc<Jobs>,
    owner: String,
    armed: bool,
}

impl RunSlot {
    fn release(mut self, t: &mut Table) {
        self.armed = false;
        t.running = t.running.saturating_sub(1);
        dec(&mut t.running_by_user, &self.owner);
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        if self.armed {
            let jobs = self.jobs.clone();
            let mut t = jobs.lock();
            t.running = t.running.saturating_sub(1);
            dec(&mut t.running_by_user, &self.owner);
        }
    }
}

/// A taken watcher slot, kept by the output stream it was taken for.
#[derive(Debug)]
pub(super) struct WatchSlot {
    jobs: Arc<Jobs>,
    caller: String,
    job: JobId,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut t = self.jobs.lock();
        t.watchers = t.watchers.saturating_sub(1);
        dec(&mut t.watchers_by_user, &self.caller);
        if let Some(n) = t.watchers_by_job.get_mut(&self.job) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.watchers_by_job.remove(&self.job);
            }
        }
    }
}
