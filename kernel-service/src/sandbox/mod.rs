//! Sandboxed jobs: namespaces, cgroup limits, seccomp, a minimal root, lifecycle and output.
//!
//! [`JobManager`] is the broker-facing API. Each job is cloned straight into new PID, mount,
//! network, UTS and IPC namespaces, joins its own cgroup before its first instruction, sees a
//! minimal read-only root (see [`rootfs`]: the host's program and library directories, a few
//! files of `/etc`, a handful of devices) with a private tmpfs on `/tmp` as its working
//! directory, a fresh `/proc`, hostname `sandbox`, only a loopback interface that is down, runs
//! under seccomp filters (see [`seccomp`]) as an unprivileged uid/gid with `no_new_privs` and a
//! minimal environment.
//!
//! The command itself is pid 1 of its namespace: when it exits, the kernel kills everything
//! else in the job, and stopping a job is one SIGKILL through its pidfd. Background children
//! it never reaps stay zombies (counted against `pids.max`) until the job ends.
//!
//! Every resource a client can make the service hold is bounded in total and per user
//! ([`SandboxConfig`]): running jobs, watchers (and watchers per job), remembered finished jobs,
//! and spilled output ([`budget`]); one-shot replies are capped.
//!
//! To keep the start of a job short, the spawner keeps [`SandboxConfig::prewarm`] warm
//! sandboxes set up ahead of demand, each waiting for its command (see [`pool`]). Job cgroups
//! left behind by a killed service are swept at start-up.

pub mod budget;
pub mod cgroup;
mod child;
pub mod flags;
pub mod job;
pub mod output;
mod pool;
pub mod reader;
pub mod rootfs;
pub mod seccomp;
pub mod spawn;
pub mod spec;
pub mod stage;
mod table;
pub mod uids;
pub mod wire;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::sync::watch;

pub use cgroup::{CgroupError, CgroupVersion, JobCgroup, Layout};
pub use job::{ExitInfo, JobId, JobState, JobStats, JobStatus};
pub use output::{forward, OutputLog, OutputStream};
pub use spawn::SpawnError;
pub use spec::{Limits, SandboxConfig};

use crate::sys::pidfd::{AsyncPidfd, ChildExit};
use crate::sys::process;
use budget::SpillBudget;
use output::LogLimits;
use pool::Spawner;
use rootfs::RootPlan;
use seccomp::Filters;
use spawn::{Started, Template};
use table::{Job, Jobs, Quotas, Record, RunSlot};
use uids::{JobIds, UidLease, UidPool};

/// Errors of the job API; the `Display` text is safe to send to the client.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The configuration is unsafe or inconsistent.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// The client's request is malformed or out of bounds.
    #[error("invalid job request: {0}")]
    InvalidRequest(String),
    /// No such job, or not one the caller may see.
    #[error("unknown job id: {0}")]
    NotFound(String),
    /// The node-wide concurrency limit is reached.
    #[error("too many running jobs (limit {0})")]
    TooManyJobs(usize),
    /// The caller's own concurrency limit is reached.
    #[error("too many running jobs for this user (limit {0})")]
    TooManyUserJobs(usize),
    /// A watcher limit is reached.
    #[error("too many watchers {scope} (limit {limit})")]
    TooManyWatchers {
        /// Which limit: "in total", "for this user" or "on this job".
        scope: &'static str,
        /// Its value.
        limit: usize,
    },
    /// Creating or configuring the job cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Creating the sandboxed process failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// An internal task failed.
    #[error("internal sandbox error: {0}")]
    Internal(String),
}

/// Result of [`JobManager::run_oneshot`].
#[derive(Debug, Clone)]
pub struct OneshotOutput {
    /// Final status of the job.
    pub status: JobStatus,
    /// What it wrote to stdout and stderr (bounded by `oneshot_output_max`).
    pub output: Vec<u8>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    layout: Layout,
    spawner: Spawner,
    jobs: Arc<Jobs>,
    budget: Arc<SpillBudget>,
    /// A uid per running job (`None`: every job runs as `config.uid`).
    uids: Option<Arc<UidPool>>,
}

/// The broker-facing job API; cheap to clone.
#[derive(Debug, Clone)]
pub struct JobManager {
    inner: Arc<Inner>,
}

impl JobManager {
    /// Validates `config`, detects the cgroup layout, plans the job root, compiles the seccomp
    /// filters and starts the spawner thread.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        config.validate()?;
        if process::geteuid() != 0 {
            return Err(SandboxError::Config(
                "the sandbox needs root to create namespaces and cgroups".into(),
            ));
        }
        let uids = match config.job_uids {
            Some(range) => {
                let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
                let (subuid, subgid) = (read("/etc/subuid"), read("/etc/subgid"));
                range
                    .check(
                        &read("/etc/passwd"),
                        &read("/etc/group"),
                        &[&subuid, &subgid],
                    )
                    .map_err(SandboxError::Config)?;
                Some(UidPool::new(range))
            }
            None => None,
        };
        let layout = cgroup::detect()?;
        // A warm sandbox does not know its job's uid yet: with a uid per job its private tmpfs
        // is world-writable and sticky, like /tmp (no other job can see it anyway).
        let workdir = match config.job_uids {
            Some(_) => Template::shared_workdir_opts(config.workdir_bytes),
            None => Template::workdir_opts(config.workdir_bytes, config.uid, config.gid),
        };
        let root = RootPlan::detect(&workdir)
            .map_err(|e| SandboxError::Config(format!("job root: {e}")))?;
        let filters =
            Filters::new().map_err(|e| SandboxError::Config(format!("seccomp filters: {e}")))?;
        let spawner = Spawner::new(Template {
            layout: layout.clone(),
            cgroup_parent: config.cgroup_parent.clone(),
            limits: config.limits.clone(),
            uid: config.uid,
            gid: config.gid,
            hostname: config.hostname.clone(),
            root,
            filters,
            prewarm: config.prewarm,
        })
        .map_err(|e| SandboxError::Internal(e.to_string()))?;
        tracing::info!(cgroup = ?layout.version(), "sandbox ready");
        Ok(JobManager {
            inner: Arc::new(Inner {
                jobs: Arc::new(Jobs::new(Quotas::from_config(&config))),
                budget: SpillBudget::new(config.spill_max, config.spill_max_per_user),
                config,
                layout,
                spawner,
                uids,
            }),
        })
    }

    /// The cgroup API in use on this machine.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.inner.layout.version()
    }

    /// Jobs running now (holding a running slot), over every user.
    pub fn running(&self) -> usize {
        self.inner.jobs.running()
    }

    /// Spill bytes in use in total and by `owner`'s jobs.
    pub fn spill_used(&self, owner: &str) -> (u64, u64) {
        self.inner.budget.used(owner)
    }

    /// Starts `argv` as a sandboxed job owned by `owner` with the configured wall-clock limit.
    pub async fn start(&self, owner: &str, argv: Vec<String>) -> Result<JobId, SandboxError> {
        let limit = self.inner.config.limits.wall_clock;
        self.start_with_limit(owner, argv, limit).await
    }

    /// Like [`start`](Self::start) with an explicit wall-clock limit.
    pub async fn start_with_limit(
        &self,
        owner: &str,
        argv: Vec<String>,
        time_limit: Duration,
    ) -> Result<JobId, SandboxError> {
        let max = self.inner.config.output_max;
        self.start_job(owner, argv, time_limit, max).await
    }

    async fn start_job(
        &self,
        owner: &str,
        argv: Vec<String>,
        time_limit: Duration,
        output_max: u64,
    ) -> Result<JobId, SandboxError> {
        spec::validate_request(owner, &argv)?;
        let inner = &self.inner;
        let cfg = &inner.config;
        let slot = inner.jobs.reserve_run(owner)?;
        // Its own uid, held until `supervise` has emptied and removed its cgroup.
        let lease = match &inner.uids {
            Some(pool) => Some(
                pool.lease()
                    .ok_or(SandboxError::TooManyJobs(cfg.max_running))?,
            ),
            None => None,
        };
        let ids = lease.as_ref().map_or(
            JobIds {
                uid: cfg.uid,
                gid: cfg.gid,
            },
            |l| l.ids,
        );
        let limits = LogLimits {
            mem_cap: cfg.output_memory_cap,
            max: output_max,
            spill_dir: cfg.spill_dir.clone(),
            budget: inner.budget.clone(),
        };
        let output = OutputLog::new(&limits, owner);
        let started_at = SystemTime::now();
        // The cgroup (limits applied) and the set-up sandbox usually exist already: the
        // spawner keeps `prewarm` of them warm (see `pool`).
        let Started {
            id,
            cgroup: cg,
            result,
        } = inner.spawner.start(argv.clone(), ids).await?;
        let spawned = match result {
            Ok(s) => s,
            Err(SpawnError::Exec { program, source }) => {
                // The user's command is at fault: record a FAILED job, as a start failure.
                discard_cgroup(cg).await;
                let msg = format!("leotest: cannot execute {program:?}: {source}\n");
                let log = output.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    log.append(msg.as_bytes());
                    log.close();
                })
                .await;
                let job = Arc::new(Job {
                    id: id.clone(),
                    owner: owner.to_string(),
                    argv,
                    uid: ids.uid,
                    started_at,
                    output,
                    cgroup: None,
                    pidfd: None,
                    rec: Mutex::new(Record {
                        state: Some(JobState::Failed),
                        reason: Some(format!("failed to start: {source}")),
                        finished_at: Some(SystemTime::now()),
                        ..Record::default()
                    }),
                    done: watch::Sender::new(true),
                });
                inner.jobs.lock().jobs.insert(id.clone(), job);
                inner.jobs.retire(slot, &id);
                return Ok(id);
            }
            Err(e) => {
                discard_cgroup(cg).await;
                return Err(e.into());
            }
        };

        let pidfd = match AsyncPidfd::register(spawned.pidfd) {
            Ok(fd) => Arc::new(fd),
            Err((fd, e)) => {
                // Cannot supervise it: kill it rather than leave it unmanaged.
                crate::sys::pidfd::kill(std::os::fd::AsFd::as_fd(&fd));
                discard_cgroup(cg).await;
                return Err(SandboxError::Internal(e.to_string()));
            }
        };
        let pump = reader::spawn(spawned.output, output.clone(), cg.as_ref());
        let job = Arc::new(Job {
            id: id.clone(),
            owner: owner.to_string(),
            argv,
            uid: ids.uid,
            started_at,
            output,
            cgroup: Some(cg),
            pidfd: Some(pidfd),
            rec: Mutex::new(Record {
                state: Some(JobState::Running),
                ..Record::default()
            }),
            done: watch::Sender::new(false),
        });
        inner.jobs.lock().jobs.insert(id.clone(), job.clone());
        tracing::info!(job = %id, owner, pid = spawned.pid, "job started");
        tokio::spawn(supervise(
            self.inner.clone(),
            job,
            slot,
            pump,
            time_limit,
            lease,
        ));
        Ok(id)
    }

    fn lookup(&self, caller: &str, is_admin: bool, id: &str) -> Result<Arc<Job>, SandboxError> {
        let not_found = || SandboxError::NotFound(id.chars().take(64).collect());
        let jid = JobId::parse(id).ok_or_else(not_found)?;
        let job = self
            .inner
            .jobs
            .lock()
            .jobs
            .get(&jid)
            .cloned()
            .ok_or_else(not_found)?;
        // Other users' jobs are indistinguishable from missing ones.
        if is_admin || job.owner == caller {
            Ok(job)
        } else {
            Err(not_found())
        }
    }

    /// State, exit code and cgroup statistics of a job the caller may see.
    pub fn status(
        &self,
        caller: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<JobStatus, SandboxError> {
        Ok(self.lookup(caller, is_admin, id)?.status())
    }

    /// Kills a running job (everything in its PID namespace) and returns its final status;
    /// on a finished job this changes nothing and returns its status.
    pub async fn stop(
        &self,
        caller: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<JobStatus, SandboxError> {
        let job = self.lookup(caller, is_admin, id)?;
        {
            let mut r = job.rec();
            if r.state.is_some_and(JobState::is_terminal) {
                drop(r);
                return Ok(job.status());
            }
            r.stop_requested = true;
        }
        if let Some(fd) = &job.pidfd {
            fd.kill();
        }
        let mut done = job.done.subscribe();
        // The supervisor finishes within moments of the kill; never hang a client on it.
        let _ = tokio::time::timeout(Duration::from_secs(30), done.wait_for(|d| *d)).await;
        Ok(job.status())
    }

    /// Waits until the job has finished and returns its final status.
    pub async fn wait(
        &self,
        caller: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<JobStatus, SandboxError> {
        let job = self.lookup(caller, is_admin, id)?;
        let mut done = job.done.subscribe();
        done.wait_for(|d| *d)
            .await
            .map_err(|e| SandboxError::Internal(e.to_string()))?;
        Ok(job.status())
    }

    /// All output from the job's start, then live output until it ends. Takes one of the
    /// caller's watcher slots (and one of the job's), held until the stream is dropped.
    pub fn watch(
        &self,
        caller: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<OutputStream, SandboxError> {
        let job = self.lookup(caller, is_admin, id)?;
        let slot = self.inner.jobs.reserve_watch(caller, &job.id)?;
        let stream = job.output.watch();
        Ok(Box::pin(stream.map(move |chunk| {
            let _held = &slot;
            chunk
        })))
    }

    /// The caller's jobs (every job for ADMIN), oldest first.
    pub fn list(&self, caller: &str, is_admin: bool) -> Vec<JobStatus> {
        let jobs: Vec<Arc<Job>> = self
            .inner
            .jobs
            .lock()
            .jobs
            .values()
            .filter(|j| is_admin || j.owner == caller)
            .cloned()
            .collect();
        let mut out: Vec<JobStatus> = jobs.iter().map(|j| j.status()).collect();
        out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        out
    }

    /// Runs a command to completion in the sandbox (the original's "any other line"),
    /// killing it after `time_limit`, and returns its output, cut at `oneshot_output_max`.
    pub async fn run_oneshot(
        &self,
        owner: &str,
        argv: Vec<String>,
        time_limit: Duration,
    ) -> Result<OneshotOutput, SandboxError> {
        let max = self.inner.config.oneshot_output_max;
        let id = self.start_job(owner, argv, time_limit, max).await?;
        // The reply is this connection's own, not a watcher of the job: no watcher slot.
        let job = self.lookup(owner, true, id.as_str())?;
        let output = job
            .output
            .watch()
            .fold(Vec::new(), |mut acc, b| async move {
                acc.extend_from_slice(&b);
                acc
            })
            .await;
        let status = self.wait(owner, true, id.as_str()).await?;
        Ok(OneshotOutput { status, output })
    }

    /// The configured one-shot time limit.
    pub fn oneshot_time_limit(&self) -> Duration {
        self.inner.config.oneshot_time_limit
    }
}

/// [`JobCgroup::discard`] off the async threads.
async fn discard_cgroup(cg: Arc<dyn JobCgroup>) {
    if let Err(e) = tokio::task::spawn_blocking(move || cg.discard()).await {
        tracing::warn!(error = %e, "job cgroup cleanup task failed");
    }
}

impl From<ChildExit> for ExitInfo {
    fn from(e: ChildExit) -> Self {
        match e {
            ChildExit::Exited(c) => ExitInfo::Code(c),
            ChildExit::Signaled(s) => ExitInfo::Signal(s),
        }
    }
}

/// Owns a running job until it ends: time limit, reaping, final stats, cgroup cleanup.
async fn supervise(
    inner: Arc<Inner>,
    job: Arc<Job>,
    slot: RunSlot,
    mut pump: tokio::sync::oneshot::Receiver<reader::ReaderResult>,
    time_limit: Duration,
    lease: Option<UidLease>,
) {
    let (Some(pidfd), Some(cg)) = (job.pidfd.clone(), job.cgroup.clone()) else {
        return;
    };
    let (mut timed_out, mut output_full, mut pump_done) = (false, false, false);
    // The pipe of a job whose output is full: kept open (unread) until the job is gone.
    let mut held_pipe = None;
    let deadline = tokio::time::sleep(time_limit);
    tokio::pin!(deadline);
    let exit = loop {
        tokio::select! {
            r = pidfd.wait() => break r,
            _ = &mut deadline => {
                timed_out = true;
                pidfd.kill();
                break pidfd.wait().await;
            }
            r = &mut pump, if !pump_done => {
                pump_done = true;
                if let Ok(Some(pipe)) = r {
                    held_pipe = Some(pipe);
                    output_full = true;
                    pidfd.kill();
                    break pidfd.wait().await;
                }
            }
        }
    }
    .map(ExitInfo::from);
    // The PID namespace dies with its init; sweep the cgroup anyway before accounting.
    let stats = {
        let cg = cg.clone();
        tokio::task::spawn_blocking(move || {
            cg.kill_all();
            cg.stats()
        })
        .await
        .unwrap_or_default()
    };
    drop(held_pipe);
    if !pump_done
        && tokio::time::timeout(Duration::from_secs(5), pump)
            .await
            .is_err()
    {
        tracing::warn!(job = %job.id, "job output still open after exit");
    }
    job.output.close();
    discard_cgroup(cg).await;
    // No process of the job is left: its uid may serve another job.
    drop(lease);

    // A job that exited on its own just before our kill landed keeps its own outcome.
    let killed = matches!(exit, Ok(ExitInfo::Signal(libc::SIGKILL)));
    let stop_requested = job.rec().stop_requested;
    let (state, reason) = match exit {
        _ if killed && stop_requested => (JobState::Stopped, Some("stopped by user".to_string())),
        _ if killed && timed_out => (JobState::Failed, Some("time limit exceeded".to_string())),
        _ if output_full => (JobState::Failed, Some("output limit reached".to_string())),
        Ok(ExitInfo::Code(0)) => (JobState::Completed, None),
        Ok(ExitInfo::Code(c)) => (JobState::Failed, Some(format!("exited with status {c}"))),
        Ok(ExitInfo::Signal(s)) if stats.oom_kills.unwrap_or(0) > 0 => (
            JobState::Failed,
            Some(format!("killed by signal {s}: out of memory")),
        ),
        Ok(ExitInfo::Signal(s)) => (JobState::Failed, Some(format!("killed by signal {s}"))),
        Err(ref e) => (JobState::Failed, Some(format!("wait failed: {e}"))),
    };
    {
        let mut r = job.rec();
        r.state = Some(state);
        r.exit = exit.ok();
        r.reason = reason;
        r.final_stats = Some(stats);
        r.finished_at = Some(SystemTime::now());
    }
    tracing::info!(job = %job.id, state = %state, "job finished");
    inner.jobs.retire(slot, &job.id);
    job.output.offer_spill();
    job.done.send_replace(true);
}
