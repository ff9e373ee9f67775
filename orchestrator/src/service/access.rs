//! The ownership rule applied to runs and tasks, which name their job by id: a per-request
//! cache of job lookups and the visibility tests built on [`policy::job_access`].

use std::collections::HashMap;

use crate::auth::Caller;
use crate::policy;
use crate::store::{Job, Run, Store, StoreResult, Task};

/// Jobs looked up during one request, so a list of runs of one job costs one lookup.
pub struct Jobs<'a> {
    store: &'a dyn Store,
    seen: HashMap<String, Option<Job>>,
}

impl<'a> Jobs<'a> {
    /// Job look-ups through `store`.
    pub fn new(store: &'a dyn Store) -> Jobs<'a> {
        Jobs {
            store,
            seen: HashMap::new(),
        }
    }

    /// The live job `jobid` (expired and deleted jobs are `None`).
    pub async fn get(&mut self, jobid: &str) -> StoreResult<Option<&Job>> {
        if !self.seen.contains_key(jobid) {
            let job = self.store.get_job(jobid).await?;
            self.seen.insert(jobid.to_string(), job);
        }
        Ok(self.seen.get(jobid).and_then(Option::as_ref))
    }

    /// Whether the ownership rule gives `caller` the job `jobid` (false if it is gone).
    pub async fn grants(&mut self, caller: &Caller, jobid: &str) -> StoreResult<bool> {
        Ok(self
            .get(jobid)
            .await?
            .is_some_and(|job| policy::job_access(caller, job).any()))
    }
}

/// A run is the business of ADMIN, of its user (a run carries its job owner's id), of the
/// node it ran on, and of whoever the ownership rule gives its job.
pub async fn run_visible(caller: &Caller, run: &Run, jobs: &mut Jobs<'_>) -> StoreResult<bool> {
    if policy::is_admin(caller)
        || run.userid == caller.userid
        || policy::is_node(caller, &run.nodeid)
    {
        return Ok(true);
    }
    jobs.grants(caller, &run.jobid).await
}

/// A task is the business of ADMIN, of the node it is for, and of whoever the ownership rule
/// gives its job.
pub async fn task_visible(caller: &Caller, task: &Task, jobs: &mut Jobs<'_>) -> StoreResult<bool> {
    if policy::is_admin(caller) || policy::is_node(caller, &task.nodeid) {
        return Ok(true);
    }
    jobs.grants(caller, &task.jobid).await
}
