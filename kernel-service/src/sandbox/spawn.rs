//! Starting jobs: the spawner thread's API, what every sandbox shares, and how a start fails.
//!
//! Every sandbox is cloned (see [`crate::sys::process::clone_sandbox`]) straight into fresh
//! PID/mount/net/UTS/IPC namespaces and its job cgroup, and sets itself up in [`super::child`]
//! before the command's first instruction: minimal read-only root, hostname, no capabilities,
//! seccomp filters, then the unprivileged uid/gid, `no_new_privs` and `execve`. A failure is
//! reported as `(stage, errno)` over a close-on-exec pipe, like `std::process::Command` does.
//!
//! Clones are made from one long-lived thread so that `PR_SET_PDEATHSIG` (bound to the creating
//! thread) fires only when the job manager goes away, never when a worker thread retires. That
//! thread keeps [`Template::prewarm`] warm sandboxes ready ahead of demand (see [`super::pool`]).

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::cgroup::{JobCgroup, Layout};
use super::job::JobId;
use super::pool;
use super::rootfs::RootPlan;
use super::seccomp::Filters;
use super::spec::Limits;
use super::uids::JobIds;
use super::SandboxError;

/// `PATH` inside the sandbox; also used to resolve bare command names before cloning.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
/// The job's private writable directory (a tmpfs) and its working directory.
pub const WORKDIR: &str = "/tmp";
/// [`WORKDIR`] for the child's raw calls.
pub(super) const WORKDIR_C: &std::ffi::CStr = c"/tmp";

/// The step of sandbox setup that failed inside the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// Writing to the job cgroup's `cgroup.procs`.
    JoinCgroup = 1,
    /// Wiring stdin to /dev/null and stdout/stderr to the output pipe.
    Stdio,
    /// Making the inherited mount tree private.
    MountPrivate,
    /// Building the job's tmpfs root and its bind mounts.
    MountRoot,
    /// Switching to the new root and detaching the host's.
    PivotRoot,
    /// Making the new root read-only and nosuid.
    MountReadOnly,
    /// Mounting the private tmpfs working directory.
    MountWorkdir,
    /// Mounting /proc for the new PID namespace.
    MountProc,
    /// Setting the hostname.
    Hostname,
    /// Entering the working directory.
    Chdir,
    /// Installing the seccomp filters.
    Seccomp,
    /// Dropping supplementary groups, gid and uid.
    DropPrivileges,
    /// Setting no_new_privs and the parent-death signal.
    Prctl,
    /// Setting the job's resource limits.
    Rlimits,
    /// Replacing the process image.
    Exec,
}

impl Stage {
    /// The stage a child reported, if it is one.
    pub fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        [
            JoinCgroup,
            Stdio,
            MountPrivate,
            MountRoot,
            PivotRoot,
            MountReadOnly,
            MountWorkdir,
            MountProc,
            Hostname,
            Chdir,
            Seccomp,
            DropPrivileges,
            Prctl,
            Rlimits,
            Exec,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Resources for the child (pipes, strings, clone) could not be prepared.
    #[error("preparing the sandbox failed: {0}")]
    Prepare(#[source] io::Error),
    /// A sandbox setup step failed in the child (an infrastructure problem).
    #[error("sandbox setup failed at {stage}: {source}")]
    Setup {
        /// The failed step.
        stage: Stage,
        /// The OS error.
        source: io::Error,
    },
    /// The command itself could not be executed (a user problem: not found, not executable).
    #[error("cannot execute {program:?}: {source}")]
    Exec {
        /// The program as requested.
        program: String,
        /// The OS error.
        source: io::Error,
    },
}

/// What every job of one manager shares; fixed when the manager starts.
#[derive(Debug, Clone)]
pub struct Template {
    /// Where job cgroups are made.
    pub layout: Layout,
    /// Directory under the service's own cgroup that holds the job cgroups.
    pub cgroup_parent: String,
    /// Limits written into every job cgroup.
    pub limits: Limits,
    /// Unprivileged uid (checked non-zero by the config).
    pub uid: u32,
    /// Unprivileged gid.
    pub gid: u32,
    /// Hostname for the UTS namespace.
    pub hostname: String,
    /// The job's root filesystem (its `/tmp` tmpfs options included).
    pub root: RootPlan,
    /// The seccomp filters every job runs under.
    pub filters: Filters,
    /// Warm sandboxes kept ready ahead of demand (0: each is made when a job starts).
    pub prewarm: usize,
}

impl Template {
    /// tmpfs options of the job's private `/tmp`.
    pub fn workdir_opts(workdir_bytes: u64, uid: u32, gid: u32) -> String {
        format!("size={workdir_bytes},nr_inodes=16384,mode=0700,uid={uid},gid={gid}")
    }

    /// The working directory's tmpfs options when the job's uid is known only at exec.
    pub fn shared_workdir_opts(workdir_bytes: u64) -> String {
        format!("size={workdir_bytes},nr_inodes=16384,mode=1777")
    }

    /// The job's environment.
    pub fn environment(&self) -> io::Result<Vec<CString>> {
        [
            format!("PATH={SANDBOX_PATH}"),
            format!("HOME={WORKDIR}"),
            format!("TMPDIR={WORKDIR}"),
            "LANG=C".to_string(),
        ]
        .iter()
        .map(|e| CString::new(e.as_str()).map_err(io::Error::other))
        .collect()
    }
}

/// A started job process: its host pid, a pidfd, and the read end of its output pipe.
#[derive(Debug)]
pub struct Spawned {
    /// Pid in the service's PID namespace (the job sees itself as 1).
    pub pid: i32,
    /// Race-free handle for signalling and waiting.
    pub pidfd: OwnedFd,
    /// stdout+stderr of the whole job.
    pub output: File,
}

/// Outcome of a job start: the job's id and cgroup (to be removed by the caller if the start
/// failed) and the process, or why there is none.
#[derive(Debug)]
pub struct Started {
    /// The job id (also the cgroup's directory name).
    pub id: JobId,
    /// The job's cgroup.
    pub cgroup: Arc<dyn JobCgroup>,
    /// The running process, or the failure.
    pub result: Result<Spawned, SpawnError>,
}

/// Finds a bare command name on the sandbox PATH (the job sees the same directories).
pub fn resolve_program(name: &str) -> String {
    if name.contains('/') {
        return name.to_string();
    }
    for dir in SANDBOX_PATH.split(':') {
        let p = Path::new(dir).join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    name.to_string()
}

/// A job start handed to the spawner thread.
pub(super) type Request = (
    Vec<String>,
    JobIds,
    oneshot::Sender<Result<Started, SandboxError>>,
);

/// Owner of the cloning thread; dropping it (with the manager) lets its jobs receive SIGKILL
/// and ends the warm sandboxes.
#[derive(Debug)]
pub struct Spawner {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    /// Starts the cloning thread (which starts warming sandboxes right away).
    pub fn new(template: Template) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("leotest-sandbox-spawner".into())
            .spawn(move || pool::run(template, rx))?;
        Ok(Spawner {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Creates the job's cgroup and sandboxed process; resolves once it has exec'd (or failed
    /// to). `Err` means there is no cgroup to clean up.
    pub async fn start(&self, argv: Vec<String>, ids: JobIds) -> Result<Started, SandboxError> {
        let gone = || SandboxError::Internal("spawner thread gone".into());
        let (reply, rx) = oneshot::channel();
        {
            let tx = self.tx.lock().map_err(|_| gone())?;
            tx.as_ref()
                .ok_or_else(gone)?
                .send((argv, ids, reply))
                .map_err(|_| gone())?;
        }
        rx.await.map_err(|_| gone())?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // Closing the channel ends the loop; joining makes sure the warm sandboxes and their
        // cgroups are gone before the manager is.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}
