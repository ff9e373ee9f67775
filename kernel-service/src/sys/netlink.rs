//! Netlink sockets: open one in the calling thread's network namespace, send a request to the
//! kernel, receive its reply. Message contents are built and parsed by the callers.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::cvt;

/// A `SOCK_DGRAM` netlink socket of `protocol` (e.g. `NETLINK_SOCK_DIAG`) in the calling
/// thread's network namespace, with a receive time-out so a stuck kernel path cannot pin a
/// thread. It stays bound to that namespace whichever thread uses it later.
pub fn open(protocol: libc::c_int, recv_timeout: Duration) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right below.
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?;
    // SAFETY: `raw` is a fresh, valid fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(recv_timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: recv_timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: valid fd and a correctly sized timeval that outlives the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Sends `msg` to the kernel (netlink port 0).
pub fn send_to_kernel(fd: &OwnedFd, msg: &[u8]) -> io::Result<usize> {
    // SAFETY: an all-zero sockaddr_nl is valid (it addresses the kernel once the family is set).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: valid fd; buffer and address are valid for the stated lengths during the call.
    let n = cvt(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(n as usize)
}

/// Receives one datagram into `buf`; with `nonblocking`, `WouldBlock` instead of waiting.
pub fn recv(fd: &OwnedFd, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
    let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: valid fd and a writable buffer of the stated length.
    let n = cvt(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })?;
    Ok(n as usize)
}
