//! Process creation: clone3 into fresh PID/mount/net/UTS/IPC namespaces, join the job cgroup,
//! lock down the filesystem and credentials, then exec — all before the command's first
//! instruction.
//!
//! Everything the child needs is prepared (as C strings and raw fds) before `clone3`; the child
//! then runs only raw system calls (async-signal-safe) until `execve`, and reports a failure as
//! `(stage, errno)` over a close-on-exec pipe, like `std::process::Command` does.
//!
//! Clones are made from one long-lived thread so that `PR_SET_PDEATHSIG` (bound to the creating
//! thread) fires only when the job manager goes away, never when a worker thread retires.
//!
//! Pre-started sandboxes: on cgroup v1 the first write to a `cgroup.procs` file waits for an
//! RCU grace period (the cgroup core takes `cgroup_threadgroup_rwsem` for writing), which was
//! most of a job's start time (4–11 ms of it). So the spawner thread keeps `prewarm` sandboxes
//! ready ahead of demand: each is a child that has already been cloned into its namespaces,
//! joined its own freshly made cgroup (limits applied), wired its stdio, made its mounts, set its
//! hostname and dropped its capability bounding set, and now waits — still as root, running
//! nothing but our own code — for a command on a private pipe. A job start hands one over:
//! it sends the resolved program and argv, and the child drops to the unprivileged uid/gid,
//! sets `no_new_privs` and execs. The isolation is the same as for a sandbox made on demand
//! (it is the same code, in the same order); only the waiting point moved. A waiting sandbox
//! keeps no descriptor of the service except its own three pipes (everything else is closed,
//! not just marked close-on-exec), dies with the spawner thread (parent-death signal) or when
//! its command pipe closes, and is killed and its cgroup removed when the manager is dropped.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use libc::c_char;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use super::cgroup::{JobCgroup, Layout};
use super::job::{ExitInfo, JobId};
use super::spec::{Limits, MAX_ARGS, MAX_ARG_LEN};
use super::SandboxError;

/// `PATH` inside the sandbox; also used to resolve bare command names before cloning.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
/// The job's private writable directory (a tmpfs) and its working directory.
pub const WORKDIR: &str = "/tmp";

const CLONE_PIDFD: u64 = 0x0000_1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `struct clone_args` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

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
    /// Remounting the whole tree read-only and nosuid.
    MountReadOnly,
    /// Mounting the private tmpfs working directory.
    MountWorkdir,
    /// Mounting /proc for the new PID namespace.
    MountProc,
    /// Setting the hostname.
    Hostname,
    /// Entering the working directory.
    Chdir,
    /// Dropping supplementary groups, gid and uid.
    DropPrivileges,
    /// Setting no_new_privs and the parent-death signal.
    Prctl,
    /// Replacing the process image.
    Exec,
}

impl Stage {
    fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        [
            JoinCgroup,
            Stdio,
            MountPrivate,
            MountReadOnly,
            MountWorkdir,
            MountProc,
            Hostname,
            Chdir,
            DropPrivileges,
            Prctl,
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
    /// Size of the tmpfs working directory.
    pub workdir_bytes: u64,
    /// Sandboxes kept ready ahead of demand (0: each is made when a job starts).
    pub prewarm: usize,
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

/// Everything the child uses before the command is known, prepared before `clone3`.
struct Prepared {
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    procs: Vec<CString>,
    tmpfs_opts: CString,
    hostname: Vec<u8>,
    uid: u32,
    gid: u32,
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
}

/// Finds a bare command name on the sandbox PATH (the job sees the same, read-only, tree).
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

impl Prepared {
    fn new(t: &Template, procs_files: &[PathBuf]) -> io::Result<Self> {
        let envp = [
            format!("PATH={SANDBOX_PATH}"),
            format!("HOME={WORKDIR}"),
            format!("TMPDIR={WORKDIR}"),
            "LANG=C".to_string(),
        ]
        .iter()
        .map(|e| cstring(e))
        .collect::<io::Result<Vec<_>>>()?;
        let envp_ptrs = envp
            .iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect::<Vec<_>>();
        let procs = procs_files
            .iter()
            .map(|p| cstring(&p.to_string_lossy()))
            .collect::<io::Result<Vec<_>>>()?;
        let tmpfs_opts = cstring(&format!(
            "size={},nr_inodes=16384,mode=0700,uid={},gid={}",
            t.workdir_bytes, t.uid, t.gid
        ))?;
        Ok(Prepared {
            envp_ptrs,
            _envp: envp,
            procs,
            tmpfs_opts,
            hostname: t.hostname.as_bytes().to_vec(),
            uid: t.uid,
            gid: t.gid,
        })
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds which we immediately take ownership of.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Largest command message: the resolved program, then every argument, each NUL-terminated.
const MAX_REQ: usize = (MAX_ARGS + 2) * (MAX_ARG_LEN + 1) + 256;
/// Where a waiting sandbox keeps its report pipe and its command pipe.
const CHILD_ERR_FD: RawFd = 3;
const CHILD_CTL_FD: RawFd = 4;
/// Report "set up, waiting for the command" (stage 0 is no failure stage).
const READY: [u8; 8] = [0; 8];
/// Report "command received, about to exec": tells a sandbox that died while waiting (EOF
/// before this) from one that exec'd (EOF after it).
const TAKEN: [u8; 8] = [0, 0, 0, 0, 1, 0, 0, 0];

/// Reports `(stage, errno)` to the parent and exits; only raw syscalls (we are post-clone).
unsafe fn child_fail(err_w: RawFd, stage: Stage) -> ! {
    let errno = *libc::__errno_location();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_le_bytes());
    msg[4..].copy_from_slice(&(errno as u32).to_le_bytes());
    libc::write(err_w, msg.as_ptr().cast(), msg.len());
    libc::_exit(126)
}

/// Reads exactly `len` bytes (raw syscalls); false on EOF or error.
unsafe fn child_read_exact(fd: RawFd, buf: *mut u8, len: usize) -> bool {
    let mut got = 0usize;
    while got < len {
        let n = libc::read(fd, buf.add(got).cast(), len - got);
        if n > 0 {
            got += n as usize;
        } else if n < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        } else {
            return false;
        }
    }
    true
}

/// Pre-allocated space the child fills with the command (it may not allocate after clone).
struct CommandBuf {
    bytes: Vec<u8>,
    ptrs: Vec<*const c_char>,
}

impl CommandBuf {
    fn new() -> Self {
        CommandBuf {
            // calloc-backed: the untouched pages cost nothing until the child writes them.
            bytes: vec![0u8; MAX_REQ],
            ptrs: vec![std::ptr::null(); MAX_ARGS + 2],
        }
    }
}

/// The child side between clone3 and execve. Runs as pid 1 of the new PID namespace.
///
/// Sets up everything that does not depend on the command, reports READY, waits for the
/// command on `ctl_r`, then drops privileges and execs it.
unsafe fn child_main(
    p: &Prepared,
    cmd: &mut CommandBuf,
    out_w: RawFd,
    err_w: RawFd,
    ctl_r: RawFd,
    devnull: RawFd,
) -> ! {
    macro_rules! check {
        ($fd:expr, $stage:expr, $call:expr) => {
            if ($call) < 0 {
                child_fail($fd, $stage)
            }
        };
    }
    // The cgroup comes first so that nothing below runs unlimited.
    for path in &p.procs {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        check!(err_w, Stage::JoinCgroup, fd);
        check!(
            err_w,
            Stage::JoinCgroup,
            libc::write(fd, c"0".as_ptr().cast(), 1)
        );
        libc::close(fd);
    }
    // A waiting sandbox must not outlive the spawner thread (set again after the uid change,
    // which clears it).
    check!(
        err_w,
        Stage::Prctl,
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0
        )
    );

    check!(err_w, Stage::Stdio, libc::dup2(devnull, 0));
    check!(err_w, Stage::Stdio, libc::dup2(out_w, 1));
    check!(err_w, Stage::Stdio, libc::dup2(out_w, 2));
    // Keep the report and command pipes at fixed numbers and really close everything else the
    // service had open: a waiting sandbox must not hold its sockets or other jobs' pipes.
    let e = libc::fcntl(err_w, libc::F_DUPFD_CLOEXEC, 16);
    check!(err_w, Stage::Stdio, e);
    let c = libc::fcntl(ctl_r, libc::F_DUPFD_CLOEXEC, 16);
    check!(e, Stage::Stdio, c);
    check!(
        e,
        Stage::Stdio,
        libc::dup3(e, CHILD_ERR_FD, libc::O_CLOEXEC)
    );
    let err = CHILD_ERR_FD;
    check!(
        err,
        Stage::Stdio,
        libc::dup3(c, CHILD_CTL_FD, libc::O_CLOEXEC)
    );
    check!(
        err,
        Stage::Stdio,
        libc::syscall(
            libc::SYS_close_range,
            (CHILD_CTL_FD + 1) as u32,
            u32::MAX,
            0u32
        )
    );
    // Rust ignores SIGPIPE and the runtime may block signals: give the job the defaults.
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);

    check!(
        err,
        Stage::MountPrivate,
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null()
        )
    );
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    check!(
        err,
        Stage::MountReadOnly,
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>()
        )
    );
    check!(
        err,
        Stage::MountWorkdir,
        libc::mount(
            c"tmpfs".as_ptr(),
            c"/tmp".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            p.tmpfs_opts.as_ptr().cast()
        )
    );
    check!(
        err,
        Stage::MountProc,
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null()
        )
    );
    check!(
        err,
        Stage::Hostname,
        libc::sethostname(p.hostname.as_ptr().cast(), p.hostname.len())
    );
    check!(err, Stage::Chdir, libc::chdir(c"/tmp".as_ptr()));

    // Defence in depth: even a setuid binary could not regain capabilities (EINVAL past the
    // last capability is expected and ignored).
    for cap in 0..64 as libc::c_ulong {
        libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        0,
        0,
    );

    // Ready: wait for the command. EOF (the manager went away) or anything malformed ends the
    // sandbox quietly; nothing user-supplied has run yet.
    libc::write(err, READY.as_ptr().cast(), READY.len());
    let mut len_le = [0u8; 4];
    if !child_read_exact(CHILD_CTL_FD, len_le.as_mut_ptr(), 4) {
        libc::_exit(0);
    }
    let len = u32::from_le_bytes(len_le) as usize;
    let buf = cmd.bytes.as_mut_ptr();
    if len == 0 || len > cmd.bytes.len() || !child_read_exact(CHILD_CTL_FD, buf, len) {
        libc::_exit(0);
    }
    libc::close(CHILD_CTL_FD);
    if *buf.add(len - 1) != 0 {
        libc::_exit(0);
    }
    libc::write(err, TAKEN.as_ptr().cast(), TAKEN.len());
    // program\0arg0\0arg1\0...: the first string is what to exec, the rest is argv.
    let program = buf as *const c_char;
    let mut start = 0usize;
    while *buf.add(start) != 0 {
        start += 1;
    }
    start += 1;
    let ptrs = cmd.ptrs.as_mut_ptr();
    let max_args = cmd.ptrs.len() - 1;
    let mut n = 0usize;
    while start < len {
        if n == max_args {
            libc::_exit(0);
        }
        *ptrs.add(n) = buf.add(start) as *const c_char;
        n += 1;
        while *buf.add(start) != 0 {
            start += 1;
        }
        start += 1;
    }
    *ptrs.add(n) = std::ptr::null();

    // Raw syscalls on purpose: glibc's set*id/setgroups wrappers broadcast the change to every
    // thread of the parent (which do not exist here) and would wait for them forever.
    check!(
        err,
        Stage::DropPrivileges,
        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
    );
    check!(
        err,
        Stage::DropPrivileges,
        libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid)
    );
    check!(
        err,
        Stage::DropPrivileges,
        libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid)
    );
    check!(
        err,
        Stage::Prctl,
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0)
    );
    // Set after the uid change, which would otherwise clear it.
    check!(
        err,
        Stage::Prctl,
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0
        )
    );

    libc::execve(program, cmd.ptrs.as_ptr(), p.envp_ptrs.as_ptr());
    child_fail(err, Stage::Exec)
}

/// A cloned, set-up sandbox waiting for its command.
#[derive(Debug)]
struct Zygote {
    id: JobId,
    cgroup: Arc<dyn JobCgroup>,
    pid: i32,
    pidfd: OwnedFd,
    out_r: OwnedFd,
    err_r: OwnedFd,
    ctl_w: OwnedFd,
}

fn prepare_err(e: io::Error) -> SandboxError {
    SandboxError::Spawn(SpawnError::Prepare(e))
}

/// Makes a job cgroup and clones a sandbox into it that sets itself up and waits.
fn prepare(t: &Template) -> Result<Zygote, SandboxError> {
    let id = JobId::random().map_err(prepare_err)?;
    let cgroup: Arc<dyn JobCgroup> = t
        .layout
        .create(&t.cgroup_parent, id.as_str(), &t.limits)?
        .into();
    match clone_into(t, &cgroup) {
        Ok((pid, pidfd, out_r, err_r, ctl_w)) => Ok(Zygote {
            id,
            cgroup,
            pid,
            pidfd,
            out_r,
            err_r,
            ctl_w,
        }),
        Err(e) => {
            cgroup.kill_all();
            if let Err(e) = cgroup.remove() {
                tracing::warn!(error = %e, "job cgroup cleanup failed");
            }
            Err(prepare_err(e))
        }
    }
}

type Fds = (i32, OwnedFd, OwnedFd, OwnedFd, OwnedFd);

fn clone_into(t: &Template, cgroup: &Arc<dyn JobCgroup>) -> io::Result<Fds> {
    let prepared = Prepared::new(t, &cgroup.procs_files())?;
    let mut cmd = CommandBuf::new();
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ctl_r, ctl_w) = pipe()?;
    let devnull: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into();

    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: (libc::CLONE_NEWPID
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC) as u64
            | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup.clone_fd() {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: fork-like clone3 (no CLONE_VM, no stack): the child gets a private copy of this
    // thread only and runs nothing but raw syscalls on pre-built data until execve or _exit.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        // SAFETY: see above; child_main never returns.
        unsafe {
            child_main(
                &prepared,
                &mut cmd,
                out_w.as_raw_fd(),
                err_w.as_raw_fd(),
                ctl_r.as_raw_fd(),
                devnull.as_raw_fd(),
            )
        }
    }
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CLONE_PIDFD stored a fresh pidfd that nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((ret as i32, pidfd, out_r, err_r, ctl_w))
}

/// Reads one 8-byte report: `None` on EOF (the child exec'd or exited), else `(stage, errno)`.
fn read_report(err_r: &OwnedFd) -> io::Result<Option<(u32, i32)>> {
    // A child stuck in setup must not wedge the spawner thread for everyone else.
    if !wait_readable(err_r.as_fd(), SETUP_TIMEOUT_MS) {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "sandbox child did not reach exec",
        ));
    }
    let mut report = [0u8; 8];
    let mut got = 0;
    let mut f = File::from(err_r.try_clone()?);
    while got < report.len() {
        match io::Read::read(&mut f, &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    match got {
        0 => Ok(None),
        8 => Ok(Some((
            u32::from_le_bytes([report[0], report[1], report[2], report[3]]),
            i32::from_le_bytes([report[4], report[5], report[6], report[7]]),
        ))),
        _ => Err(io::Error::other("malformed report from sandbox child")),
    }
}

fn failure(stage_raw: u32, errno: i32, program: &str) -> SpawnError {
    let source = io::Error::from_raw_os_error(errno);
    match Stage::from_u32(stage_raw) {
        Some(Stage::Exec) => SpawnError::Exec {
            program: program.to_string(),
            source,
        },
        Some(stage) => SpawnError::Setup { stage, source },
        None => SpawnError::Prepare(io::Error::other("malformed report from sandbox child")),
    }
}

impl Zygote {
    /// Kills a sandbox that will not be used and reaps it (its cgroup stays with the caller).
    fn kill_and_reap(&self) {
        kill(self.pidfd.as_fd());
        let _ = wait_blocking(self.pidfd.as_fd());
    }

    /// Gives the waiting sandbox its command; resolves once it has exec'd (or failed to).
    fn launch(self, argv: &[String]) -> Started {
        let result = self.launch_inner(argv);
        if result.is_err() {
            self.kill_and_reap();
        }
        Started {
            id: self.id.clone(),
            cgroup: self.cgroup.clone(),
            result: result.map(|()| Spawned {
                pid: self.pid,
                pidfd: self.pidfd,
                output: File::from(self.out_r),
            }),
        }
    }

    fn launch_inner(&self, argv: &[String]) -> Result<(), SpawnError> {
        let first = argv.first().cloned().unwrap_or_default();
        match read_report(&self.err_r).map_err(SpawnError::Prepare)? {
            Some((0, _)) => {}
            Some((stage, errno)) => return Err(failure(stage, errno, &first)),
            None => {
                return Err(SpawnError::Prepare(io::Error::other(
                    "sandbox child exited during setup",
                )))
            }
        }
        let program = resolve_program(&first);
        let mut msg = Vec::with_capacity(4 + program.len() + 1 + argv.len() * 16);
        msg.extend_from_slice(&[0; 4]);
        for s in std::iter::once(&program).chain(argv) {
            if s.as_bytes().contains(&0) {
                return Err(SpawnError::Prepare(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "NUL in argument",
                )));
            }
            msg.extend_from_slice(s.as_bytes());
            msg.push(0);
        }
        let body = msg.len() - 4;
        if body > MAX_REQ || argv.len() > MAX_ARGS + 1 {
            return Err(SpawnError::Prepare(io::Error::new(
                io::ErrorKind::InvalidInput,
                "command too large",
            )));
        }
        msg[..4].copy_from_slice(&(body as u32).to_le_bytes());
        {
            let mut ctl = File::from(self.ctl_w.try_clone().map_err(SpawnError::Prepare)?);
            io::Write::write_all(&mut ctl, &msg).map_err(SpawnError::Prepare)?;
        }
        // Both copies of the write end are gone only when `self` drops; the child closes its
        // command pipe after reading, so nothing waits on EOF here.
        match read_report(&self.err_r).map_err(SpawnError::Prepare)? {
            Some((0, 1)) => {}
            Some((stage, errno)) => {
                let _ = wait_blocking(self.pidfd.as_fd());
                return Err(failure(stage, errno, &first));
            }
            None => {
                return Err(SpawnError::Prepare(io::Error::other(
                    "sandbox child exited before taking its command",
                )))
            }
        }
        match read_report(&self.err_r).map_err(SpawnError::Prepare)? {
            None => Ok(()),
            Some((stage, errno)) => {
                // The child reported a failure and exits by itself; reap it.
                let _ = wait_blocking(self.pidfd.as_fd());
                Err(failure(stage, errno, &first))
            }
        }
    }

    /// Ends an unused sandbox: kill, reap, remove its cgroup.
    fn discard(self) {
        self.kill_and_reap();
        self.cgroup.kill_all();
        if let Err(e) = self.cgroup.remove() {
            tracing::warn!(error = %e, "pre-started sandbox cgroup cleanup failed");
        }
    }
}

/// Longest time a child may take from clone to exec.
const SETUP_TIMEOUT_MS: libc::c_int = 10_000;

/// Waits until `fd` is readable (data or EOF); false on timeout.
fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return r > 0;
    }
}

type Request = (Vec<String>, oneshot::Sender<Result<Started, SandboxError>>);

/// Empty job cgroups older than this are leftovers of a killed service.
const STALE_CGROUP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Pause between a job start and the refill of the pre-started sandboxes.
const REFILL_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// The cloning thread: keeps `prewarm` sandboxes ready and hands one out per job.
fn spawner_loop(t: Template, rx: mpsc::Receiver<Request>) {
    let swept = t.layout.sweep_stale(&t.cgroup_parent, STALE_CGROUP_AGE);
    if swept > 0 {
        tracing::info!(swept, "removed job cgroups left by an earlier run");
    }
    let mut pool: VecDeque<Zygote> = VecDeque::new();
    let mut pending: Option<Request> = None;
    loop {
        // While a spare is left, refill after a short pause rather than at once: the clone
        // (which copies this process's page tables under its mmap lock) and the new cgroup's
        // join would otherwise compete with the job just launched for its first milliseconds.
        // A request that arrives meanwhile is served first. An empty pool is refilled at once.
        if !pool.is_empty() && pool.len() < t.prewarm && pending.is_none() {
            match rx.recv_timeout(REFILL_DELAY) {
                Ok(r) => pending = Some(r),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        while pending.is_none() && pool.len() < t.prewarm {
            match prepare(&t) {
                Ok(z) => pool.push_back(z),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot pre-start a sandbox");
                    break;
                }
            }
        }
        let (argv, reply) = match pending.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let started = match pool.pop_front() {
            Some(z) => match z.launch(&argv) {
                s @ Started {
                    result: Ok(_) | Err(SpawnError::Exec { .. }),
                    ..
                } => Ok(s),
                // A sandbox that waited may have been killed meanwhile; the command never ran,
                // so it is safe to try once more with a fresh one.
                failed => {
                    if let Err(e) = &failed.result {
                        tracing::warn!(error = %e, "pre-started sandbox unusable, making a new one");
                    }
                    failed.cgroup.kill_all();
                    if let Err(e) = failed.cgroup.remove() {
                        tracing::warn!(error = %e, "job cgroup cleanup failed");
                    }
                    prepare(&t).map(|z| z.launch(&argv))
                }
            },
            None => prepare(&t).map(|z| z.launch(&argv)),
        };
        // Nobody waits any more (the start was cancelled): do not leave the job running
        // unsupervised.
        if let Err(Ok(abandoned)) = reply.send(started) {
            if let Ok(sp) = &abandoned.result {
                kill(sp.pidfd.as_fd());
                let _ = wait_blocking(sp.pidfd.as_fd());
            }
            abandoned.cgroup.kill_all();
            if let Err(e) = abandoned.cgroup.remove() {
                tracing::warn!(error = %e, "job cgroup cleanup failed");
            }
        }
    }
    for z in pool {
        z.discard();
    }
}

/// Owner of the cloning thread; dropping it (with the manager) lets its jobs receive SIGKILL
/// and ends the sandboxes it kept ready.
#[derive(Debug)]
pub struct Spawner {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    /// Starts the cloning thread (which starts pre-starting sandboxes right away).
    pub fn new(template: Template) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("leotest-sandbox-spawner".into())
            .spawn(move || spawner_loop(template, rx))?;
        Ok(Spawner {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Creates the job's cgroup and sandboxed process; resolves once it has exec'd (or failed
    /// to). `Err` means there is no cgroup to clean up.
    pub async fn start(&self, argv: Vec<String>) -> Result<Started, SandboxError> {
        let gone = || SandboxError::Internal("spawner thread gone".into());
        let (reply, rx) = oneshot::channel();
        {
            let tx = self.tx.lock().map_err(|_| gone())?;
            tx.as_ref()
                .ok_or_else(gone)?
                .send((argv, reply))
                .map_err(|_| gone())?;
        }
        rx.await.map_err(|_| gone())?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // Closing the channel ends the loop; joining makes sure the waiting sandboxes and their
        // cgroups are gone before the manager is.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// Sends SIGKILL through the pidfd (no pid-reuse race). Errors mean it is already gone.
pub fn kill(pidfd: BorrowedFd<'_>) {
    // SAFETY: plain syscall on a valid pidfd.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        );
    }
}

fn waitid(pidfd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<Option<ExitInfo>> {
    loop {
        // SAFETY: zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: P_PIDFD with our own pidfd; info is a valid pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | flags,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled a SIGCHLD siginfo (or left si_pid 0 under WNOHANG).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => ExitInfo::Code(status),
            _ => ExitInfo::Signal(status),
        }));
    }
}

fn wait_blocking(pidfd: BorrowedFd<'_>) -> io::Result<ExitInfo> {
    waitid(pidfd, 0)?.ok_or_else(|| io::Error::other("waitid returned no child"))
}

/// Waits (without blocking a thread) for the job's main process to end and reaps it.
pub async fn wait_exit(pidfd: &AsyncFd<OwnedFd>) -> io::Result<ExitInfo> {
    loop {
        let mut guard = pidfd.readable().await?;
        if let Some(exit) = waitid(pidfd.get_ref().as_fd(), libc::WNOHANG)? {
            return Ok(exit);
        }
        guard.clear_ready();
    }
}
