//! Processes by pidfd: SIGKILL without pid-reuse races, blocking and async reaping.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::cvt;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// Normal exit with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Sends SIGKILL through the pidfd. Errors mean the process is already gone, so none is returned.
pub fn kill(pidfd: BorrowedFd<'_>) {
    // SAFETY: plain syscall on a valid pidfd with a null siginfo.
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

fn waitid(pidfd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<Option<ChildExit>> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: P_PIDFD with our own pidfd; info is a valid pointer.
        let r = cvt(unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | flags,
            )
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        // SAFETY: waitid filled a SIGCHLD siginfo (or left si_pid 0 under WNOHANG).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => ChildExit::Exited(status),
            _ => ChildExit::Signaled(status),
        }));
    }
}

/// Waits (blocking the thread) for the process to end and reaps it.
pub fn wait_blocking(pidfd: BorrowedFd<'_>) -> io::Result<ChildExit> {
    waitid(pidfd, 0)?.ok_or_else(|| io::Error::other("waitid returned no child"))
}

/// A pidfd registered with the tokio reactor (readable once the process has exited).
#[derive(Debug)]
pub struct AsyncPidfd(AsyncFd<OwnedFd>);

impl AsyncPidfd {
    /// Registers `fd`; on failure the fd is handed back so the caller can still kill and reap.
    pub fn register(fd: OwnedFd) -> Result<Self, (OwnedFd, io::Error)> {
        // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open (and the same file
        // description) for its whole life.
        match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(a) => Ok(AsyncPidfd(a)),
            Err(e) => Err(e.into_parts()),
        }
    }

    /// SIGKILL (see [`kill`]).
    pub fn kill(&self) {
        kill(self.0.get_ref().as_fd());
    }

    /// Waits without blocking a thread for the process to end and reaps it.
    pub async fn wait(&self) -> io::Result<ChildExit> {
        loop {
            let mut guard = self.0.readable().await?;
            if let Some(exit) = waitid(self.0.get_ref().as_fd(), libc::WNOHANG)? {
                return Ok(exit);
            }
            guard.clear_ready();
        }
    }
}
