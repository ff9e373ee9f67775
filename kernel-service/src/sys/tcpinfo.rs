//! `getsockopt(TCP_INFO)` on one of our own sockets, as raw bytes: the layout is parsed in
//! [`crate::tcp_counters`], the same parser that reads the caller's side from sock_diag.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::cvt;

/// Bytes of `struct tcp_info` we ask for (the kernel fills at most its own size, and says how
/// much it filled).
pub const TCP_INFO_MAX: usize = 256;

/// The socket's `struct tcp_info`: the buffer and how many bytes of it the kernel filled.
pub fn tcp_info(fd: BorrowedFd<'_>) -> io::Result<([u8; TCP_INFO_MAX], usize)> {
    let mut buf = [0u8; TCP_INFO_MAX];
    let mut len = TCP_INFO_MAX as libc::socklen_t;
    // SAFETY: valid fd; the kernel writes at most `len` bytes into `buf` and updates `len`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    Ok((buf, (len as usize).min(TCP_INFO_MAX)))
}
