//! The daemon's own seccomp filter (issue 23): system calls the kernel service never makes,
//! refused with `EPERM` for the whole process, installed first thing in `main` (before any
//! thread exists, so every thread inherits it) after `no_new_privs` and the capability cut
//! ([`crate::sys::privs`]).
//!
//! A denylist rather than an allowlist: tokio, bollard, rustls and the sandbox spawner make a
//! wide and version-dependent set of calls (and the sandbox child mounts, pivots and sets up
//! namespaces), so an allowlist would break on a dependency update; what is refused here is
//! what a compromised daemon would reach for and the service never needs: loading code into the
//! kernel, file handles that bypass path checks (`open_by_handle_at` with DAC_READ_SEARCH),
//! tracing other processes, BPF, the keyring, io_uring, perf, userfaultfd, clocks and rebooting.
//! Sandboxed jobs inherit it beneath their own, stricter filters.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{BpfProgram, SeccompAction, SeccompRule};

use crate::sandbox::seccomp::{compile, with_x32};

/// System calls the daemon refuses itself (with `EPERM`), by name for the docs and tests.
pub const DAEMON_REFUSED: &[(&str, i64)] = &[
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("bpf", libc::SYS_bpf),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("chroot", libc::SYS_chroot),
];

/// The compiled filter.
pub fn daemon_filter() -> Result<BpfProgram, seccompiler::Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DAEMON_REFUSED {
        for n in with_x32(*nr) {
            rules.insert(n, Vec::new());
        }
    }
    compile(rules, SeccompAction::Errno(libc::EPERM as u32))
}

/// Installs [`daemon_filter`] on the calling thread (inherited by threads created afterwards).
pub fn install() -> io::Result<()> {
    let filter = daemon_filter().map_err(|e| io::Error::other(e.to_string()))?;
    seccompiler::apply_filter(&filter).map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_daemon_filter_compiles_small() {
        let f = super::daemon_filter().unwrap();
        assert!(!f.is_empty() && f.len() < 4096, "{}", f.len());
    }
}
