//! Sandboxed jobs: namespaces, cgroup limits, lifecycle and output streaming.
//!
//! [`JobManager`] is the broker-facing API. Each job is cloned straight into new PID, mount,
//! network, UTS and IPC namespaces, joins its own cgroup before its first instruction, sees the
//! host filesystem read-only (nosuid) with a private tmpfs on `/tmp` as its working directory,
//! a fresh `/proc`, hostname `sandbox`, only a loopback interface that is down, and runs as an
//! unprivileged uid/gid with `no_new_privs` and a minimal environment.
//!
//! The command itself is pid 1 of its namespace: when it exits, the kernel kills everything
//! else in the job, and stopping a job is one SIGKILL through its pidfd. Background children
//! it never reaps stay zombies (counted against `pids.max`) until the job ends.
//!
//! To keep the start of a job short, the spawner keeps [`SandboxConfig::prewarm`] sandboxes
//! set up ahead of demand (cgroup made and joined, namespaces, mounts, hostname), each waiting
//! for its command; a job start sends the command and the sandbox drops privileges and execs
//! it (see [`spawn`]). Job cgroups left behind by a killed service are swept at start-up.

pub mod cgroup;
pub mod job;
pub mod output;
pub mod spawn;
pub mod spec;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

pub use cgroup::{CgroupError, CgroupVersion, JobCgroup, Layout};
pub use job::{ExitInfo, JobId, JobState, JobStats, JobStatus};
pub use output::{forward, OutputLog, OutputStream};
pub use spawn::SpawnError;
pub use spec::{Limits, SandboxConfig};

use spawn::{Spawner, Started, Template};

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
    /// The concurrency limit is reached.
    #[error("too many running jobs (limit {0})")]
    TooManyJobs(usize),
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
    /// Everything it wrote to stdout and stderr (bounded by `output_max`).
    pub output: Vec<u8>,
}

#[derive(Debug, Default)]
struct Record {
    state: Option<JobState>,
    exit: Option<ExitInfo>,
    reason: Option<String>,
    final_stats: Option<JobStats>,
    finished_at: Option<SystemTime>,
    stop_requested: bool,
}

#[derive(Debug)]
struct Job {
    id: JobId,
    owner: String,
    argv: Vec<String>,
    started_at: SystemTime,
    output: Arc<OutputLog>,
    cgroup: Option<Arc<dyn JobCgroup>>,
    pidfd: Option<Arc<AsyncFd<OwnedFd>>>,
    rec: Mutex<Record>,
    done: watch::Sender<bool>,
}

impl Job {
    fn rec(&self) -> MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self) -> JobStatus {
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
            state,
            exit: r.exit,
            reason: r.reason.clone(),
            stats,
            started_at: self.started_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    jobs: HashMap<JobId, Arc<Job>>,
    finished: VecDeque<JobId>,
    running: usize,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    layout: Layout,
    spawner: Spawner,
    table: Mutex<Table>,
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves a job from the running count to the bounded list of finished jobs.
    fn retire(&self, id: &JobId) {
        let mut t = self.table();
        t.running = t.running.saturating_sub(1);
        t.finished.push_back(id.clone());
        while t.finished.len() > self.config.max_finished {
            if let Some(old) = t.finished.pop_front() {
                t.jobs.remove(&old);
            }
        }
    }
}

/// Releases a reserved running slot unless the job took it over.
struct Slot<'a> {
    inner: &'a Inner,
    armed: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut t = self.inner.table();
            t.running = t.running.saturating_sub(1);
        }
    }
}

/// The broker-facing job API; cheap to clone.
#[derive(Debug, Clone)]
pub struct JobManager {
    inner: Arc<Inner>,
}

impl JobManager {
    /// Validates `config`, detects the cgroup layout and starts the spawner thread.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        config.validate()?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(SandboxError::Config(
                "the sandbox needs root to create namespaces and cgroups".into(),
            ));
        }
        let layout = cgroup::detect()?;
        let spawner = Spawner::new(Template {
            layout: layout.clone(),
            cgroup_parent: config.cgroup_parent.clone(),
            limits: config.limits.clone(),
            uid: config.uid,
            gid: config.gid,
            hostname: config.hostname.clone(),
            workdir_bytes: config.workdir_bytes,
            prewarm: config.prewarm,
        })
        .map_err(|e| SandboxError::Internal(e.to_string()))?;
        tracing::info!(cgroup = ?layout.version(), "sandbox ready");
        Ok(JobManager {
            inner: Arc::new(Inner {
                config,
                layout,
                spawner,
                table: Mutex::new(Table::default()),
            }),
        })
    }

    /// The cgroup API in use on this machine.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.inner.layout.version()
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
        spec::validate_request(owner, &argv)?;
        let inner = &self.inner;
        let cfg = &inner.config;
        {
            let mut t = inner.table();
            if t.running >= cfg.max_running {
                return Err(SandboxError::TooManyJobs(cfg.max_running));
            }
            t.running += 1;
        }
        let mut slot = Slot { inner, armed: true };

        let output = OutputLog::new(cfg.output_memory_cap, cfg.output_max, cfg.spill_dir.clone());
        let started_at = SystemTime::now();
        // The cgroup (limits applied) and the set-up sandbox usually exist already: the
        // spawner keeps `prewarm` of them ready (see `spawn`).
        let Started {
            id,
            cgroup: cg,
            result,
        } = inner.spawner.start(argv.clone()).await?;
        let spawned = match result {
            Ok(s) => s,
            Err(SpawnError::Exec { program, source }) => {
                // The user's command is at fault: record a FAILED job, as a start failure.
                remove_cgroup(cg).await;
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
                inner.table().jobs.insert(id.clone(), job);
                slot.armed = false;
                inner.retire(&id);
                return Ok(id);
            }
            Err(e) => {
                remove_cgroup(cg).await;
                return Err(e.into());
            }
        };

        // SAFETY: the OwnedFd is moved into the AsyncFd and stays open for its whole life.
        let registered = unsafe {
            AsyncFd::register_with_interest(spawned.pidfd, tokio::io::Interest::READABLE)
        };
        let pidfd = match registered {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                let (fd, e) = e.into_parts();
                // Cannot supervise it: kill it rather than leave it unmanaged.
                spawn::kill(fd.as_fd());
                cg.kill_all();
                remove_cgroup(cg).await;
                return Err(SandboxError::Internal(e.to_string()));
            }
        };
        let pump = {
            let log = output.clone();
            let src = spawned.output;
            tokio::task::spawn_blocking(move || output::pump(src, &log))
        };
        let job = Arc::new(Job {
            id: id.clone(),
            owner: owner.to_string(),
            argv,
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
        inner.table().jobs.insert(id.clone(), job.clone());
        slot.armed = false;
        tracing::info!(job = %id, owner, pid = spawned.pid, "job started");
        tokio::spawn(supervise(self.inner.clone(), job, pump, time_limit));
        Ok(id)
    }

    fn lookup(&self, caller: &str, is_admin: bool, id: &str) -> Result<Arc<Job>, SandboxError> {
        let not_found = || SandboxError::NotFound(id.chars().take(64).collect());
        let jid = JobId::parse(id).ok_or_else(not_found)?;
        let job = self
            .inner
            .table()
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
            spawn::kill(fd.get_ref().as_fd());
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

    /// All output from the job's start, then live output until it ends.
    pub fn watch(
        &self,
        caller: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<OutputStream, SandboxError> {
        Ok(self.lookup(caller, is_admin, id)?.output.watch())
    }

    /// The caller's jobs (every job for ADMIN), oldest first.
    pub fn list(&self, caller: &str, is_admin: bool) -> Vec<JobStatus> {
        let jobs: Vec<Arc<Job>> = self
            .inner
            .table()
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
    /// killing it after `time_limit`, and returns its whole output.
    pub async fn run_oneshot(
        &self,
        owner: &str,
        argv: Vec<String>,
        time_limit: Duration,
    ) -> Result<OneshotOutput, SandboxError> {
        let id = self.start_with_limit(owner, argv, time_limit).await?;
        let stream = self.watch(owner, true, id.as_str())?;
        let output = stream
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

async fn remove_cgroup(cg: Arc<dyn JobCgroup>) {
    let res = tokio::task::spawn_blocking(move || {
        cg.kill_all();
        cg.remove()
    })
    .await;
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "job cgroup cleanup failed"),
        Err(e) => tracing::warn!(error = %e, "job cgroup cleanup task failed"),
    }
}

/// Owns a running job until it ends: time limit, reaping, final stats, cgroup cleanup.
async fn supervise(
    inner: Arc<Inner>,
    job: Arc<Job>,
    pump: tokio::task::JoinHandle<()>,
    time_limit: Duration,
) {
    let (Some(pidfd), Some(cg)) = (job.pidfd.clone(), job.cgroup.clone()) else {
        return;
    };
    let mut timed_out = false;
    let exit = tokio::select! {
        r = spawn::wait_exit(&pidfd) => r,
        _ = tokio::time::sleep(time_limit) => {
            timed_out = true;
            spawn::kill(pidfd.get_ref().as_fd());
            spawn::wait_exit(&pidfd).await
        }
    };
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
    if tokio::time::timeout(Duration::from_secs(5), pump)
        .await
        .is_err()
    {
        tracing::warn!(job = %job.id, "job output still open after exit");
    }
    job.output.close();
    remove_cgroup(cg).await;

    // A job that exited on its own just before our kill landed keeps its own outcome.
    let killed = matches!(exit, Ok(ExitInfo::Signal(libc::SIGKILL)));
    let stop_requested = job.rec().stop_requested;
    let (state, reason) = match exit {
        _ if killed && stop_requested => (JobState::Stopped, Some("stopped by user".to_string())),
        _ if killed && timed_out => (JobState::Failed, Some("time limit exceeded".to_string())),
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
    inner.retire(&job.id);
    job.done.send_replace(true);
}
