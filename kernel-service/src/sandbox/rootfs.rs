//! The job's root filesystem: a small tmpfs holding only what commands need, read-only.
//!
//! Instead of the host's tree, a job sees a fresh tmpfs root with read-only bind mounts of the
//! host's program and library directories (`/usr`, `/bin`, `/sbin`, `/lib*`; a symlink on the
//! host, as on merged-/usr systems, stays a symlink), a minimal `/etc` ([`ETC`]: users and
//! groups, name-service and loader configuration, time zone), a `/dev` with only `null`,
//! `zero`, `full`, `random`, `urandom` and `tty` (plus the `/proc/self/fd` links), a fresh
//! `/proc` of its own PID namespace and its private tmpfs `/tmp`. There is no `/sys` (so no
//! host interfaces under `/sys/class/net`), no `/home`, `/root`, `/var`, `/run` or `/opt`, and
//! nothing else of the host's `/etc`.
//!
//! The plan is made once per manager from the host's layout ([`RootPlan::detect`]); each
//! sandbox child carries it out with raw calls ([`RootPlan::enter`]): the tmpfs is mounted over
//! a staging directory of its private copy of the mount tree, populated, made the root with
//! `pivot_root`, the host's tree detached, and the whole new tree made read-only and nosuid
//! before `/tmp` and `/proc` are mounted on it. All of it happens before a warm sandbox waits
//! for its command, so it adds nothing to a job's start.

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

use crate::sys::child as sys;

use super::stage::Stage;

/// The job's private writable directory (a tmpfs) and its working directory.
pub const WORKDIR: &str = "/tmp";
/// [`WORKDIR`] for the child's raw calls.
pub(super) const WORKDIR_C: &CStr = c"/tmp";

/// Top-level host directories bound read-only (or mirrored as symlinks) when present.
pub const TOP: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Entries of the host's `/etc` a job sees (files, directories or symlinks), when present.
pub const ETC: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "alternatives",
    "services",
    "protocols",
    "os-release",
    "debian_version",
    "mtab",
];
/// Device nodes bound from the host's `/dev`.
pub const DEV: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// Links into `/proc/self/fd` that shells and programs expect under `/dev`.
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];
/// Where the new root is assembled: an existing directory of the host, covered only in the
/// child's own mount namespace.
const STAGING: &str = "/tmp";

/// One step of building the root, with paths relative to the new root.
#[derive(Debug, Clone)]
enum Entry {
    Dir(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        dir: bool,
    },
}

/// How to build a job's root; see the module docs.
#[derive(Debug, Clone)]
pub struct RootPlan {
    staging: CString,
    root_opts: CString,
    workdir_opts: CString,
    entries: Vec<Entry>,
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// The entry that reproduces host path `host` at `rel` in the new root, if the host has it.
fn mirror(host: &str, rel: &str) -> io::Result<Option<Entry>> {
    let meta = match std::fs::symlink_metadata(host) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let entry = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(host)?;
        Entry::Symlink {
            target: cstring(&target.to_string_lossy())?,
            link: cstring(rel)?,
        }
    } else if meta.is_dir() || meta.is_file() || host.starts_with("/dev/") {
        Entry::Bind {
            src: cstring(host)?,
            dst: cstring(rel)?,
            dir: meta.is_dir(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(entry))
}

impl RootPlan {
    /// Plans the root from this host's layout; `workdir_opts` are the tmpfs options of `/tmp`.
    pub fn detect(workdir_opts: &str) -> io::Result<Self> {
        if !Path::new(STAGING).is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the sandbox needs a directory {STAGING} to build job roots on"),
            ));
        }
        let mut entries = vec![
            Entry::Dir(cstring("dev")?),
            Entry::Dir(cstring("proc")?),
            Entry::Dir(cstring("tmp")?),
            Entry::Dir(cstring("etc")?),
        ];
        for name in TOP {
            entries.extend(mirror(&format!("/{name}"), name)?);
        }
        for name in ETC {
            entries.extend(mirror(&format!("/etc/{name}"), &format!("etc/{name}"))?);
        }
        for name in DEV {
            entries.extend(mirror(&format!("/dev/{name}"), &format!("dev/{name}"))?);
        }
        for (link, target) in DEV_LINKS {
            entries.push(Entry::Symlink {
                target: cstring(target)?,
                link: cstring(&format!("dev/{link}"))?,
            });
        }
        Ok(RootPlan {
            staging: cstring(STAGING)?,
            root_opts: cstring("size=1m,nr_inodes=1024,mode=0755")?,
            workdir_opts: cstring(workdir_opts)?,
            entries,
        })
    }

    /// Host paths the job sees, for logs and tests (`/dev/*`, `/proc`, `/tmp` aside).
    pub fn visible(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Bind { dst, .. } => Some(format!("/{}", dst.to_string_lossy())),
                Entry::Symlink { link, .. } => Some(format!("/{}", link.to_string_lossy())),
                Entry::Dir(_) => None,
            })
            .collect()
    }

    /// Builds the root and enters it (in the sandbox child: raw calls only).
    pub fn enter(&self) -> Result<(), (Stage, io::Error)> {
        let step = |stage: Stage| move |e: io::Error| (stage, e);
        // Keep every mount below from propagating back into the host's namespace.
        sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
            .map_err(step(Stage::MountPrivate))?;
        sys::mount(
            Some(c"tmpfs"),
            &self.staging,
            Some(c"tmpfs"),
            libc::MS_NOSUID,
            Some(&self.root_opts),
        )
        .map_err(step(Stage::MountRoot))?;
        sys::chdir(&self.staging).map_err(step(Stage::MountRoot))?;
        for e in &self.entries {
            self.make(e).map_err(step(Stage::MountRoot))?;
        }
        // pivot_root(".", "."): the host's root ends up stacked on the new one; detach it.
        sys::pivot_root(c".", c".").map_err(step(Stage::PivotRoot))?;
        sys::umount_detach(c".").map_err(step(Stage::PivotRoot))?;
        sys::chdir(c"/").map_err(step(Stage::PivotRoot))?;
        sys::make_readonly_recursive(c"/").map_err(step(Stage::MountReadOnly))?;
        sys::mount(
            Some(c"tmpfs"),
            WORKDIR_C,
            Some(c"tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&self.workdir_opts),
        )
        .map_err(step(Stage::MountWorkdir))?;
        sys::mount(
            Some(c"proc"),
            c"/proc",
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )
        .map_err(step(Stage::MountProc))
    }

    fn make(&self, e: &Entry) -> io::Result<()> {
        match e {
            Entry::Dir(p) => sys::mkdir(p, 0o755),
            Entry::Symlink { target, link } => sys::symlink(target, link),
            Entry::Bind { src, dst, dir } => {
                if *dir {
                    sys::mkdir(dst, 0o755)?;
                } else {
                    sys::create_file(dst, 0o644)?;
                }
                sys::mount(
                    Some(src),
                    dst,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None::<&CStr>,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_mirrors_the_host_and_keeps_secrets_out() {
        let plan = RootPlan::detect("size=1m").unwrap();
        let seen = plan.visible();
        assert!(seen.iter().any(|p| p == "/usr"), "{seen:?}");
        assert!(seen.iter().any(|p| p == "/dev/null"), "{seen:?}");
        for hidden in [
            "/etc/shadow",
            "/root",
            "/home",
            "/var",
            "/sys",
            "/etc/hostname",
        ] {
            assert!(!seen.iter().any(|p| p == hidden), "{hidden} in {seen:?}");
        }
    }
}
