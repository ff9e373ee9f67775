//! The daemon's own privileges (issue 23): `no_new_privs`, and only the capabilities it uses in
//! its bounding, permitted, effective and inheritable sets (ambient cleared).
//!
//! All of these are per *thread* and inherited by threads created afterwards: call
//! [`keep_only`] first thing in `main`, before any other thread (the async runtime, the
//! sandbox spawner) exists.

use std::io;

use super::cvt;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Capability numbers the daemon uses (include/uapi/linux/capability.h), and why.
pub const DAEMON_CAPS: [(u32, &str); 9] = [
    (
        1,
        "DAC_OVERRIDE: cgroup control files and module parameters",
    ),
    (2, "DAC_READ_SEARCH: /proc of other users' processes"),
    (5, "KILL: stopping sandbox jobs"),
    (6, "SETGID: sandbox jobs drop to their gid"),
    (7, "SETUID: sandbox jobs drop to their uid"),
    (8, "SETPCAP: sandbox jobs drop their bounding set"),
    (12, "NET_ADMIN: per-namespace TCP sysctls (cca.change)"),
    (19, "SYS_PTRACE: /proc/PID/ns/net of container processes"),
    (
        21,
        "SYS_ADMIN: setns, sandbox namespaces and mounts, private procfs",
    ),
];

/// Sets `no_new_privs` on the calling thread (inherited by every thread and child after it).
pub fn no_new_privs() -> io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// Drops every capability whose bit is not in `keep` from the calling thread's bounding set,
/// then from its permitted, effective and inheritable sets; clears the ambient set.
pub fn keep_only(keep: u64) -> io::Result<()> {
    for cap in 0..64u32 {
        if keep & (1 << cap) == 0 {
            // SAFETY: plain prctl; EINVAL past the last capability this kernel knows is expected.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        }
    }
    // SAFETY: plain prctl.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a version-3 header and two data structs, as capget(2) requires.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    })?;
    for (i, d) in data.iter_mut().enumerate() {
        let k = (keep >> (32 * i)) as u32;
        d.effective &= k;
        d.permitted &= k;
        d.inheritable &= k;
    }
    // SAFETY: the same header and data, now masked; capset only lowers this thread's sets.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) })
        .map(drop)
}

/// The mask of [`DAEMON_CAPS`].
pub fn daemon_mask() -> u64 {
    DAEMON_CAPS.iter().fold(0, |m, (c, _)| m | (1 << c))
}
