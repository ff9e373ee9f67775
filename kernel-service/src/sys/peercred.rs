//! Who is on the other end of a unix socket: `SO_PEERCRED` (pid, uid, gid at `connect` time)
//! and `SO_PEERPIDFD` (a pidfd of that very process, Linux 6.5+), and whether a pidfd's
//! process is still alive.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// `SO_PEERPIDFD` (include/uapi/asm-generic/socket.h; not in every libc release).
const SO_PEERPIDFD: libc::c_int = 77;

/// The connecting process's pid (in our PID namespace; 0 if it is not visible there), uid, gid.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<(u32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: valid fd; the kernel writes at most `len` bytes into `cred`.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    let pid = u32::try_from(cred.pid).unwrap_or(0);
    Ok((pid, cred.uid, cred.gid))
}

/// A pidfd of the process that connected (never another process that reused its pid).
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd; the kernel writes one int into `fd`.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: the kernel just installed this fd for us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the pidfd's process still exists (signal 0: permission and existence only).
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: plain syscall on a valid pidfd with signal 0 and a null siginfo.
    let r = cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    });
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}
