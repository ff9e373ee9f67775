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

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;

use libc::c_char;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use super::job::ExitInfo;

/// `PATH` inside the sandbox; also used to resolve bare command names before cloning.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
/// The job's private writable directory (a tmpfs) and its working directory.
pub const WORKDIR: &str = "/tmp";

const CLONE_PIDFD: u64 = 0x0000_1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

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

/// What the child needs, owned, so it can cross to the spawner thread.
#[derive(Debug)]
pub struct SpawnRequest {
    /// Command and arguments.
    pub argv: Vec<String>,
    /// Unprivileged uid (checked non-zero by the config).
    pub uid: u32,
    /// Unprivileged gid.
    pub gid: u32,
    /// Hostname for the UTS namespace.
    pub hostname: String,
    /// Size of the tmpfs working directory.
    pub workdir_bytes: u64,
    /// `cgroup.procs` files the child joins by writing "0" (v1).
    pub procs_files: Vec<PathBuf>,
    /// Cgroup directory for CLONE_INTO_CGROUP (v2).
    pub cgroup_fd: Option<OwnedFd>,
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

struct Prepared {
    program: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
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
    fn new(req: &SpawnRequest) -> io::Result<Self> {
        let first = req
            .argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        let program = cstring(&resolve_program(first))?;
        let argv = req
            .argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = [
            format!("PATH={SANDBOX_PATH}"),
            format!("HOME={WORKDIR}"),
            format!("TMPDIR={WORKDIR}"),
            "LANG=C".to_string(),
        ]
        .iter()
        .map(|e| cstring(e))
        .collect::<io::Result<Vec<_>>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let procs = req
            .procs_files
            .iter()
            .map(|p| cstring(&p.to_string_lossy()))
            .collect::<io::Result<Vec<_>>>()?;
        let tmpfs_opts = cstring(&format!(
            "size={},nr_inodes=16384,mode=0700,uid={},gid={}",
            req.workdir_bytes, req.uid, req.gid
        ))?;
        Ok(Prepared {
            program,
            argv_ptrs: ptrs(&argv),
            _argv: argv,
            envp_ptrs: ptrs(&envp),
            _envp: envp,
            procs,
            tmpfs_opts,
            hostname: req.hostname.as_bytes().to_vec(),
            uid: req.uid,
            gid: req.gid,
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

/// Reports `(stage, errno)` to the parent and exits; only raw syscalls (we are post-clone).
unsafe fn child_fail(err_w: RawFd, stage: Stage) -> ! {
    let errno = *libc::__errno_location();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_le_bytes());
    msg[4..].copy_from_slice(&(errno as u32).to_le_bytes());
    libc::write(err_w, msg.as_ptr().cast(), msg.len());
    libc::_exit(126)
}

/// The child side between clone3 and execve. Runs as pid 1 of the new PID namespace.
unsafe fn child_main(p: &Prepared, out_w: RawFd, err_w: RawFd, devnull: RawFd) -> ! {
    macro_rules! check {
        ($stage:expr, $call:expr) => {
            if ($call) < 0 {
                child_fail(err_w, $stage)
            }
        };
    }
    // The cgroup comes first so that nothing below runs unlimited.
    for path in &p.procs {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        check!(Stage::JoinCgroup, fd);
        check!(Stage::JoinCgroup, libc::write(fd, c"0".as_ptr().cast(), 1));
        libc::close(fd);
    }

    check!(Stage::Stdio, libc::dup2(devnull, 0));
    check!(Stage::Stdio, libc::dup2(out_w, 1));
    check!(Stage::Stdio, libc::dup2(out_w, 2));
    // Whatever else the service had open must not reach the job.
    check!(
        Stage::Stdio,
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC)
    );
    // Rust ignores SIGPIPE and the runtime may block signals: give the job the defaults.
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);

    check!(
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
        Stage::Hostname,
        libc::sethostname(p.hostname.as_ptr().cast(), p.hostname.len())
    );
    check!(Stage::Chdir, libc::chdir(c"/tmp".as_ptr()));

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
    // Raw syscalls on purpose: glibc's set*id/setgroups wrappers broadcast the change to every
    // thread of the parent (which do not exist here) and would wait for them forever.
    check!(
        Stage::DropPrivileges,
        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
    );
    check!(
        Stage::DropPrivileges,
        libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid)
    );
    check!(
        Stage::DropPrivileges,
        libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid)
    );
    check!(
        Stage::Prctl,
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0)
    );
    // Set after the uid change, which would otherwise clear it.
    check!(
        Stage::Prctl,
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0
        )
    );

    libc::execve(
        p.program.as_ptr(),
        p.argv_ptrs.as_ptr(),
        p.envp_ptrs.as_ptr(),
    );
    child_fail(err_w, Stage::Exec)
}

fn spawn_now(req: SpawnRequest) -> Result<Spawned, SpawnError> {
    let prepared = Prepared::new(&req).map_err(SpawnError::Prepare)?;
    let (out_r, out_w) = pipe().map_err(SpawnError::Prepare)?;
    let (err_r, err_w) = pipe().map_err(SpawnError::Prepare)?;
    let devnull: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(SpawnError::Prepare)?
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
    if let Some(fd) = &req.cgroup_fd {
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
                out_w.as_raw_fd(),
                err_w.as_raw_fd(),
                devnull.as_raw_fd(),
            )
        }
    }
    if ret < 0 {
        return Err(SpawnError::Prepare(io::Error::last_os_error()));
    }
    let pid = ret as i32;
    // SAFETY: CLONE_PIDFD stored a fresh pidfd that nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(out_w);
    drop(err_w);
    drop(devnull);

    let mut report = [0u8; 8];
    let mut got = 0;
    // A child stuck before exec must not wedge the spawner thread for everyone else.
    if !wait_readable(err_r.as_fd(), SETUP_TIMEOUT_MS) {
        kill(pidfd.as_fd());
        let _ = wait_blocking(pidfd.as_fd());
        return Err(SpawnError::Prepare(io::Error::new(
            io::ErrorKind::TimedOut,
            "sandbox child did not reach exec",
        )));
    }
    let mut err_file = File::from(err_r);
    while got < report.len() {
        match io::Read::read(&mut err_file, &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                kill(pidfd.as_fd());
                let _ = wait_blocking(pidfd.as_fd());
                return Err(SpawnError::Prepare(e));
            }
        }
    }
    if got == 0 {
        return Ok(Spawned {
            pid,
            pidfd,
            output: File::from(out_r),
        });
    }
    // The child reported a failure and exits by itself; reap it.
    let _ = wait_blocking(pidfd.as_fd());
    let stage_raw = u32::from_le_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_le_bytes([report[4], report[5], report[6], report[7]]);
    let source = io::Error::from_raw_os_error(errno);
    match Stage::from_u32(stage_raw) {
        Some(Stage::Exec) => Err(SpawnError::Exec {
            program: req.argv.first().cloned().unwrap_or_default(),
            source,
        }),
        Some(stage) if got == report.len() => Err(SpawnError::Setup { stage, source }),
        _ => Err(SpawnError::Prepare(io::Error::other(
            "malformed report from sandbox child",
        ))),
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

type Job = (SpawnRequest, oneshot::Sender<Result<Spawned, SpawnError>>);

/// Owner of the cloning thread; dropping it (with the manager) lets its jobs receive SIGKILL.
#[derive(Debug)]
pub struct Spawner {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl Spawner {
    /// Starts the cloning thread.
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("leotest-sandbox-spawner".into())
            .spawn(move || {
                while let Ok((req, reply)) = rx.recv() {
                    let _ = reply.send(spawn_now(req));
                }
            })?;
        Ok(Spawner { tx: Mutex::new(tx) })
    }

    /// Creates the sandboxed process; resolves once it has exec'd (or failed to).
    pub async fn spawn(&self, req: SpawnRequest) -> Result<Spawned, SpawnError> {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .tx
            .lock()
            .map_err(|_| SpawnError::Prepare(io::Error::other("spawner poisoned")))?
            .send((req, reply));
        if sent.is_err() {
            return Err(SpawnError::Prepare(io::Error::other("spawner thread gone")));
        }
        rx.await
            .map_err(|_| SpawnError::Prepare(io::Error::other("spawner thread gone")))?
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
