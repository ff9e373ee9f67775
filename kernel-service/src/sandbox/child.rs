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

use super::rootfs::{RootPlan, WORKDIR_C};
use super::seccomp::Filters;
use super::stage::Stage;

/// Where a waiting sandbox keeps its report pipe and its command pipe.
pub(super) const CHILD_REPORT_FD: RawFd = 3;
/// See [`CHILD_REPORT_FD`].
pub(super) const CHILD_COMMAND_FD: RawFd = 4;
/// The job's resource limits, soft = hard, set explicitly rather than inherited from the
/// service (which raises its own open-file limit to serve many connections). Several count per
/// uid across the whole host (pending signals, POSIX message-queue bytes): a job's limit bounds
/// how much of its uid's share it can take.
const JOB_RLIMITS: [(libc::__rlimit_resource_t, u64); 5] = [
    (libc::RLIMIT_NOFILE, 1024),
    (libc::RLIMIT_CORE, 0),
    (libc::RLIMIT_SIGPENDING, 1024),
    (libc::RLIMIT_MSGQUEUE, 64 * 1024),
    (libc::RLIMIT_MEMLOCK, 64 * 1024),
];

/// Report "set up, waiting for the command" (stage 0 is no failure stage).
pub(super) const READY: [u8; 8] = [0; 8];
/// Report "command received, about to exec": tells a sandbox that died while waiting (EOF
/// before this) from one that exec'd (EOF after it).
pub(super) const TAKEN: [u8; 8] = [0, 0, 0, 0, 1, 0, 0, 0];

/// Everything the child uses, prepared before `clone3`.
#[derive(Debug)]
pub(super) struct ChildPlan<'a> {
    /// `cgroup.procs` files to write "0" into (empty when cloned straight into the cgroup).
    pub procs: Vec<CString>,
    /// The job's root filesystem.
    pub root: &'a RootPlan,
    /// Hostname of the UTS namespace.
    pub hostname: &'a [u8],
    /// The job's environment.
    pub envp: &'a CStrArray,
    /// Seccomp filters installed before the command is awaited.
    pub filters: &'a Filters,
}

/// The child's ends of its pipes, as raw numbers in its own descriptor table.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChildFds {
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
pub(super) fn run(plan: &ChildPlan<'_>, cmd: &mut ExecBuf, fds: ChildFds) -> Infallible {
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
    let Some(ids) = await_command(cmd) else {
        sys::exit(0)
    };
    sys::write_raw(report, &TAKEN);
    if let Err(f) = set_rlimits().and_then(|()| drop_privileges(ids)) {
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

/// Reads the job's uid and gid (u32 LE each, never 0), `len` (u32 LE) and then the command
/// into `cmd`; `None` on EOF or anything malformed.
fn await_command(cmd: &mut ExecBuf) -> Option<(u32, u32)> {
    let mut ids_le = [0u8; 8];
    if !sys::read_exact(CHILD_COMMAND_FD, &mut ids_le) {
        return None;
    }
    let uid = u32::from_le_bytes([ids_le[0], ids_le[1], ids_le[2], ids_le[3]]);
    let gid = u32::from_le_bytes([ids_le[4], ids_le[5], ids_le[6], ids_le[7]]);
    if uid == 0 || gid == 0 {
        return None;
    }
    read_command(cmd).then_some((uid, gid))
}

/// Reads `len` (u32 LE) and then the command into `cmd`; false on EOF or anything malformed.
fn read_command(cmd: &mut ExecBuf) -> bool {
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

/// The job's explicit resource limits ([`JOB_RLIMITS`]).
fn set_rlimits() -> Result<(), Failed> {
    for (resource, value) in JOB_RLIMITS {
        sys::set_rlimit(resource, value).map_err(at(Stage::Rlimits))?;
    }
    Ok(())
}

/// The job's unprivileged uid/gid, `no_new_privs`, and the parent-death signal again.
fn drop_privileges((uid, gid): (u32, u32)) -> Result<(), Failed> {
    sys::drop_to(uid, gid).map_err(at(Stage::DropPrivileges))?;
    sys::set_no_new_privs().map_err(at(Stage::Prctl))?;
    sys::set_parent_death_kill().map_err(at(Stage::Prctl))
}
