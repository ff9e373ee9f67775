//! System calls: every `unsafe` block of the kernel service lives under this module (the crate
//! denies `unsafe_code` everywhere else), each behind a small safe function with its contract.
//!
//! - [`fd`]: pipes and readiness polls.
//! - [`pidfd`]: signalling, reaping and awaiting a process through its pidfd.
//! - [`process`]: the sandbox clone, credentials-free process helpers (euid, randomness, kill).
//! - [`child`]: the raw, allocation-free calls a freshly cloned sandbox child makes before exec.

pub mod child;
pub mod fd;
pub mod pidfd;
pub mod process;

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
