//! The spawner thread and its warm sandboxes: [`Spawner`] owns the thread that clones every
//! sandbox and hands it job starts; the thread keeps `prewarm` sandboxes set up and waiting for
//! a command.
//!
//! On cgroup v1 the first write to a `cgroup.procs` file waits for an RCU grace period (the
//! cgroup core takes `cgroup_threadgroup_rwsem` for writing), which was most of a job's start
//! time (4–11 ms of it); building the job's root and installing its seccomp filters add more.
//! So a warm sandbox is a child that has already been cloned into its namespaces, joined its
//! own freshly made cgroup (limits applied), wired its stdio, built and entered its root, set
//! its hostname, dropped its capability bounding set and installed its seccomp filters, and
//! now waits — still as root, running nothing but our own code — for a command on a private
//! pipe. A job start hands one over: it sends the resolved program and argv, and the child drops
//! to the unprivileged uid/gid, sets `no_new_privs` and execs. The isolation is the same as for
//! a sandbox made on demand (the same code, in the same order); only the waiting point moved.
//!
//! A warm sandbox keeps no descriptor of the service except its own three pipes (everything
//! else is closed, not just marked close-on-exec), dies with the spawner thread (parent-death
//! signal) or when its command pipe closes, and is killed and its cgroup removed when the
//! manager is dropped.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::sys::child::{CStrArray, ExecBuf};
use crate::sys::{fd, pidfd, process};

use super::cgroup::JobCgroup;
use super::child::{self, ChildFds, ChildPlan};
use super::job::JobId;
use super::spawn::{resolve_program, SpawnError, Spawned, Started, Template};
use super::spec::{MAX_ARGS, MAX_ARG_LEN};
use super::stage::Stage;
use super::uids::JobIds;
use super::SandboxError;

/// Largest command message: the resolved program, then every argument, each NUL-terminated.
const MAX_REQ: usize = (MAX_ARGS + 2) * (MAX_ARG_LEN + 1) + 256;
/// Longest time a child may take from clone to READY, and from the command to exec.
const SETUP_TIMEOUT_MS: libc::c_int = 10_000;
/// Empty job cgroups older than this are leftovers of a killed service.
const STALE_CGROUP_AGE: Duration = Duration::from_secs(60);
/// Pause between a job start and the refill of the warm sandboxes.
const REFILL_DELAY: Duration = Duration::from_millis(5);

/// A job start handed to the spawner thread.
type Request = (
    Vec<String>,
    JobIds,
    oneshot::Sender<Result<Started, SandboxError>>,
);

/// Owner of the cloning thread; dropping it (with the manager) lets its jobs receive SIGKILL
/// and ends the warm sandboxes.
#[derive(Debug)]
pub(super) struct Spawner {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    /// Starts the cloning thread (which starts warming sandboxes right away).
    pub(super) fn new(template: Template) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("leotest-sandbox-spawner".into())
            .spawn(move || run(template, rx))?;
        Ok(Spawner {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Creates the job's cgroup and sandboxed process; resolves once it has exec'd (or failed
    /// to). `Err` means there is no cgroup to clean up.
    pub(super) async fn start(
        &self,
        argv: Vec<String>,
        ids: JobIds,
    ) -> Result<Started, SandboxError> {
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

/// What the spawner thread builds once from the template (not `Send`: raw pointers).
struct Shared {
    t: Template,
    envp: CStrArray,
}

/// A cloned, set-up sandbox waiting for its command.
#[derive(Debug)]
struct WarmSandbox {
    id: JobId,
    cgroup: Arc<dyn JobCgroup>,
    pid: i32,
    pidfd: OwnedFd,
    out_r: OwnedFd,
    report_r: OwnedFd,
    command_w: OwnedFd,
}

fn prepare_err(e: io::Error) -> SandboxError {
    SandboxError::Spawn(SpawnError::Prepare(e))
}

/// Makes a job cgroup and clones a sandbox into it that sets itself up and waits.
fn warm_up(s: &Shared) -> Result<WarmSandbox, SandboxError> {
    let id = JobId::random().map_err(prepare_err)?;
    let cgroup: Arc<dyn JobCgroup> =
        s.t.layout
            .create(&s.t.cgroup_parent, id.as_str(), &s.t.limits)?
            .into();
    match clone_child(s, cgroup.as_ref()) {
        Ok((pid, pidfd, out_r, report_r, command_w)) => Ok(WarmSandbox {
            id,
            cgroup,
            pid,
            pidfd,
            out_r,
            report_r,
            command_w,
        }),
        Err(e) => {
            cgroup.discard();
            Err(prepare_err(e))
        }
    }
}

type Fds = (i32, OwnedFd, OwnedFd, OwnedFd, OwnedFd);

fn clone_child(s: &Shared, cgroup: &dyn JobCgroup) -> io::Result<Fds> {
    let procs = cgroup
        .procs_files()
        .iter()
        .map(|p| CString::new(p.to_string_lossy().as_bytes()).map_err(io::Error::other))
        .collect::<io::Result<Vec<_>>>()?;
    let plan = ChildPlan {
        procs,
        root: &s.t.root,
        hostname: s.t.hostname.as_bytes(),
        envp: &s.envp,
        filters: &s.t.filters,
    };
    let mut cmd = ExecBuf::new(MAX_REQ, MAX_ARGS + 1);
    let (out_r, out_w) = fd::pipe()?;
    let (report_r, report_w) = fd::pipe()?;
    let (command_r, command_w) = fd::pipe()?;
    let devnull: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into();
    let fds = ChildFds {
        out_w: out_w.as_raw_fd(),
        report_w: report_w.as_raw_fd(),
        command_r: command_r.as_raw_fd(),
        devnull: devnull.as_raw_fd(),
    };
    let (pid, pidfd) =
        process::clone_sandbox(process::SANDBOX_NAMESPACES, cgroup.clone_fd(), || {
            child::run(&plan, &mut cmd, fds)
        })?;
    Ok((pid, pidfd, out_r, report_r, command_w))
}

/// Reads one 8-byte report: `None` on EOF (the child exec'd or exited), else `(stage, errno)`.
fn read_report(report_r: &OwnedFd) -> io::Result<Option<(u32, i32)>> {
    // A child stuck in setup must not wedge the spawner thread for everyone else.
    if !fd::wait_readable(report_r.as_fd(), SETUP_TIMEOUT_MS) {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "sandbox child did not reach exec",
        ));
    }
    let mut report = [0u8; 8];
    let mut got = 0;
    let mut f = File::from(report_r.try_clone()?);
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

/// `uid (u32 LE) | gid (u32 LE) | len (u32 LE) | program\0 argv0\0 argv1\0 ...`, bounded like
/// the child's buffer.
fn command_message(program: &str, argv: &[String], ids: JobIds) -> Result<Vec<u8>, SpawnError> {
    let invalid =
        |m: &str| SpawnError::Prepare(io::Error::new(io::ErrorKind::InvalidInput, m.to_string()));
    let mut msg = Vec::with_capacity(4 + program.len() + 1 + argv.len() * 16);
    msg.extend_from_slice(&[0; 4]);
    for s in std::iter::once(program).chain(argv.iter().map(String::as_str)) {
        if s.as_bytes().contains(&0) {
            return Err(invalid("NUL in argument"));
        }
        msg.extend_from_slice(s.as_bytes());
        msg.push(0);
    }
    let body = msg.len() - 4;
    if body > MAX_REQ || argv.len() > MAX_ARGS + 1 {
        return Err(invalid("command too large"));
    }
    msg[..4].copy_from_slice(&(body as u32).to_le_bytes());
    let mut out = Vec::with_capacity(8 + msg.len());
    out.extend_from_slice(&ids.uid.to_le_bytes());
    out.extend_from_slice(&ids.gid.to_le_bytes());
    out.extend_from_slice(&msg);
    Ok(out)
}

impl WarmSandbox {
    /// Kills a sandbox that will not be used and reaps it (its cgroup stays with the caller).
    fn kill_and_reap(&self) {
        pidfd::kill(self.pidfd.as_fd());
        let _ = pidfd::wait_blocking(self.pidfd.as_fd());
    }

    /// Gives the waiting sandbox its command; returns once it has exec'd (or failed to).
    fn launch(self, argv: &[String], ids: JobIds) -> Started {
        let result = self.launch_inner(argv, ids);
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

    fn launch_inner(&self, argv: &[String], ids: JobIds) -> Result<(), SpawnError> {
        let first = argv.first().cloned().unwrap_or_default();
        match read_report(&self.report_r).map_err(SpawnError::Prepare)? {
            Some((0, 0)) => {}
            Some((stage, errno)) => return Err(failure(stage, errno, &first)),
            None => {
                return Err(SpawnError::Prepare(io::Error::other(
                    "sandbox child exited during setup",
                )))
            }
        }
        let msg = command_message(&resolve_program(&first), argv, ids)?;
        {
            let mut w = File::from(self.command_w.try_clone().map_err(SpawnError::Prepare)?);
            io::Write::write_all(&mut w, &msg).map_err(SpawnError::Prepare)?;
        }
        // Both copies of the write end are gone only when `self` drops; the child closes its
        // command pipe after reading, so nothing waits on EOF here.
        match read_report(&self.report_r).map_err(SpawnError::Prepare)? {
            Some((0, 1)) => {}
            Some((stage, errno)) => {
                let _ = pidfd::wait_blocking(self.pidfd.as_fd());
                return Err(failure(stage, errno, &first));
            }
            None => {
                return Err(SpawnError::Prepare(io::Error::other(
                    "sandbox child exited before taking its command",
                )))
            }
        }
        match read_report(&self.report_r).map_err(SpawnError::Prepare)? {
            None => Ok(()),
            Some((stage, errno)) => {
                // The child reported a failure and exits by itself; reap it.
                let _ = pidfd::wait_blocking(self.pidfd.as_fd());
                Err(failure(stage, errno, &first))
            }
        }
    }

    /// Ends an unused sandbox: kill, reap, remove its cgroup.
    fn discard(self) {
        self.kill_and_reap();
        self.cgroup.discard();
    }
}

/// Ends a started job nobody will supervise: kill, reap, remove its cgroup.
fn abandon(started: Started) {
    if let Ok(sp) = &started.result {
        pidfd::kill(sp.pidfd.as_fd());
        let _ = pidfd::wait_blocking(sp.pidfd.as_fd());
    }
    started.cgroup.discard();
}

/// The spawner thread: keeps `prewarm` sandboxes warm and hands one out per job.
fn run(t: Template, rx: mpsc::Receiver<Request>) {
    let swept = t.layout.sweep_stale(&t.cgroup_parent, STALE_CGROUP_AGE);
    if swept > 0 {
        tracing::info!(swept, "removed job cgroups left by an earlier run");
    }
    let envp = match t.environment() {
        Ok(e) => CStrArray::new(e),
        Err(e) => {
            tracing::error!(error = %e, "sandbox environment invalid");
            return;
        }
    };
    let s = Shared { t, envp };
    let mut pool: VecDeque<WarmSandbox> = VecDeque::new();
    let mut pending: Option<Request> = None;
    loop {
        // While a spare is left, refill after a short pause rather than at once: the clone
        // (which copies this process's page tables under its mmap lock) and the new cgroup's
        // join would otherwise compete with the job just launched for its first milliseconds.
        // A request that arrives meanwhile is served first. An empty pool is refilled at once.
        if !pool.is_empty() && pool.len() < s.t.prewarm && pending.is_none() {
            match rx.recv_timeout(REFILL_DELAY) {
                Ok(r) => pending = Some(r),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        while pending.is_none() && pool.len() < s.t.prewarm {
            match warm_up(&s) {
                Ok(w) => pool.push_back(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot warm up a sandbox");
                    break;
                }
            }
        }
        let (argv, ids, reply) = match pending.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let started = match pool.pop_front() {
            Some(w) => match w.launch(&argv, ids) {
                s @ Started {
                    result: Ok(_) | Err(SpawnError::Exec { .. }),
                    ..
                } => Ok(s),
                // A sandbox that waited may have been killed meanwhile; the command never ran,
                // so it is safe to try once more with a fresh one.
                failed => {
                    if let Err(e) = &failed.result {
                        tracing::warn!(error = %e, "warm sandbox unusable, making a new one");
                    }
                    failed.cgroup.discard();
                    warm_up(&s).map(|w| w.launch(&argv, ids))
                }
            },
            None => warm_up(&s).map(|w| w.launch(&argv, ids)),
        };
        // Nobody waits any more (the start was cancelled): do not leave the job running
        // unsupervised.
        if let Err(Ok(abandoned)) = reply.send(started) {
            abandon(abandoned);
        }
    }
    for w in pool {
        w.discard();
    }
}
