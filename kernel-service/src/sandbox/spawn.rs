//! Starting jobs: what every sandbox shares ([`Template`]), what a start gives back
//! ([`Started`]) and how it fails ([`SpawnError`]).
//!
//! Every sandbox is cloned (see [`crate::sys::process::clone_sandbox`]) straight into fresh
//! PID/mount/net/UTS/IPC namespaces and its job cgroup, and sets itself up in [`super::child`]
//! before the command's first instruction: minimal read-only root, hostname, no capabilities,
//! seccomp filters, then the unprivileged uid/gid, `no_new_privs` and `execve`. A failure is
//! reported as `(stage, errno)` over a close-on-exec pipe, like `std::process::Command` does
//! (the steps: [`super::stage::Stage`]).
//!
//! Clones are made from one long-lived thread so that `PR_SET_PDEATHSIG` (bound to the creating
//! thread) fires only when the job manager goes away, never when a worker thread retires. That
//! thread (owned by [`super::pool::Spawner`]) keeps [`Template::prewarm`] warm sandboxes ready
//! ahead of demand.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use super::cgroup::{JobCgroup, Layout};
use super::job::JobId;
use super::rootfs::{RootPlan, WORKDIR};
use super::seccomp::Filters;
use super::spec::Limits;
use super::stage::Stage;

/// `PATH` inside the sandbox; also used to resolve bare command names before cloning.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

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
