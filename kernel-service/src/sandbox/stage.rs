//! The named steps of sandbox setup, as a child that fails reports them: the child
//! ([`super::child`]) and the root it builds ([`super::rootfs`]) name the step that failed,
//! the spawner ([`super::pool`]) reads it back from the report pipe into a
//! [`super::SpawnError`].

use std::fmt;

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
