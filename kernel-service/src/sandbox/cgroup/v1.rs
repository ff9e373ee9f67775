//! cgroup v1: one directory per mounted controller hierarchy, joined by the child itself.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use super::{
    block_devices, io_err, kill_procs_in, read_key, read_u64, remove_dir_retry, write_file,
    CgroupError, CgroupVersion, JobCgroup,
};
use crate::sandbox::job::JobStats;
use crate::sandbox::spec::Limits;

/// cgroup v1: one directory per mounted controller hierarchy.
#[derive(Debug)]
pub struct V1Cgroup {
    dirs: BTreeMap<String, PathBuf>,
    /// The service's own cgroup per controller: where a charged thread goes back to.
    home: BTreeMap<String, PathBuf>,
}

/// Controllers a daemon thread working for the job joins ([`JobCgroup::thread_charge_files`]):
/// CPU time only. Memory is charged per process, and joining `pids` would spend one of the
/// job's own tasks.
const THREAD_CONTROLLERS: [&str; 2] = ["cpu", "cpuacct"];

impl V1Cgroup {
    pub(super) fn create(
        own: &BTreeMap<String, PathBuf>,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<Self, CgroupError> {
        let mut dirs = BTreeMap::new();
        for (ctrl, base) in own {
            dirs.insert(ctrl.clone(), base.join(parent).join(name));
        }
        let home = own
            .iter()
            .filter(|(c, _)| THREAD_CONTROLLERS.contains(&c.as_str()))
            .map(|(c, d)| (c.clone(), d.clone()))
            .collect();
        let cg = V1Cgroup { dirs, home };
        let res = cg.make_dirs().and_then(|()| cg.apply(limits));
        if let Err(e) = res {
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn unique_dirs(&self) -> Vec<&PathBuf> {
        let mut v: Vec<&PathBuf> = self.dirs.values().collect();
        v.sort();
        v.dedup();
        v
    }

    fn make_dirs(&self) -> Result<(), CgroupError> {
        for d in self.unique_dirs() {
            if let Some(p) = d.parent() {
                fs::create_dir_all(p).map_err(io_err("mkdir", p))?;
            }
            fs::create_dir(d).map_err(io_err("mkdir", d))?;
        }
        Ok(())
    }

    fn dir(&self, ctrl: &str) -> Option<&PathBuf> {
        self.dirs.get(ctrl)
    }

    fn apply(&self, l: &Limits) -> Result<(), CgroupError> {
        if let Some(d) = self.dir("cpu") {
            write_file(&d.join("cpu.cfs_period_us"), &l.cpu_period_us.to_string())?;
            write_file(&d.join("cpu.cfs_quota_us"), &l.cpu_quota_us.to_string())?;
        }
        if let Some(d) = self.dir("memory") {
            write_file(&d.join("memory.limit_in_bytes"), &l.memory_max.to_string())?;
            let memsw = d.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                let total = l.memory_max.saturating_add(l.swap_max);
                write_file(&memsw, &total.to_string())?;
            } else if l.swap_max == 0 {
                // Without swap accounting the best v1 can do is never choose to swap.
                write_file(&d.join("memory.swappiness"), "0")?;
            }
            write_file(
                &d.join("memory.soft_limit_in_bytes"),
                &l.memory_high.to_string(),
            )?;
        }
        if let Some(d) = self.dir("pids") {
            write_file(&d.join("pids.max"), &l.pids_max.to_string())?;
        }
        if let Some(d) = self.dir("blkio") {
            let files = [
                ("blkio.throttle.read_bps_device", l.io_read_bps),
                ("blkio.throttle.write_bps_device", l.io_write_bps),
                ("blkio.throttle.read_iops_device", l.io_read_iops),
                ("blkio.throttle.write_iops_device", l.io_write_iops),
            ];
            let mut applied = 0usize;
            let devs = block_devices();
            for dev in &devs {
                let mut ok = true;
                for (file, v) in files {
                    if fs::write(d.join(file), format!("{dev} {v}")).is_err() {
                        ok = false;
                    }
                }
                if ok {
                    applied += 1;
                } else {
                    tracing::debug!(device = %dev, "blkio throttle not supported on device");
                }
            }
            if applied == 0 && !devs.is_empty() {
                return Err(CgroupError::Unsupported(
                    "blkio throttling rejected for every block device".into(),
                ));
            }
        }
        Ok(())
    }
}

impl JobCgroup for V1Cgroup {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn procs_files(&self) -> Vec<PathBuf> {
        self.unique_dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    fn clone_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn thread_charge_files(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut pairs: Vec<(PathBuf, PathBuf)> = THREAD_CONTROLLERS
            .iter()
            .filter_map(|c| Some((self.dir(c)?.join("tasks"), self.home.get(*c)?.join("tasks"))))
            .collect();
        // cpu and cpuacct are often one hierarchy ("cpu,cpuacct"): join it once.
        pairs.sort();
        pairs.dedup();
        pairs
    }

    fn stats(&self) -> JobStats {
        let mut s = JobStats::default();
        if let Some(d) = self.dir("cpuacct") {
            s.cpu_usage_usec = read_u64(&d.join("cpuacct.usage")).map(|ns| ns / 1000);
        }
        if let Some(d) = self.dir("cpu") {
            s.cpu_throttled_periods = read_key(&d.join("cpu.stat"), "nr_throttled");
        }
        if let Some(d) = self.dir("memory") {
            s.memory_current = read_u64(&d.join("memory.usage_in_bytes"));
            s.memory_peak = read_u64(&d.join("memory.max_usage_in_bytes"));
            s.oom_kills = read_key(&d.join("memory.oom_control"), "oom_kill");
        }
        if let Some(d) = self.dir("pids") {
            s.pids_current = read_u64(&d.join("pids.current"));
            s.pids_limit_hits = read_key(&d.join("pids.events"), "max");
        }
        if let Some(d) = self.dir("blkio") {
            if let Ok(t) = fs::read_to_string(d.join("blkio.throttle.io_service_bytes_recursive")) {
                let (mut r, mut w) = (0u64, 0u64);
                for line in t.lines() {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if let [_, op, v] = f[..] {
                        let v: u64 = v.parse().unwrap_or(0);
                        match op {
                            "Read" => r = r.saturating_add(v),
                            "Write" => w = w.saturating_add(v),
                            _ => {}
                        }
                    }
                }
                s.io_read_bytes = Some(r);
                s.io_write_bytes = Some(w);
            }
        }
        s
    }

    fn kill_all(&self) {
        if let Some(d) = self.dir("pids").or_else(|| self.dir("memory")) {
            kill_procs_in(&d.join("cgroup.procs"));
        }
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let mut first = None;
        for d in self.unique_dirs() {
            if let Err(e) = remove_dir_retry(d) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
