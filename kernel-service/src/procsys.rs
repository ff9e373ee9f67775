//! Writing a per-network-namespace sysctl where `/proc/sys` is mounted read-only.
//!
//! Docker mounts `/proc/sys` read-only inside every container that is not `privileged`, so the
//! kernel service, when it runs in one (the compose testbed), cannot change a congestion control
//! through `/proc/sys` even with CAP_NET_ADMIN. A fresh procfs mount has no such overlay. The
//! write therefore happens on a short-lived thread that takes a private copy of the mount table
//! (`unshare(CLONE_FS | CLONE_NEWNS)`), mounts a new procfs over `/proc` in that copy only, and
//! writes there. Net sysctls resolve against the writing thread's network namespace, which the
//! helper thread inherits from its caller. When the thread exits its mount namespace goes away
//! with it: nothing is left mounted and no path outside procfs is touched.

use std::io;
use std::path::PathBuf;

/// Writes `value` to the sysctl `name` (dotted form, e.g. `net.ipv4.tcp_congestion_control`)
/// through a private procfs mount, in the calling thread's network namespace.
///
/// Needs CAP_SYS_ADMIN (mounts) and whatever the sysctl itself needs (CAP_NET_ADMIN for net).
pub fn write_private(name: &str, value: &str) -> io::Result<()> {
    let path = sysctl_path(name)?;
    let value = value.to_string();
    // A scoped thread inherits the caller's network namespace (it is cloned from the calling
    // thread) but gets its own fs/mount namespace, so the caller's view never changes.
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<()> {
            crate::sys::ns::private_procfs()?;
            std::fs::write(&path, value.as_bytes())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("sysctl writer thread panicked")))
    })
}

/// `/proc/sys/<name with dots as slashes>`, refusing anything that could leave `/proc/sys`.
fn sysctl_path(name: &str) -> io::Result<PathBuf> {
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad sysctl name",
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(name.replace('.', "/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_proc_sys() {
        assert_eq!(
            sysctl_path("net.ipv4.tcp_congestion_control").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/tcp_congestion_control")
        );
        for bad in ["", "net..ipv4", "../etc", "net/ipv4", "net.ipv4.", "a.b c"] {
            assert!(sysctl_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn is_root() -> bool {
        crate::sys::is_root()
    }

    fn read_cca() -> String {
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .unwrap()
            .trim()
            .to_string()
    }

    /// Reproduces the container situation (a read-only /proc/sys) in a private mount and network
    /// namespace of a test thread, and checks that the write still lands — in that netns only.
    #[test]
    fn writes_through_a_read_only_proc_sys() {
        if !is_root() {
            eprintln!("skipped: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
            return;
        }
        let host_before = read_cca();
        let inside = std::thread::spawn(|| {
            crate::sys::ns::readonly_view_in_private_ns(std::path::Path::new("/proc/sys")).unwrap();
            let before = read_cca();
            let target = if before == "reno" { "cubic" } else { "reno" };
            let direct = std::fs::write("/proc/sys/net/ipv4/tcp_congestion_control", target);
            assert_eq!(direct.unwrap_err().raw_os_error(), Some(libc::EROFS));
            write_private("net.ipv4.tcp_congestion_control", target).unwrap();
            (target.to_string(), read_cca())
        })
        .join()
        .unwrap();
        assert_eq!(inside.0, inside.1, "the private netns sees the new value");
        assert_eq!(
            read_cca(),
            host_before,
            "the test's own namespace is untouched"
        );
    }
}
