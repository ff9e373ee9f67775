//! The sandbox child between `clone3` and `execve`, as named steps.
//!
//! Runs as pid 1 of the new PID namespace, a copy of the spawner thread only: every step uses
//! the allocation-free [`crate::sys::child`] calls on a [`ChildPlan`] built before the clone.
//! Order: join the cgroup (so nothing below runs unlimited), parent-death signal, wire stdio,
//! build the job's root filesystem, hostname, working directory, drop the capability bounding
//! set, install the seccomp filters, then report READY and wait for the command (a warm
//! sandbox waits here), and finally drop to the unprivileged uid/gid and exec.
//!
//! A failure is reported as `(stage, errno)` over the report pipe, then the child exits 126.

use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use crate::sys::child as sys;
use crate::sys::child::{CStrArray, ExecBuf};

use super::rootfs::RootPlan;
use super::seccomp::Filters;
use super::spawn::{Stage, WORKDIR_C};

/// Where a waiting sandbox keeps its report pipe and its command pipe.
pub const CHILD_REPORT_FD: RawFd = 3;
/// See [`CHILD_REPORT_FD`].
pub const CHILD_COMMAND_FD: RawFd = 4;
/// Report "set up, waiting for the command" (stage 0 is no failure stage).
pub const READY: [u8; 8] = [0; 8];
/// Report "command received, about to exec": tells a sandbox that died while waiting (EOF
/// before this) from one that exec'd (EOF after it).
pub const TAKEN: [u8; 8] = [0, 0, 0, 0, 1, 0, 0, 0];

/// Everything the child uses, prepared before `clone3`.
#[derive(Debug)]
pub struct ChildPlan<'a> {
    /// `cgroup.procs` files to write "0" into (empty when cloned straight into the cgroup).
    pub procs: Vec<CString>,
    /// The job's root filesystem.
    pub root: &'a RootPlan,
    /// Hostname of the UTS namespace.
    pub hostname: &'a [u8],
    /// The job's environment.
    pub envp: &'a CStrArray,
    /// Unprivileged ids to drop to.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Seccomp filters installed before the command is awaited.
    pub filters: &'a Filters,
}

/// The child's ends of its pipes, as raw numbers in its own descriptor table.
#[derive(Debug, Clone, Copy)]
pub struct ChildFds {
    /// Write end of the output pipe (stdout and stderr).
    pub out_w: RawFd,
    /// Write end of the report pipe.
    pub report_w: RawFd,
    /// Read end of the command pipe.
    pub command_r: RawFd,
    /// `/dev/null`, opened read-write (stdin).
    pub devnull: RawFd,
}

/// A failed step and its errno.
#[derive(Debug, Clone, Copy)]
struct Failed(Stage, i32);

fn at(stage: Stage) -> impl Fn(io::Error) -> Failed {
    move |e| Failed(stage, e.raw_os_error().unwrap_or(0))
}

/// Reports `(stage, errno)` to the parent and exits.
fn fail(report: RawFd, Failed(stage, errno): Failed) -> ! {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_le_bytes());
    msg[4..].copy_from_slice(&(errno as u32).to_le_bytes());
    sys::write_raw(report, &msg);
    sys::exit(126)
}

/// The child's whole life; never returns.
pub fn run(plan: &ChildPlan<'_>, cmd: &mut ExecBuf, fds: ChildFds) -> Infallible {
    if let Err(f) = join_cgroup(plan).and_then(|()| set_parent_death_signal()) {
        fail(fds.report_w, f)
    }
    let report = match wire_stdio(fds) {
        Ok(r) => r,
        Err((r, f)) => fail(r, f),
    };
    let setup = plan
        .root
        .enter()
        .map_err(|(stage, e)| at(stage)(e))
        .and_then(|()| set_hostname(plan))
        .and_then(|()| enter_workdir())
        .and_then(|()| drop_capability_bounding_set())
        .and_then(|()| install_seccomp(plan));
    if let Err(f) = setup {
        fail(report, f)
    }
    // Ready: wait for the command. EOF (the manager went away) or anything malformed ends the
    // sandbox quietly; nothing user-supplied has run yet.
    sys::write_raw(report, &READY);
    if !await_command(cmd) {
        sys::exit(0)
    }
    sys::write_raw(report, &TAKEN);
    if let Err(f) = drop_privileges(plan) {
        fail(report, f)
    }
    let e = cmd.exec(plan.envp);
    fail(report, at(Stage::Exec)(e))
}

/// Joins the job cgroup (cgroup v1, or v2 without `CLONE_INTO_CGROUP`).
fn join_cgroup(plan: &ChildPlan<'_>) -> Result<(), Failed> {
    for path in &plan.procs {
        sys::write_file(path, b"0").map_err(at(Stage::JoinCgroup))?;
    }
    Ok(())
}

/// A waiting sandbox must not outlive the spawner thread (set again after the uid change,
/// which clears it).
fn set_parent_death_signal() -> Result<(), Failed> {
    sys::set_parent_death_kill().map_err(at(Stage::Prctl))
}

/// stdin from /dev/null, stdout+stderr to the output pipe; the report and command pipes moved
/// to fixed numbers and everything else the service had open really closed (a waiting sandbox
/// must not hold its sockets or other jobs' pipes). Returns the report fd to use from now on.
fn wire_stdio(fds: ChildFds) -> Result<RawFd, (RawFd, Failed)> {
    let stdio = at(Stage::Stdio);
    let early = |e| (fds.report_w, stdio(e));
    sys::dup2(fds.devnull, 0).map_err(early)?;
    sys::dup2(fds.out_w, 1).map_err(early)?;
    sys::dup2(fds.out_w, 2).map_err(early)?;
    // Copies above the fixed numbers first, so that moving one cannot overwrite the other.
    let r = sys::dup_at_least(fds.report_w, 16).map_err(early)?;
    let c = sys::dup_at_least(fds.command_r, 16).map_err(|e| (r, stdio(e)))?;
    sys::dup3_cloexec(r, CHILD_REPORT_FD).map_err(|e| (r, stdio(e)))?;
    let report = CHILD_REPORT_FD;
    sys::dup3_cloexec(c, CHILD_COMMAND_FD).map_err(|e| (report, stdio(e)))?;
    sys::close_from(CHILD_COMMAND_FD + 1).map_err(|e| (report, stdio(e)))?;
    sys::reset_signals();
    Ok(report)
}

fn set_hostname(plan: &ChildPlan<'_>) -> Result<(), Failed> {
    sys::sethostname(plan.hostname).map_err(at(Stage::Hostname))
}

fn enter_workdir() -> Result<(), Failed> {
    sys::chdir(WORKDIR_C).map_err(at(Stage::Chdir))
}

/// Defence in depth: even a setuid binary could not regain capabilities.
fn drop_capability_bounding_set() -> Result<(), Failed> {
    sys::drop_bounding_capabilities();
    Ok(())
}

/// Installs the filters while still root, before the command is known; nothing the child does
/// afterwards (read, write, close, set*id, prctl, execve) is filtered.
fn install_seccomp(plan: &ChildPlan<'_>) -> Result<(), Failed> {
    plan.filters.install().map_err(at(Stage::Seccomp))
}

/// Reads `len` (u32 LE) and then the command into `cmd`; false on EOF or anything malformed.
fn await_command(cmd: &mut ExecBuf) -> bool {
    let mut len_le = [0u8; 4];
    if !sys::read_exact(CHILD_COMMAND_FD, &mut len_le) {
        return false;
    }
    let len = u32::from_le_bytes(len_le) as usize;
    let buf = cmd.buffer();
    if len == 0 || len > buf.len() || !sys::read_exact(CHILD_COMMAND_FD, &mut buf[..len]) {
        return false;
    }
    sys::close(CHILD_COMMAND_FD);
    cmd.parse(len)
}

/// The unprivileged uid/gid, `no_new_privs`, and the parent-death signal again.
fn drop_privileges(plan: &ChildPlan<'_>) -> Result<(), Failed> {
    sys::drop_to(plan.uid, plan.gid).map_err(at(Stage::DropPrivileges))?;
    sys::set_no_new_privs().map_err(at(Stage::Prctl))?;
    sys::set_parent_death_kill().map_err(at(Stage::Prctl))
}
