//! Job cgroups: layout detection from /proc/self/mountinfo and v1/v2 drivers ([`v1`], [`v2`])
//! behind one trait.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::job::JobStats;
use super::spec::Limits;

pub mod v1;
pub mod v2;

pub use v1::V1Cgroup;
pub use v2::V2Cgroup;

/// Failure to detect, create, configure or remove a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Neither a usable v2 hierarchy nor the needed v1 controllers are mounted.
    #[error("no usable cgroup layout: {0}")]
    Unsupported(String),
    /// A cgroup file or directory operation failed.
    #[error("cgroup {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

pub(super) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Which cgroup API the machine's layout gave us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies (also "hybrid" machines whose v2 mount has no controllers).
    V1,
    /// Unified hierarchy with cpu, memory and pids delegated.
    V2,
}

/// One job's cgroup, whatever the version: the spawner joins it, the manager reads and removes it.
pub trait JobCgroup: Send + Sync + std::fmt::Debug {
    /// The API in use.
    fn version(&self) -> CgroupVersion;
    /// `cgroup.procs` files the child writes "0" into before exec (empty if `clone_fd` is used).
    fn procs_files(&self) -> Vec<PathBuf>;
    /// Directory fd for `clone3(CLONE_INTO_CGROUP)` (v2 only).
    fn clone_fd(&self) -> Option<BorrowedFd<'_>>;
    /// `(job tasks file, the service's own tasks file)` pairs a daemon thread that works for
    /// the job (its output reader) writes its tid into, so that the job's CPU limit and
    /// accounting cover that work too, and back into when done. cgroup v1 only: v2 keeps every
    /// thread of a process in one domain cgroup, so there it is empty.
    fn thread_charge_files(&self) -> Vec<(PathBuf, PathBuf)> {
        Vec::new()
    }
    /// Current accounting; fields the kernel does not provide stay `None`.
    fn stats(&self) -> JobStats;
    /// SIGKILLs every process still in the cgroup.
    fn kill_all(&self);
    /// Removes the cgroup directories (blocking; retries while the kernel drains them).
    fn remove(&self) -> Result<(), CgroupError>;

    /// The one cleanup of a job cgroup: kill whatever is left in it, then remove it (blocking;
    /// a failure is logged, there is nothing else to do about it).
    fn discard(&self) {
        self.kill_all();
        if let Err(e) = self.remove() {
            tracing::warn!(error = %e, "job cgroup cleanup failed");
        }
    }
}

/// A mount line from /proc/self/mountinfo, reduced to what detection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Root of the mount inside its filesystem (for cgroups: inside the hierarchy).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type (`cgroup`, `cgroup2`, ...).
    pub fstype: String,
    /// Superblock options (for v1: the controllers).
    pub super_options: Vec<String>,
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .and_then(|o| std::str::from_utf8(o).ok());
        if b[i] == b'\\' {
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                return None;
            }
            Some(MountEntry {
                root: unescape_mountinfo(pre[3]),
                mount_point: PathBuf::from(unescape_mountinfo(pre[4])),
                fstype: post[0].to_string(),
                super_options: post[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Parses /proc/self/cgroup into (controllers, path) pairs; v2 has no controllers.
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((ctrls, path.to_string()))
        })
        .collect()
}

fn join_hierarchy(mount: &MountEntry, cg_path: &str) -> PathBuf {
    let rel = if mount.root == "/" {
        cg_path
    } else {
        cg_path.strip_prefix(mount.root.as_str()).unwrap_or("/")
    };
    mount.mount_point.join(rel.trim_start_matches('/'))
}

const V1_REQUIRED: [&str; 3] = ["cpu", "memory", "pids"];
const V1_OPTIONAL: [&str; 2] = ["cpuacct", "blkio"];
const V2_REQUIRED: [&str; 3] = ["cpu", "memory", "pids"];

/// The detected layout: where the service's own cgroups are, per controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// v1: controller name → the service's own cgroup directory in that hierarchy.
    V1(BTreeMap<String, PathBuf>),
    /// v2: the service's own cgroup directory and whether `io` is available.
    V2 {
        /// Own cgroup directory in the unified hierarchy.
        dir: PathBuf,
        /// True when the hierarchy offers the io controller.
        io: bool,
    },
}

/// Detects the layout of this machine.
pub fn detect() -> Result<Layout, CgroupError> {
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    let pc = fs::read_to_string("/proc/self/cgroup")
        .map_err(io_err("read", Path::new("/proc/self/cgroup")))?;
    detect_from(&mi, &pc, |dir| {
        fs::read_to_string(dir.join("cgroup.controllers")).ok()
    })
}

/// Pure detection: v2 if the unified mount delegates cpu+memory+pids to us, else v1 controllers.
pub fn detect_from(
    mountinfo: &str,
    proc_cgroup: &str,
    v2_controllers: impl Fn(&Path) -> Option<String>,
) -> Result<Layout, CgroupError> {
    let mounts = parse_mountinfo(mountinfo);
    let own = parse_proc_cgroup(proc_cgroup);

    if let (Some(m), Some((_, path))) = (
        mounts.iter().find(|m| m.fstype == "cgroup2"),
        own.iter().find(|(c, _)| c.is_empty()),
    ) {
        let dir = join_hierarchy(m, path);
        // Our own cgroup lists what our parent delegated; the hierarchy root lists everything.
        let avail = v2_controllers(&dir).unwrap_or_default();
        let avail: Vec<&str> = avail.split_whitespace().collect();
        if V2_REQUIRED.iter().all(|c| avail.contains(c)) {
            let io = avail.contains(&"io");
            return Ok(Layout::V2 { dir, io });
        }
    }

    let mut dirs = BTreeMap::new();
    for want in V1_REQUIRED.iter().chain(V1_OPTIONAL.iter()) {
        let mount = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == want));
        let own_path = own
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == want))
            .map(|(_, p)| p.as_str());
        if let (Some(m), Some(p)) = (mount, own_path) {
            dirs.insert((*want).to_string(), join_hierarchy(m, p));
        }
    }
    let missing: Vec<&str> = V1_REQUIRED
        .iter()
        .copied()
        .filter(|c| !dirs.contains_key(*c))
        .collect();
    if missing.is_empty() {
        Ok(Layout::V1(dirs))
    } else {
        Err(CgroupError::Unsupported(format!(
            "v2 does not delegate cpu,memory,pids and v1 lacks {}",
            missing.join(",")
        )))
    }
}

impl Layout {
    /// The API this layout uses.
    pub fn version(&self) -> CgroupVersion {
        match self {
            Layout::V1(_) => CgroupVersion::V1,
            Layout::V2 { .. } => CgroupVersion::V2,
        }
    }

    /// Creates `<own>/<parent>/<name>` with `limits` applied; removes it again on any failure.
    pub fn create(
        &self,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<Box<dyn JobCgroup>, CgroupError> {
        match self {
            Layout::V1(dirs) => V1Cgroup::create(dirs, parent, name, limits)
                .map(|c| Box::new(c) as Box<dyn JobCgroup>),
            Layout::V2 { dir, io } => V2Cgroup::create(dir, *io, parent, name, limits)
                .map(|c| Box::new(c) as Box<dyn JobCgroup>),
        }
    }
}

impl Layout {
    /// Removes job cgroups left behind by a service that was killed (its waiting sandboxes die
    /// with it, their cgroups stay): directories under `parent` named like a job id, older than
    /// `min_age` (a cgroup being set up is empty only for milliseconds) and empty — the kernel
    /// refuses to remove a cgroup that still has tasks, so a live job's is never touched.
    /// Returns how many were removed.
    pub fn sweep_stale(&self, parent: &str, min_age: Duration) -> usize {
        let bases: Vec<PathBuf> = match self {
            Layout::V1(dirs) => {
                let mut v: Vec<PathBuf> = dirs.values().map(|d| d.join(parent)).collect();
                v.sort();
                v.dedup();
                v
            }
            Layout::V2 { dir, .. } => vec![dir.join(parent)],
        };
        let mut removed = 0;
        for base in bases {
            let Ok(rd) = fs::read_dir(&base) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let is_job = name
                    .to_str()
                    .is_some_and(|n| super::job::JobId::parse(n).is_some_and(|j| j.as_str() == n));
                let old = e
                    .metadata()
                    .ok()
                    .filter(|m| m.is_dir())
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= min_age);
                if is_job && old && fs::remove_dir(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

pub(super) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_err("write", path))
}

pub(super) fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Value of `key` in a flat-keyed file such as `cpu.stat` or `memory.events`.
pub(super) fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `MAJ:MIN` of every whole block device (throttling applies to whole disks only).
pub(super) fn block_devices() -> Vec<String> {
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut devs: Vec<String> = rd
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("dev")).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| s.contains(':'))
        .collect();
    devs.sort();
    devs
}

pub(super) fn remove_dir_retry(dir: &Path) -> Result<(), CgroupError> {
    // The kernel may still be releasing the last exiting tasks right after the job ends.
    let mut last = None;
    for _ in 0..100 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io_err("rmdir", dir)(e)),
        }
    }
    Err(io_err("rmdir", dir)(last.unwrap_or_else(|| {
        io::Error::from_raw_os_error(libc::EBUSY)
    })))
}

pub(super) fn kill_procs_in(procs: &Path) {
    // A thread of ours may sit in a job cgroup (its output reader, v1 `cpu`): never ourselves.
    let own = i32::try_from(std::process::id()).unwrap_or(0);
    if let Ok(text) = fs::read_to_string(procs) {
        for pid in text
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter(|p| *p != own)
        {
            crate::sys::process::kill_pid(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
8:pids:/
7:blkio:/
4:memory:/svc/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_without_v2_controllers_is_v1() {
        let l = detect_from(HYBRID_MOUNTINFO, HYBRID_CGROUP, |_| {
            Some("hugetlb\n".into())
        })
        .unwrap();
        let Layout::V1(dirs) = l else {
            panic!("expected v1, got {l:?}")
        };
        assert_eq!(
            dirs["memory"],
            PathBuf::from("/sys/fs/cgroup/memory/svc/abc")
        );
        assert_eq!(dirs["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(dirs["blkio"], PathBuf::from("/sys/fs/cgroup/blkio"));
    }

    #[test]
    fn unified_with_controllers_is_v2() {
        let mi = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let l = detect_from(mi, "0::/system.slice/leotest.service\n", |d| {
            assert_eq!(d, Path::new("/sys/fs/cgroup/system.slice/leotest.service"));
            Some("cpuset cpu io memory pids\n".into())
        })
        .unwrap();
        assert_eq!(
            l,
            Layout::V2 {
                dir: PathBuf::from("/sys/fs/cgroup/system.slice/leotest.service"),
                io: true
            }
        );
    }

    #[test]
    fn nothing_usable_is_an_error() {
        let mi = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert!(matches!(
            detect_from(mi, "0::/\n", |_| Some("hugetlb".into())),
            Err(CgroupError::Unsupported(_))
        ));
    }

    #[test]
    fn comounted_v1_and_mount_roots() {
        let mi =
            "32 31 0:29 /docker/x /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                  35 31 0:32 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  39 31 0:36 /docker/x /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let pc = "3:cpu,cpuacct:/docker/x\n2:memory:/docker/x/sub\n1:pids:/docker/x\n";
        let Layout::V1(d) = detect_from(mi, pc, |_| None).unwrap() else {
            panic!()
        };
        assert_eq!(d["cpu"], d["cpuacct"]);
        assert_eq!(d["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(d["memory"], PathBuf::from("/sys/fs/cgroup/memory/sub"));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        let m = parse_mountinfo("1 2 0:1 / /mnt/a\\040b rw - tmpfs t rw\n");
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/a b"));
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap().trim().to_string()
    }

    #[test]
    fn v2_writes_the_configured_limits() {
        // A plain directory stands in for cgroupfs: the files written are what the kernel gets.
        let own = tempfile::tempdir().unwrap();
        let layout = Layout::V2 {
            dir: own.path().into(),
            io: false,
        };
        let cg = layout
            .create("leotest-jobs", "j1", &Limits::default())
            .unwrap();
        let d = own.path().join("leotest-jobs/j1");
        assert_eq!(read(&d.join("cpu.max")), "10000 100000");
        assert_eq!(read(&d.join("memory.max")), (512u64 << 20).to_string());
        assert_eq!(read(&d.join("memory.high")), (384u64 << 20).to_string());
        assert_eq!(read(&d.join("pids.max")), "64");
        assert_eq!(
            read(&own.path().join("cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert!(cg.clone_fd().is_some() && cg.procs_files().is_empty());
        assert_eq!(cg.version(), CgroupVersion::V2);
    }

    #[test]
    fn sweep_removes_only_old_empty_job_directories() {
        let own = tempfile::tempdir().unwrap();
        let parent = own.path().join("leotest-jobs");
        let stale = parent.join("0123456789abcdef0123456789abcdef");
        let busy = parent.join("fedcba9876543210fedcba9876543210");
        let other = parent.join("not-a-job");
        for d in [&stale, &busy, &other] {
            fs::create_dir_all(d).unwrap();
        }
        // Stands in for a cgroup with tasks: the kernel refuses rmdir, as it does here.
        fs::write(busy.join("cgroup.procs"), "42\n").unwrap();
        let layout = Layout::V2 {
            dir: own.path().into(),
            io: false,
        };
        assert_eq!(
            layout.sweep_stale("leotest-jobs", Duration::from_secs(3600)),
            0
        );
        assert_eq!(layout.sweep_stale("leotest-jobs", Duration::ZERO), 1);
        assert!(!stale.exists() && busy.exists() && other.exists());
    }

    #[test]
    fn v1_writes_the_configured_limits_per_controller() {
        let root = tempfile::tempdir().unwrap();
        let mut dirs = BTreeMap::new();
        for c in ["cpu", "cpuacct", "memory", "pids"] {
            dirs.insert(c.to_string(), root.path().join(c));
        }
        let memdir = root.path().join("memory/leotest-jobs/j1");
        let layout = Layout::V1(dirs);
        let cg = layout.create("leotest-jobs", "j1", &Limits::default());
        assert!(cg.is_ok(), "{cg:?}");
        assert_eq!(
            read(&root.path().join("cpu/leotest-jobs/j1/cpu.cfs_quota_us")),
            "10000"
        );
        assert_eq!(
            read(&root.path().join("cpu/leotest-jobs/j1/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            read(&memdir.join("memory.limit_in_bytes")),
            (512u64 << 20).to_string()
        );
        assert_eq!(
            read(&memdir.join("memory.soft_limit_in_bytes")),
            (384u64 << 20).to_string()
        );
        // No memsw file in this fake: the fallback keeps the job from swapping.
        assert_eq!(read(&memdir.join("memory.swappiness")), "0");
        assert_eq!(
            read(&root.path().join("pids/leotest-jobs/j1/pids.max")),
            "64"
        );
        let procs = cg.unwrap().procs_files();
        assert_eq!(procs.len(), 4);
        assert!(procs
            .iter()
            .all(|p| p.ends_with("leotest-jobs/j1/cgroup.procs")));
    }
}
