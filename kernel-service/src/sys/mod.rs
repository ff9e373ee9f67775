//! System calls: every `unsafe` block of the kernel service lives under this module (the crate
//! denies `unsafe_code` everywhere else), each behind a small safe function with its contract.
//! Return codes become `io::Error` in one place ([`cvt`]), as youki keeps its syscalls behind
//! `syscall/`.
//!
//! - [`ns`]: running code inside another namespace (setns on a dedicated thread), private procfs.
//! - [`netlink`]: the sock_diag netlink socket.
//! - [`fd`]: pipes and readiness polls.
//! - [`peercred`]: who is on the other end of a unix socket (`SO_PEERCRED`, `SO_PEERPIDFD`).
//! - [`privs`]: the daemon's own `no_new_privs` and capability sets.
//! - [`pidfd`]: signalling, reaping and awaiting a process through its pidfd.
//! - [`process`]: the sandbox clone, credentials-free process helpers (euid, randomness, kill).
//! - [`tcpinfo`]: `TCP_INFO` of our own sockets (the connection counters check).
//! - [`child`]: the raw, allocation-free calls a freshly cloned sandbox child makes before exec.

pub mod child;
pub mod fd;
pub mod netlink;
pub mod ns;
pub mod peercred;
pub mod pidfd;
pub mod privs;
pub mod process;
pub mod tcpinfo;

use std::io;

/// Return values of system calls that signal failure with `-1` (and set `errno`).
pub trait IsMinusOne: Copy {
    /// True for the error value.
    fn is_minus_one(self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty),*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(self) -> bool {
                self == -1
            }
        }
    )*};
}
impl_is_minus_one!(i32, i64, isize);

/// The one return-code check: `-1` becomes the current `errno` as an [`io::Error`], anything
/// else is passed through. Allocation-free, so a post-clone child may use it too.
pub fn cvt<T: IsMinusOne>(rc: T) -> io::Result<T> {
    if rc.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Whether the process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The calling thread's id (its "pid" under `/proc`).
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap_or(0)
}

/// Raises the soft open-file limit to the hard limit; returns the new soft limit.
///
/// Every connection holds one descriptor; a service started from a shell (soft limit 1024)
/// would otherwise fail `accept` long before `--max-connections`.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the local struct it is given.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the local struct it is given.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvt_maps_minus_one_to_errno() {
        assert_eq!(cvt(3 as libc::c_int).unwrap(), 3);
        assert!(cvt(-1 as libc::c_int).is_err());
        assert!(gettid() > 0);
        assert!(raise_nofile().unwrap() > 0);
    }
}
