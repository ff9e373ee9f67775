//! The kernel service's system calls outside std and tokio: the only modules allowed `unsafe`.
//!
//! Each function here is a small safe wrapper over one system call (or one fixed sequence of
//! them); everything above this module is safe Rust. Return codes become `io::Error` in one
//! place ([`cvt`]), as youki keeps its syscalls behind `syscall/`.

pub mod netlink;
pub mod ns;

use std::io;

/// A raw return value that signals failure with -1 (and sets errno).
pub trait MinusOne: Copy {
    fn is_minus_one(self) -> bool;
}

impl MinusOne for libc::c_int {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}

impl MinusOne for libc::ssize_t {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}

/// `-1` → the current `errno` as an `io::Error`; anything else is returned as is.
pub fn cvt<T: MinusOne>(rc: T) -> io::Result<T> {
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
