//! Sandbox configuration: resource limits, identity and bounds, with the documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::SandboxError;

const MIB: u64 = 1024 * 1024;

/// Upper bounds on what a single job request may carry.
pub const MAX_ARGS: usize = 256;
/// Longest single argument accepted, in bytes.
pub const MAX_ARG_LEN: usize = 4096;
/// Longest owner (LeoTest userid) accepted, in bytes.
pub const MAX_OWNER_LEN: usize = 256;

/// Resource limits applied to every job's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time allowed per period (v2 `cpu.max` first field, v1 `cpu.cfs_quota_us`).
    pub cpu_quota_us: u64,
    /// CPU accounting period (v2 `cpu.max` second field, v1 `cpu.cfs_period_us`).
    pub cpu_period_us: u64,
    /// Hard memory limit (v2 `memory.max`, v1 `memory.limit_in_bytes`).
    pub memory_max: u64,
    /// Reclaim threshold (v2 `memory.high`, v1 `memory.soft_limit_in_bytes`).
    pub memory_high: u64,
    /// Swap allowed on top of `memory_max` (v2 `memory.swap.max`, v1 via `memory.memsw.limit_in_bytes`).
    pub swap_max: u64,
    /// Read bandwidth per block device, bytes/s.
    pub io_read_bps: u64,
    /// Write bandwidth per block device, bytes/s.
    pub io_write_bps: u64,
    /// Read operations per second per block device.
    pub io_read_iops: u64,
    /// Write operations per second per block device.
    pub io_write_iops: u64,
    /// Maximum number of tasks (processes and threads) in the job.
    pub pids_max: u64,
    /// Wall-clock limit after which the job is killed and marked FAILED.
    pub wall_clock: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_quota_us: 10_000,
            cpu_period_us: 100_000,
            memory_max: 512 * MIB,
            memory_high: 384 * MIB,
            swap_max: 0,
            io_read_bps: 10 * MIB,
            io_write_bps: 5 * MIB,
            io_read_iops: 1000,
            io_write_iops: 1000,
            pids_max: 64,
            wall_clock: Duration::from_secs(600),
        }
    }
}

/// First uid of the default per-job range (0x70000000): far above distributions' system and
/// user ranges and the usual subordinate-id ranges (100000 + 65536 per user).
pub const DEFAULT_JOB_UID_BASE: u32 = 1_879_048_192;
/// Size of the default per-job range.
pub const DEFAULT_JOB_UID_COUNT: u32 = 65_536;

/// Everything the job manager needs to know; `Default` gives the documented policy.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Limits applied to `job.start` jobs.
    pub limits: Limits,
    /// Unprivileged uid the job runs as (never 0).
    pub uid: u32,
    /// Unprivileged gid the job runs as (never 0).
    pub gid: u32,
    /// A uid (and gid) of its own per running job from this reserved range, instead of
    /// `uid`/`gid` for every job (see `uids`); `None`: the shared ids.
    pub job_uids: Option<crate::sandbox::uids::UidRange>,
    /// Hostname inside the job's UTS namespace.
    pub hostname: String,
    /// Size of the job's private tmpfs working directory (mounted on `/tmp`).
    pub workdir_bytes: u64,
    /// Output bytes kept in memory per job before spilling to a file.
    pub output_memory_cap: usize,
    /// Output bytes kept per job in total; the rest is discarded with a marker.
    pub output_max: u64,
    /// Output bytes a one-shot command's reply may carry; the rest is cut with a marker.
    pub oneshot_output_max: u64,
    /// Directory for the (already unlinked) spill files.
    pub spill_dir: PathBuf,
    /// Spill bytes of all jobs together (finished jobs' spill is given up first).
    pub spill_max: u64,
    /// Spill bytes of one user's jobs together.
    pub spill_max_per_user: u64,
    /// Jobs allowed to run at the same time (one-shot commands included).
    pub max_running: usize,
    /// Jobs one user may run at the same time.
    pub max_running_per_user: usize,
    /// `job.watch` streams open at the same time.
    pub max_watchers: usize,
    /// `job.watch` streams one user may have open.
    pub max_watchers_per_user: usize,
    /// `job.watch` streams open on one job.
    pub max_watchers_per_job: usize,
    /// Finished jobs remembered for status/watch before the oldest are forgotten.
    pub max_finished: usize,
    /// Finished jobs remembered per user.
    pub max_finished_per_user: usize,
    /// Name of the cgroup directory created under the service's own cgroup.
    pub cgroup_parent: String,
    /// Time limit for the "any other line" one-shot commands.
    pub oneshot_time_limit: Duration,
    /// Sandboxes kept set up and waiting for a command (cgroup made and joined, namespaces
    /// and mounts done), so a job start only sends the command and execs; 0 makes each
    /// sandbox on demand. Each waiting one is a sleeping process with its own empty cgroup.
    pub prewarm: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            uid: 65534,
            gid: 65534,
            job_uids: Some(crate::sandbox::uids::UidRange {
                base: DEFAULT_JOB_UID_BASE,
                count: DEFAULT_JOB_UID_COUNT,
            }),
            hostname: "sandbox".to_string(),
            workdir_bytes: 64 * MIB,
            output_memory_cap: 256 * 1024,
            output_max: 64 * MIB,
            oneshot_output_max: MIB,
            spill_dir: std::env::temp_dir(),
            spill_max: 512 * MIB,
            spill_max_per_user: 128 * MIB,
            max_running: 16,
            max_running_per_user: 4,
            max_watchers: 256,
            max_watchers_per_user: 16,
            max_watchers_per_job: 8,
            max_finished: 256,
            max_finished_per_user: 64,
            cgroup_parent: "leotest-jobs".to_string(),
            oneshot_time_limit: Duration::from_secs(30),
            prewarm: 2,
        }
    }
}

impl SandboxConfig {
    /// Rejects configurations that would run jobs as root or without effective limits.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |m: &str| Err(SandboxError::Config(m.to_string()));
        if self.uid == 0 || self.gid == 0 {
            return bad("refusing to run jobs as root (uid/gid 0)");
        }
        let l = &self.limits;
        if l.cpu_quota_us == 0 || l.cpu_period_us < 1000 || l.cpu_period_us > 1_000_000 {
            return bad("cpu quota must be > 0 and period within 1000..=1000000 us");
        }
        if l.memory_max == 0 || l.memory_high == 0 || l.memory_high > l.memory_max {
            return bad("memory limits must be > 0 with memory_high <= memory_max");
        }
        if l.pids_max == 0 || l.wall_clock.is_zero() || self.oneshot_time_limit.is_zero() {
            return bad("pids_max and time limits must be > 0");
        }
        let host_ok = !self.hostname.is_empty()
            && self.hostname.len() <= 64
            && self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_ok {
            return bad("hostname must be 1-64 chars of [A-Za-z0-9.-]");
        }
        let name_ok = !self.cgroup_parent.is_empty()
            && self
                .cgroup_parent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return bad("cgroup_parent must be a plain directory name");
        }
        if self.prewarm > 64 {
            return bad("prewarm must be at most 64");
        }
        if self.output_memory_cap == 0 || self.max_running == 0 || self.workdir_bytes == 0 {
            return bad("output cap, max_running and workdir size must be > 0");
        }
        let per_user = [
            (self.max_running_per_user, self.max_running),
            (self.max_watchers_per_user, self.max_watchers),
            (self.max_watchers_per_job, self.max_watchers),
            (self.max_finished_per_user, self.max_finished),
        ];
        // A per-user limit above its total acts as the total (see `table::Quotas`).
        if per_user.iter().any(|(one, all)| *one == 0 || *all == 0) {
            return bad("job, watcher and finished-job limits must be > 0");
        }
        if self.oneshot_output_max == 0 {
            return bad("oneshot_output_max must be > 0");
        }
        Ok(())
    }
}

/// Checks an owner and argv coming from the network before anything is spawned.
pub fn validate_request(owner: &str, argv: &[String]) -> Result<(), SandboxError> {
    let bad = |m: &str| Err(SandboxError::InvalidRequest(m.to_string()));
    if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
        return bad("owner must be 1-256 bytes");
    }
    if argv.is_empty() || argv[0].is_empty() {
        return bad("empty command");
    }
    if argv.len() > MAX_ARGS {
        return bad("too many arguments");
    }
    if argv
        .iter()
        .any(|a| a.len() > MAX_ARG_LEN || a.contains('\0'))
    {
        return bad("argument too long or contains NUL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_issue() {
        let l = Limits::default();
        assert_eq!((l.cpu_quota_us, l.cpu_period_us), (10_000, 100_000));
        assert_eq!(l.memory_max, 512 * MIB);
        assert_eq!(l.memory_high, 384 * MIB);
        assert_eq!(l.swap_max, 0);
        assert_eq!((l.io_read_bps, l.io_write_bps), (10 * MIB, 5 * MIB));
        assert_eq!((l.io_read_iops, l.io_write_iops), (1000, 1000));
        assert_eq!(l.pids_max, 64);
        let c = SandboxConfig::default();
        assert!(c.validate().is_ok());
        // No single user can take a whole limit.
        assert!(c.max_running_per_user < c.max_running);
        assert!(c.max_watchers_per_user < c.max_watchers);
        assert!(c.max_finished_per_user < c.max_finished);
        assert!(c.spill_max_per_user < c.spill_max);
    }

    #[test]
    fn root_is_refused() {
        let c = SandboxConfig {
            uid: 0,
            ..SandboxConfig::default()
        };
        assert!(matches!(c.validate(), Err(SandboxError::Config(_))));
        let c = SandboxConfig {
            gid: 0,
            ..SandboxConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn requests_are_bounded() {
        assert!(validate_request("alice", &["ls".into()]).is_ok());
        assert!(validate_request("", &["ls".into()]).is_err());
        assert!(validate_request("alice", &[]).is_err());
        assert!(validate_request("alice", &["a\0b".into()]).is_err());
        assert!(validate_request("alice", &vec!["x".into(); MAX_ARGS + 1]).is_err());
        assert!(validate_request("alice", &["x".repeat(MAX_ARG_LEN + 1)]).is_err());
    }
}
