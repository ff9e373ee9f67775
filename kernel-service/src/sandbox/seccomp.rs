//! The seccomp filters of sandboxed jobs: kernel attack surface a job has no use for.
//!
//! A job already runs without capabilities and with `no_new_privs`; the filters close what is
//! still open to an unprivileged process: making namespaces (a user namespace would give it
//! uid 0 and capabilities over its own mounts and network), mounting, loading BPF programs,
//! the keyring, ptrace, perf, module and kexec calls, io_uring (whose operations bypass seccomp)
//! and a few more. Refused calls fail with `EPERM` — a program sees an ordinary permission
//! error rather than being killed. `clone3`, whose flags sit in memory a filter cannot read,
//! fails with `ENOSYS`, so that libc falls back to `clone`, whose flags the filter checks.
//! Calls of other architectures (32-bit `int 0x80`) kill the process, the x32 variants of the
//! refused calls are refused too.
//!
//! The filters are compiled once per manager (seccompiler) and installed by each sandbox child
//! while it is still root, before it waits for its command: the start of a job costs nothing.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// System calls refused outright (with `EPERM`), by name for the docs and tests.
pub const REFUSED: &[(&str, i64)] = &[
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("bpf", libc::SYS_bpf),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("uselib", libc::SYS_uselib),
    ("vhangup", libc::SYS_vhangup),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
];

/// Calls refused (with `EPERM`) only when their flags (argument 0) ask for a new namespace.
pub const REFUSED_WITH_NAMESPACE_FLAGS: &[(&str, i64)] =
    &[("unshare", libc::SYS_unshare), ("clone", libc::SYS_clone)];

/// Every `CLONE_NEW*` flag. `CLONE_NEWTIME` (0x80) lies inside `clone`'s exit-signal byte, where
/// no signal number reaches it, so refusing it there refuses nothing legitimate.
const NAMESPACE_FLAGS: [u64; 8] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

/// x32 system calls are the x86_64 numbers with this bit set (same audit architecture).
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// The compiled filters, installed together.
#[derive(Debug, Clone)]
pub struct Filters {
    refuse: BpfProgram,
    clone3: BpfProgram,
}

pub(crate) fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    action: SeccompAction,
) -> Result<BpfProgram, seccompiler::Error> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    Ok(SeccompFilter::new(rules, SeccompAction::Allow, action, arch)?.try_into()?)
}

pub(crate) fn with_x32(nr: i64) -> [i64; 2] {
    [nr, nr | X32_SYSCALL_BIT]
}

impl Filters {
    /// Compiles the filters for this architecture.
    pub fn new() -> Result<Self, seccompiler::Error> {
        let mut refuse: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for (_, nr) in REFUSED {
            for n in with_x32(*nr) {
                refuse.insert(n, Vec::new());
            }
        }
        // One rule per flag: the syscall matches if any namespace bit is set.
        let per_flag = NAMESPACE_FLAGS
            .iter()
            .map(|f| {
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*f), *f)
                    .and_then(|c| SeccompRule::new(vec![c]))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (_, nr) in REFUSED_WITH_NAMESPACE_FLAGS {
            for n in with_x32(*nr) {
                refuse.insert(n, per_flag.clone());
            }
        }
        let refuse = compile(refuse, SeccompAction::Errno(libc::EPERM as u32))?;
        let clone3 = with_x32(libc::SYS_clone3)
            .into_iter()
            .map(|n| (n, Vec::new()))
            .collect();
        let clone3 = compile(clone3, SeccompAction::Errno(libc::ENOSYS as u32))?;
        Ok(Filters { refuse, clone3 })
    }

    /// Installs both filters on the calling thread (sets `no_new_privs` on the way).
    /// Allocation-free: a sandbox child calls it between clone and exec.
    pub fn install(&self) -> io::Result<()> {
        let os = |e: seccompiler::Error| match e {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
            _ => io::Error::from_raw_os_error(libc::EINVAL),
        };
        seccompiler::apply_filter(&self.refuse).map_err(os)?;
        seccompiler::apply_filter(&self.clone3).map_err(os)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_this_machine() {
        let f = Filters::new().unwrap();
        assert!(!f.refuse.is_empty() && !f.clone3.is_empty());
        // The classic filter has a 4096-instruction limit.
        assert!(f.refuse.len() < 4096, "{}", f.refuse.len());
    }
}
