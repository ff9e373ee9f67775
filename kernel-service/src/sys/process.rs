//! Process-level calls: the sandbox clone, the effective uid, kernel randomness, kill by pid.

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

const CLONE_PIDFD: u64 = 0x0000_1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

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

/// The namespaces every sandbox gets: PID, mount, network, UTS and IPC.
pub const SANDBOX_NAMESPACES: libc::c_int = libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC;

/// Forks the calling thread into new `namespaces` (and into the cgroup `cgroup` when given,
/// `CLONE_INTO_CGROUP`), returning the child's pid and a pidfd; the child runs `child`.
///
/// The child is a copy of this one thread only (fork-like `clone3`: no `CLONE_VM`, no stack),
/// as after `fork` in a multi-threaded program: `child` must use only async-signal-safe,
/// allocation-free operations (the [`super::child`] wrappers, plain arithmetic on data prepared
/// before the call) and never return (`execve` or `_exit`; `Infallible` stands for `!`). A panic in it exits the child with 127.
pub fn clone_sandbox(
    namespaces: libc::c_int,
    cgroup: Option<BorrowedFd<'_>>,
    child: impl FnOnce() -> Infallible,
) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: namespaces as u64 | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: fork-like clone3 (no CLONE_VM, no stack, no CLONE_SETTLS): the child gets a private
    // copy of the address space and continues on this thread's stack; `args` outlives the call.
    let ret = cvt(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    })?;
    if ret == 0 {
        // Unwinding out of here would run the parent's code in the child: stop at the edge.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child));
        super::child::exit(127);
    }
    // SAFETY: CLONE_PIDFD stored a fresh pidfd that nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((ret as i32, pidfd))
}

/// The effective uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Fills `buf` from the kernel's CSPRNG.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`.
        match cvt(unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(n) => filled += n as usize,
        }
    }
    Ok(())
}

/// SIGKILL to `pid` (ignored if it is gone). Only for pids read from a job's own cgroup.
pub fn kill_pid(pid: i32) {
    if pid > 0 {
        // SAFETY: plain syscall; a stale pid at worst gets ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
