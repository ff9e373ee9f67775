//! File descriptors: close-on-exec pipes and a bounded wait for readability.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// A close-on-exec pipe as `(read end, write end)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into our two-element array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Waits until `fd` is readable (data, EOF or an error condition); false on timeout.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        match cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
            Ok(n) => return n > 0,
        }
    }
}
