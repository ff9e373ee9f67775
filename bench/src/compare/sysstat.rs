//! CPU time of a process from /proc/PID/stat, children included, and finding processes by
//! parent: the machine-independent cost figure of the comparison (CPU seconds per 10 000
//! requests) must count what a server hands to children it waits for (the original's
//! kernel service runs `sysctl` for every `cca.check`).

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Fields of /proc/PID/stat after the parenthesised command name (the name may hold spaces).
fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("malformed /proc/{pid}/stat"))?;
    Ok(rest.split_whitespace().map(str::to_string).collect())
}

fn clock_ticks() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        t => t as f64,
    }
}

/// utime + stime + cutime + cstime of `pid` (its own CPU and that of its reaped children).
pub(super) fn cpu_seconds(pid: u32) -> Result<f64> {
    let f = stat_fields(pid)?;
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let mut ticks = 0.0;
    for i in 11..=14 {
        ticks += f
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("/proc/{pid}/stat field {}", i + 3))?;
    }
    Ok(ticks / clock_ticks())
}

/// CPU seconds of a set of processes (server, database) between two points in time.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CpuUse {
    pub server: f64,
    /// The database process, when the server has one of its own (MongoDB-wire).
    pub database: Option<f64>,
}

/// A reading of [`CpuUse`] counters to subtract from a later one.
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuMark {
    server: f64,
    database: Option<f64>,
}

impl CpuMark {
    pub(super) fn take(server: u32, database: Option<u32>) -> Result<Self> {
        Ok(CpuMark {
            server: cpu_seconds(server)?,
            database: database.map(cpu_seconds).transpose()?,
        })
    }

    /// CPU used since `self`.
    pub(super) fn since(&self, server: u32, database: Option<u32>) -> Result<CpuUse> {
        let now = CpuMark::take(server, database)?;
        Ok(CpuUse {
            server: now.server - self.server,
            database: match (now.database, self.database) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            },
        })
    }
}

/// CPU seconds per 10 000 calls, when any call succeeded.
pub(super) fn per_10k(cpu: f64, calls: u64) -> Option<f64> {
    (calls > 0).then(|| cpu * 10_000.0 / calls as f64)
}

/// The parent PID of `pid`.
fn ppid(pid: u32) -> Option<u32> {
    stat_fields(pid).ok()?.get(1)?.parse().ok()
}

/// Children of `parent` whose command name (/proc/PID/comm) starts with `comm`.
fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| ppid(*pid) == Some(parent))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end().starts_with(comm))
        })
        .collect()
}

/// Waits for the one child of `parent` named `comm*` (a wrapper's real server process).
pub(super) fn wait_child(parent: u32, comm: &str, timeout: Duration) -> Result<u32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match children_named(parent, comm).as_slice() {
            [one] => return Ok(*one),
            [] if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            [] => bail!("process {parent} has no child named {comm}* after {timeout:?}"),
            many => bail!("process {parent} has several children named {comm}*: {many:?}"),
        }
    }
}

/// The Docker engine's PID (shared by everything on this machine), when it can be found.
pub(super) fn dockerd_pid() -> Option<u32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "dockerd")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_grows_while_busy() {
        let me = std::process::id();
        let a = cpu_seconds(me).expect("own stat");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        // Busy until the counter moves (one clock tick), bounded by wall time.
        while cpu_seconds(me).expect("own stat") <= a && t.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        assert!(x > 0);
        assert!(
            cpu_seconds(me).expect("own stat") > a,
            "CPU time did not grow"
        );
    }

    #[test]
    fn reaped_children_count() {
        let me = std::process::id();
        let before = cpu_seconds(me).expect("own stat");
        // A child that burns CPU and is waited for: its time lands in cutime/cstime.
        let st = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh");
        assert!(st.success());
        let f = stat_fields(me).expect("own stat");
        let children: f64 =
            f[13].parse::<f64>().expect("cutime") + f[14].parse::<f64>().expect("cstime");
        assert!(children > 0.0, "cutime+cstime {children}");
        assert!(cpu_seconds(me).expect("own stat") > before);
    }

    #[test]
    fn per_10k_scales_and_needs_calls() {
        assert_eq!(per_10k(2.0, 20_000), Some(1.0));
        assert_eq!(per_10k(2.0, 0), None);
    }

    #[test]
    fn finds_a_named_child() {
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let found = wait_child(std::process::id(), "sleep", Duration::from_secs(5));
        let _ = c.kill();
        let _ = c.wait();
        assert_eq!(found.expect("child"), c.id());
    }
}
