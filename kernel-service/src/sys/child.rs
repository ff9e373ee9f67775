//! The calls a freshly cloned sandbox child makes between `clone3` and `execve`.
//!
//! The child is a copy of one thread of a multi-threaded process, so everything here is a raw,
//! async-signal-safe system call on data prepared before the clone: no allocation, no locks, no
//! glibc wrapper that synchronises with other threads. Errors are plain `errno` values
//! ([`io::Error`] from an OS code does not allocate). File descriptors are the child's own raw
//! numbers: it is about to replace its whole image, so nothing here owns or closes them for Rust.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;

use libc::c_char;

use super::cvt;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn unit<T: super::IsMinusOne>(rc: T) -> io::Result<()> {
    cvt(rc).map(drop)
}

fn ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

/// The current `errno`.
pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Ends the child at once (no atexit handlers, no destructors).
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// One `write(2)`; the result is ignored (used for reports to a parent that may be gone).
pub fn write_raw(fd: RawFd, buf: &[u8]) {
    // SAFETY: reads `buf.len()` bytes from a valid slice.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

/// Fills `buf` from `fd`; false on EOF or error.
pub fn read_exact(fd: RawFd, buf: &mut [u8]) -> bool {
    let mut got = 0usize;
    while got < buf.len() {
        let rest = &mut buf[got..];
        // SAFETY: writes at most `rest.len()` bytes into a valid slice.
        match cvt(unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) }) {
            Ok(0) => return false,
            Ok(n) => got += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Opens `path` for writing, writes `data` once, closes it (cgroup control files).
pub fn write_file(path: &CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: NUL-terminated path; the fd is closed below.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: valid slice; fd is ours.
    let res = unit(unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) });
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    res
}

/// Creates an empty file (a mount point for a file bind mount) and closes it.
pub fn create_file(path: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: NUL-terminated path; the fd is closed below.
    let fd = cvt(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            mode,
        )
    })?;
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    Ok(())
}

/// `dup2(from, to)`.
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on fd numbers.
    unit(unsafe { libc::dup2(from, to) })
}

/// A close-on-exec copy of `fd` numbered at least `min`.
pub fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: plain syscall on fd numbers.
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// `dup3(from, to, O_CLOEXEC)`.
pub fn dup3_cloexec(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on fd numbers.
    unit(unsafe { libc::dup3(from, to, libc::O_CLOEXEC) })
}

/// Closes `fd`.
pub fn close(fd: RawFd) {
    // SAFETY: plain syscall on an fd number the child owns.
    unsafe { libc::close(fd) };
}

/// Really closes every descriptor from `first` up (not just marks them close-on-exec).
pub fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall.
    unit(unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) })
}

/// Empties the signal mask and restores every signal's default disposition: the service
/// ignores SIGPIPE (Rust does) and may have inherited other ignored signals (SIGQUIT, SIGXFSZ,
/// ... from whoever started it), and ignored dispositions survive `execve`.
pub fn reset_signals() {
    // SAFETY: a zeroed sigset is a valid argument to sigemptyset; plain syscalls. Signals that
    // cannot be changed (SIGKILL, SIGSTOP, the C library's reserved ones) just fail.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // The raw call: glibc's wrappers refuse the signals it reserves (32, 33), which the
        // service may have inherited ignored all the same. The kernel's own `struct sigaction`
        // (handler, flags, restorer, mask) all zero is SIG_DFL with no flags.
        let dfl = [0u64; 4];
        for sig in 1..=64 {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
}

/// Sets both the soft and the hard limit of `resource` to `value`.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the local struct it is given; it only affects this process.
    unit(unsafe { libc::setrlimit(resource, &lim) })
}

/// `mount(2)`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    // SAFETY: NUL-terminated strings or null, as mount(2) accepts.
    unit(unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    })
}

/// Makes the mount at `path` and everything below it read-only and nosuid (`mount_setattr`).
pub fn make_readonly_recursive(path: &CStr) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid path and attribute struct of the size passed.
    unit(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// `pivot_root(new_root, put_old)`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated paths.
    unit(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
}

/// Lazily detaches the mount at `path` and everything below it.
pub fn umount_detach(path: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    unit(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) })
}

/// `chdir(2)`.
pub fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    unit(unsafe { libc::chdir(path.as_ptr()) })
}

/// `mkdir(2)`.
pub fn mkdir(path: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    unit(unsafe { libc::mkdir(path.as_ptr(), mode) })
}

/// A character device node.
pub fn mknod_char(path: &CStr, mode: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let dev = libc::makedev(major, minor);
    // SAFETY: NUL-terminated path.
    unit(unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | mode, dev) })
}

/// `symlink(target, link)`.
pub fn symlink(target: &CStr, link: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated paths.
    unit(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
}

/// `chmod(2)`.
pub fn chmod(path: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    unit(unsafe { libc::chmod(path.as_ptr(), mode) })
}

/// Sets the UTS namespace's hostname.
pub fn sethostname(name: &[u8]) -> io::Result<()> {
    // SAFETY: valid slice and its length.
    unit(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// SIGKILL when the creating thread exits (cleared by a uid change: set it again after one).
pub fn set_parent_death_kill() -> io::Result<()> {
    // SAFETY: plain prctl.
    unit(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

/// `no_new_privs`: no exec can grant privileges again (setuid bits, file capabilities).
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: plain prctl.
    unit(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) })
}

/// Empties the capability bounding and ambient sets (EINVAL past the last capability is
/// expected and ignored).
pub fn drop_bounding_capabilities() {
    for cap in 0..64 as libc::c_ulong {
        // SAFETY: plain prctl.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
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
}

/// No supplementary groups, then `gid` and `uid` for real, effective and saved ids.
///
/// Raw syscalls on purpose: glibc's set*id/setgroups wrappers broadcast the change to every
/// thread of the parent (which do not exist here) and would wait for them forever.
pub fn drop_to(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls with integer arguments (and a null, empty group list).
    unsafe {
        unit(libc::syscall(
            libc::SYS_setgroups,
            0,
            std::ptr::null::<libc::gid_t>(),
        ))?;
        unit(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
        unit(libc::syscall(libc::SYS_setresuid, uid, uid, uid))
    }
}

/// A NULL-terminated array of C strings for `execve` (the environment), built before the clone.
#[derive(Debug)]
pub struct CStrArray {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrArray {
    /// Takes ownership of `strings` and points the array at them.
    pub fn new(strings: Vec<CString>) -> Self {
        let ptrs = strings
            .iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        CStrArray {
            _strings: strings,
            ptrs,
        }
    }
}

/// Pre-allocated room for a command the child receives after the clone (it may not allocate):
/// `program\0arg0\0arg1\0...`, parsed in place into an argv array.
#[derive(Debug)]
pub struct ExecBuf {
    bytes: Vec<u8>,
    argv: Vec<*const c_char>,
    parsed: bool,
}

impl ExecBuf {
    /// Room for `max_bytes` of command text and `max_args` arguments.
    pub fn new(max_bytes: usize, max_args: usize) -> Self {
        ExecBuf {
            // calloc-backed: the untouched pages cost nothing until the child writes them.
            bytes: vec![0u8; max_bytes],
            argv: vec![std::ptr::null(); max_args + 1],
            parsed: false,
        }
    }

    /// The buffer to read the command into (forgets an earlier parse).
    pub fn buffer(&mut self) -> &mut [u8] {
        self.parsed = false;
        &mut self.bytes
    }

    /// Parses the first `len` bytes of the buffer; false if malformed or too many arguments.
    pub fn parse(&mut self, len: usize) -> bool {
        self.parsed = false;
        if len == 0 || len > self.bytes.len() || self.bytes[len - 1] != 0 {
            return false;
        }
        let data = &self.bytes[..len];
        let Some(program_end) = data.iter().position(|b| *b == 0) else {
            return false;
        };
        let mut start = program_end + 1;
        let mut n = 0usize;
        while start < len {
            if n + 1 >= self.argv.len() {
                return false;
            }
            self.argv[n] = data[start..].as_ptr().cast();
            n += 1;
            // The last byte is NUL, so every string ends inside `data`.
            let end = data[start..].iter().position(|b| *b == 0).unwrap_or(0);
            start += end + 1;
        }
        self.argv[n] = std::ptr::null();
        self.parsed = n > 0;
        self.parsed
    }

    /// Replaces the process image with the parsed command; returns only on failure.
    pub fn exec(&self, envp: &CStrArray) -> io::Error {
        if !self.parsed {
            return io::Error::from_raw_os_error(libc::EINVAL);
        }
        // SAFETY: after a successful parse, the program and every argv entry point at
        // NUL-terminated strings inside `bytes` (unchanged since: `buffer` needs `&mut self`),
        // and both arrays end with a null pointer.
        unsafe {
            libc::execve(
                self.bytes.as_ptr().cast(),
                self.argv.as_ptr(),
                envp.ptrs.as_ptr(),
            )
        };
        io::Error::last_os_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_in_place() {
        let mut b = ExecBuf::new(64, 3);
        let msg = b"/bin/echo\0echo\0hi\0";
        b.buffer()[..msg.len()].copy_from_slice(msg);
        assert!(b.parse(msg.len()));
        assert!(!b.parse(msg.len() - 1), "missing final NUL");
        let msg = b"/bin/x\0a\0b\0c\0d\0";
        b.buffer()[..msg.len()].copy_from_slice(msg);
        assert!(!b.parse(msg.len()), "more arguments than room");
        let msg = b"/bin/x\0";
        b.buffer()[..msg.len()].copy_from_slice(msg);
        assert!(!b.parse(msg.len()), "no argv[0]");
        assert!(!b.parse(65));
    }
}
