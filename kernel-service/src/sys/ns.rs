//! Namespaces: run a closure inside another process's network namespace, and the private mount
//! namespace in which `cca.change` mounts its own procfs.
//!
//! `setns(2)` and `unshare(2)` change the calling *thread* for good, so nothing here ever calls
//! them on a caller's thread except the functions documented to do exactly that (meant for
//! short-lived threads that exit afterwards). [`run_in`] is the one "thread → setns → run →
//! join" pattern that the 4-tuple check, the namespace handle cache, `cca.*` and the benchmark
//! all use.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::cvt;

/// `/proc/PID/ns/net`.
pub fn net_path(pid: u32) -> String {
    format!("/proc/{pid}/ns/net")
}

/// Opens the network namespace of process `pid` (a handle that keeps the namespace alive).
pub fn open_net(pid: u32) -> io::Result<File> {
    File::open(net_path(pid))
}

/// Moves the calling thread into the network namespace `ns`.
fn enter_net(ns: &File) -> io::Result<()> {
    // SAFETY: setns on a valid, open namespace fd; it only changes this thread's namespace.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

/// Runs `f` on a fresh thread that first joins the network namespace `ns`, and waits for it.
///
/// Sockets and `/proc/sys/net` files opened by `f` belong to that namespace and stay bound to it
/// whichever thread uses them later. Blocking: call from a blocking context.
pub fn run_in<T, F>(ns: &File, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(s, move || -> io::Result<T> {
                enter_net(ns)?;
                Ok(f())
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// [`run_in`] the network namespace of process `pid`.
pub fn run_in_pid<T, F>(pid: u32, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    run_in(&open_net(pid)?, f)
}

/// [`run_in_pid`] without blocking the async caller: the thread reports back over a channel.
pub async fn run_in_pid_async<T, F>(pid: u32, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_in_async(open_net(pid)?, f).await
}

/// [`run_in`] the namespace `ns` without blocking the async caller (the thread reports back
/// over a channel).
pub async fn run_in_async<T, F>(ns: File, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let _ = tx.send(enter_net(&ns).map(|()| f()));
        })?;
    rx.await
        .map_err(|_| io::Error::other("namespace thread died"))?
}

/// Gives the CALLING thread a new, empty network namespace (tests and short-lived threads).
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare only changes the calling thread's namespaces.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) }).map(drop)
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Gives the CALLING thread its own filesystem attributes and mount namespace, with mounts no
/// longer propagating back to the namespace it came from.
fn private_mounts() -> io::Result<()> {
    let root = cstr("/")?;
    // SAFETY: unshare of CLONE_FS together with CLONE_NEWNS, which a thread of a multi-threaded
    // process may do; it only affects the calling thread.
    cvt(unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) })?;
    // SAFETY: valid NUL-terminated target; null source/type/data are allowed for a propagation
    // change.
    cvt(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Gives the CALLING thread a private mount namespace with a fresh procfs on `/proc`.
///
/// A fresh procfs has none of the read-only overlays Docker puts on `/proc/sys`; its net
/// sysctls resolve against the thread's network namespace. The mount disappears with the
/// thread's mount namespace when the thread exits.
pub fn private_procfs() -> io::Result<()> {
    private_mounts()?;
    let (proc_, target) = (cstr("proc")?, cstr("/proc")?);
    // SAFETY: valid NUL-terminated strings; mounts only in this thread's private namespace.
    cvt(unsafe {
        libc::mount(
            proc_.as_ptr(),
            target.as_ptr(),
            proc_.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Test support: gives the CALLING thread private mount and network namespaces in which
/// `path` is read-only, reproducing what Docker does to `/proc/sys` in a container.
#[cfg(test)]
pub(crate) fn readonly_view_in_private_ns(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    private_mounts()?;
    unshare_net()?;
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let none = std::ptr::null();
    // SAFETY: valid NUL-terminated path; bind mounts only in this thread's private namespace.
    unsafe {
        cvt(libc::mount(
            p.as_ptr(),
            p.as_ptr(),
            none,
            libc::MS_BIND,
            none.cast(),
        ))?;
        cvt(libc::mount(
            none,
            p.as_ptr(),
            none,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            none.cast(),
        ))?;
    }
    Ok(())
}

/// Identity of a namespace file (nsfs device and inode): equal iff the same namespace.
pub fn ns_id(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_in_own_namespace_sees_the_same_namespace() {
        let me = ns_id(Path::new("/proc/self/ns/net")).unwrap();
        let inside = run_in_pid(std::process::id(), || {
            ns_id(Path::new("/proc/thread-self/ns/net")).unwrap()
        })
        .unwrap();
        assert_eq!(me, inside);
        assert!(run_in_pid(u32::MAX, || ()).is_err());
    }

    #[tokio::test]
    async fn async_variant_returns_the_closure_value() {
        assert_eq!(run_in_pid_async(std::process::id(), || 7).await.unwrap(), 7);
    }
}
