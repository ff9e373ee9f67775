//! cgroup v2: one directory in the unified hierarchy, joined at clone time.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{
    block_devices, io_err, kill_procs_in, read_key, read_u64, remove_dir_retry, write_file,
    CgroupError, CgroupVersion, JobCgroup,
};
use crate::sandbox::job::JobStats;
use crate::sandbox::spec::Limits;

/// cgroup v2: one directory in the unified hierarchy, joined at clone time.
#[derive(Debug)]
pub struct V2Cgroup {
    dir: PathBuf,
    fd: Option<OwnedFd>,
}

fn enable_controllers(dir: &Path, io: bool) -> Result<(), CgroupError> {
    let mut want = String::from("+cpu +memory +pids");
    if io {
        want.push_str(" +io");
    }
    write_file(&dir.join("cgroup.subtree_control"), &want)
}

impl V2Cgroup {
    pub(super) fn create(
        own: &Path,
        io: bool,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<Self, CgroupError> {
        if let Err(e) = enable_controllers(own, io) {
            // "No internal processes": a non-root cgroup holding our own process cannot
            // delegate, so move the service into a leaf first (as container runtimes do).
            let busy = matches!(&e, CgroupError::Io { source, .. } if source.raw_os_error() == Some(libc::EBUSY));
            if !busy {
                return Err(e);
            }
            let leaf = own.join(format!("{parent}-service"));
            if !leaf.exists() {
                fs::create_dir(&leaf).map_err(io_err("mkdir", &leaf))?;
            }
            write_file(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
            enable_controllers(own, io)?;
        }
        let pdir = own.join(parent);
        if !pdir.exists() {
            fs::create_dir(&pdir).map_err(io_err("mkdir", &pdir))?;
        }
        enable_controllers(&pdir, io)?;
        let dir = pdir.join(name);
        fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        let mut cg = V2Cgroup { dir, fd: None };
        match cg.apply(limits, io).and_then(|()| cg.open_fd()) {
            Ok(fd) => {
                cg.fd = Some(fd);
                Ok(cg)
            }
            Err(e) => {
                let _ = cg.remove();
                Err(e)
            }
        }
    }

    fn apply(&self, l: &Limits, io: bool) -> Result<(), CgroupError> {
        let d = &self.dir;
        write_file(
            &d.join("cpu.max"),
            &format!("{} {}", l.cpu_quota_us, l.cpu_period_us),
        )?;
        write_file(&d.join("memory.max"), &l.memory_max.to_string())?;
        write_file(&d.join("memory.high"), &l.memory_high.to_string())?;
        let swap = d.join("memory.swap.max");
        if swap.exists() {
            write_file(&swap, &l.swap_max.to_string())?;
        }
        write_file(&d.join("pids.max"), &l.pids_max.to_string())?;
        if io {
            for dev in block_devices() {
                let v = format!(
                    "{dev} rbps={} wbps={} riops={} wiops={}",
                    l.io_read_bps, l.io_write_bps, l.io_read_iops, l.io_write_iops
                );
                if fs::write(d.join("io.max"), v).is_err() {
                    tracing::debug!(device = %dev, "io.max not supported on device");
                }
            }
        }
        Ok(())
    }

    fn open_fd(&self) -> Result<OwnedFd, CgroupError> {
        fs::File::open(&self.dir)
            .map(OwnedFd::from)
            .map_err(io_err("open", &self.dir))
    }
}

impl JobCgroup for V2Cgroup {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn procs_files(&self) -> Vec<PathBuf> {
        if self.fd.is_some() {
            Vec::new()
        } else {
            vec![self.dir.join("cgroup.procs")]
        }
    }

    fn clone_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    fn stats(&self) -> JobStats {
        let d = &self.dir;
        let mut s = JobStats {
            cpu_usage_usec: read_key(&d.join("cpu.stat"), "usage_usec"),
            cpu_throttled_periods: read_key(&d.join("cpu.stat"), "nr_throttled"),
            memory_current: read_u64(&d.join("memory.current")),
            memory_peak: read_u64(&d.join("memory.peak")),
            oom_kills: read_key(&d.join("memory.events"), "oom_kill"),
            pids_current: read_u64(&d.join("pids.current")),
            pids_limit_hits: read_key(&d.join("pids.events"), "max"),
            ..JobStats::default()
        };
        if let Ok(t) = fs::read_to_string(d.join("io.stat")) {
            let (mut r, mut w) = (0u64, 0u64);
            for kv in t.split_whitespace() {
                if let Some(v) = kv.strip_prefix("rbytes=") {
                    r = r.saturating_add(v.parse().unwrap_or(0));
                } else if let Some(v) = kv.strip_prefix("wbytes=") {
                    w = w.saturating_add(v.parse().unwrap_or(0));
                }
            }
            s.io_read_bytes = Some(r);
            s.io_write_bytes = Some(w);
        }
        s
    }

    fn kill_all(&self) {
        let kill = self.dir.join("cgroup.kill");
        if fs::write(&kill, "1").is_err() {
            kill_procs_in(&self.dir.join("cgroup.procs"));
        }
    }

    fn remove(&self) -> Result<(), CgroupError> {
        remove_dir_retry(&self.dir)
    }
}
