//! Command-line flags of the sandbox's limits (flattened into the binary's flags).

use std::path::PathBuf;

use super::spec::{DEFAULT_JOB_UID_BASE, DEFAULT_JOB_UID_COUNT};
use super::uids::UidRange;
use super::SandboxConfig;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Limits on what clients can make the sandbox hold, each in total and per user.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Sandboxed jobs running at once on the node (one-shot commands included).
    #[arg(long, env = "LEOTEST_SANDBOX_MAX_JOBS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub sandbox_max_jobs: u32,
    /// Sandboxed jobs one user may run at once.
    #[arg(long, env = "LEOTEST_SANDBOX_MAX_JOBS_PER_USER", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub sandbox_max_jobs_per_user: u32,
    /// `job.watch` streams open at once on the node.
    #[arg(long, env = "LEOTEST_SANDBOX_MAX_WATCHERS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub sandbox_max_watchers: u32,
    /// `job.watch` streams one user may have open.
    #[arg(long, env = "LEOTEST_SANDBOX_MAX_WATCHERS_PER_USER", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub sandbox_max_watchers_per_user: u32,
    /// `job.watch` streams open on one job.
    #[arg(long, env = "LEOTEST_SANDBOX_MAX_WATCHERS_PER_JOB", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub sandbox_max_watchers_per_job: u32,
    /// Output kept per job, MiB (256 KiB of it in memory, the rest spilled to a file).
    #[arg(long, env = "LEOTEST_SANDBOX_OUTPUT_MAX_MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub sandbox_output_max_mib: u64,
    /// Largest reply of a one-shot command, KiB.
    #[arg(long, env = "LEOTEST_SANDBOX_ONESHOT_OUTPUT_MAX_KIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1048576))]
    pub sandbox_oneshot_output_max_kib: u64,
    /// Spill files of all jobs together, MiB.
    #[arg(long, env = "LEOTEST_SANDBOX_SPILL_MAX_MIB", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(0..=1048576))]
    pub sandbox_spill_max_mib: u64,
    /// Spill files of one user's jobs together, MiB.
    #[arg(long, env = "LEOTEST_SANDBOX_SPILL_MAX_PER_USER_MIB", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(0..=1048576))]
    pub sandbox_spill_max_per_user_mib: u64,
    /// Directory of the (unlinked) spill files [default: the temp directory].
    #[arg(long, env = "LEOTEST_SANDBOX_SPILL_DIR")]
    pub sandbox_spill_dir: Option<PathBuf>,
    /// First uid (and gid) of the range jobs get their own uid from; no host account may use it
    #[arg(long, env = "LEOTEST_SANDBOX_UID_BASE", default_value_t = DEFAULT_JOB_UID_BASE)]
    pub sandbox_uid_base: u32,
    /// Size of that range; 0: every job runs as uid/gid 65534, as before
    #[arg(long, env = "LEOTEST_SANDBOX_UID_COUNT", default_value_t = DEFAULT_JOB_UID_COUNT)]
    pub sandbox_uid_count: u32,
}

impl SandboxArgs {
    /// `base` with these limits applied.
    pub fn apply(&self, base: SandboxConfig) -> SandboxConfig {
        SandboxConfig {
            max_running: self.sandbox_max_jobs as usize,
            max_running_per_user: self.sandbox_max_jobs_per_user as usize,
            max_watchers: self.sandbox_max_watchers as usize,
            max_watchers_per_user: self.sandbox_max_watchers_per_user as usize,
            max_watchers_per_job: self.sandbox_max_watchers_per_job as usize,
            output_max: self.sandbox_output_max_mib * MIB,
            oneshot_output_max: self.sandbox_oneshot_output_max_kib * KIB,
            spill_max: self.sandbox_spill_max_mib * MIB,
            spill_max_per_user: self.sandbox_spill_max_per_user_mib * MIB,
            spill_dir: self
                .sandbox_spill_dir
                .clone()
                .unwrap_or(base.spill_dir.clone()),
            job_uids: (self.sandbox_uid_count > 0).then_some(UidRange {
                base: self.sandbox_uid_base,
                count: self.sandbox_uid_count,
            }),
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        s: SandboxArgs,
    }

    #[test]
    fn flag_defaults_are_the_config_defaults() {
        let t = T::try_parse_from(["x"]).unwrap();
        let d = SandboxConfig::default();
        let c = t.s.apply(SandboxConfig::default());
        assert_eq!(
            (c.max_running, c.max_running_per_user, c.max_watchers),
            (d.max_running, d.max_running_per_user, d.max_watchers)
        );
        assert_eq!(
            (c.max_watchers_per_user, c.max_watchers_per_job),
            (d.max_watchers_per_user, d.max_watchers_per_job)
        );
        assert_eq!(
            (
                c.output_max,
                c.oneshot_output_max,
                c.spill_max,
                c.spill_max_per_user
            ),
            (
                d.output_max,
                d.oneshot_output_max,
                d.spill_max,
                d.spill_max_per_user
            )
        );
        assert_eq!(c.job_uids, d.job_uids);
        let t = T::try_parse_from(["x", "--sandbox-uid-count", "0"]).unwrap();
        assert_eq!(t.s.apply(SandboxConfig::default()).job_uids, None);
        let t = T::try_parse_from(["x", "--sandbox-max-jobs-per-user", "2"]).unwrap();
        assert_eq!(t.s.apply(d).max_running_per_user, 2);
    }
}
