//! Job model: ids, states, exit information, cgroup statistics and the status snapshot.

use std::fmt;
use std::time::SystemTime;

/// Opaque job identifier: 32 lowercase hex characters (128 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id from the kernel's CSPRNG.
    pub fn random() -> std::io::Result<Self> {
        let mut buf = [0u8; 16];
        crate::sys::process::getrandom(&mut buf)?;
        Ok(JobId(buf.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Parses an id coming from a client; `None` unless it has the exact id shape.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| JobId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle state: RUNNING, then exactly one terminal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// The process (or its namespace) is alive.
    Running,
    /// Exited with status 0.
    Completed,
    /// Non-zero exit, killed by a signal or the time limit, or could not be started.
    Failed,
    /// Killed on a user's request.
    Stopped,
}

impl JobState {
    /// Wire name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "RUNNING",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Stopped => "STOPPED",
        }
    }

    /// True once the job can no longer change.
    pub fn is_terminal(self) -> bool {
        self != JobState::Running
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cgroup accounting of a job; `None` where this kernel/layout has no counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobStats {
    /// CPU time consumed, microseconds.
    pub cpu_usage_usec: Option<u64>,
    /// Periods in which the CPU quota throttled the job.
    pub cpu_throttled_periods: Option<u64>,
    /// Memory charged now, bytes.
    pub memory_current: Option<u64>,
    /// Highest memory charged, bytes.
    pub memory_peak: Option<u64>,
    /// Processes killed by the OOM killer inside the job.
    pub oom_kills: Option<u64>,
    /// Tasks alive in the job.
    pub pids_current: Option<u64>,
    /// Forks refused because of `pids.max`.
    pub pids_limit_hits: Option<u64>,
    /// Bytes read from block devices.
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    pub io_write_bytes: Option<u64>,
}

/// How the job's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// Normal exit with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// A point-in-time view of a job, as returned by status/list/stop.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    /// The job's id.
    pub id: JobId,
    /// LeoTest userid that started it.
    pub owner: String,
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// The uid (and gid) it runs as: its own, from the reserved range (see `uids`).
    pub uid: u32,
    /// Current state.
    pub state: JobState,
    /// How it ended, once it has.
    pub exit: Option<ExitInfo>,
    /// Why it failed or stopped, in words (time limit, OOM, exec error...).
    pub reason: Option<String>,
    /// Live stats while running, final stats afterwards.
    pub stats: JobStats,
    /// When it was started.
    pub started_at: SystemTime,
    /// When it reached a terminal state.
    pub finished_at: Option<SystemTime>,
}

impl JobStatus {
    /// Exit status if the process exited normally.
    pub fn exit_code(&self) -> Option<i32> {
        match self.exit {
            Some(ExitInfo::Code(c)) => Some(c),
            _ => None,
        }
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

impl fmt::Display for JobStatus {
    /// One line of `key=value` pairs; the wire format of `job.status` and `job.list`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exit = match self.exit {
            Some(ExitInfo::Code(c)) => format!("exit_code={c}"),
            Some(ExitInfo::Signal(s)) => format!("exit_code=- signal={s}"),
            None => "exit_code=-".to_string(),
        };
        let s = &self.stats;
        write!(
            f,
            "id={} state={} {} owner={} uid={} cpu_usage_usec={} memory_current={} memory_peak={} \
             io_read_bytes={} io_write_bytes={} pids_current={} oom_kills={}",
            self.id,
            self.state,
            exit,
            self.owner,
            self.uid,
            opt(s.cpu_usage_usec),
            opt(s.memory_current),
            opt(s.memory_peak),
            opt(s.io_read_bytes),
            opt(s.io_write_bytes),
            opt(s.pids_current),
            opt(s.oom_kills),
        )?;
        if let Some(r) = &self.reason {
            write!(f, " reason={:?}", r)?;
        }
        write!(f, " command={:?}", self.argv.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_parse_back() {
        let a = JobId::random().unwrap();
        let b = JobId::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(JobId::parse(a.as_str()), Some(a));
        assert_eq!(JobId::parse("../../etc"), None);
        assert_eq!(JobId::parse(&"A".repeat(32)), None);
    }

    #[test]
    fn status_line_shows_state_and_exit() {
        let st = JobStatus {
            id: JobId::parse(&"0".repeat(32)).unwrap(),
            owner: "alice".into(),
            argv: vec!["echo".into(), "hi".into()],
            uid: 1_879_048_200,
            state: JobState::Failed,
            exit: Some(ExitInfo::Signal(9)),
            reason: Some("time limit exceeded".into()),
            stats: JobStats::default(),
            started_at: SystemTime::UNIX_EPOCH,
            finished_at: None,
        };
        let line = st.to_string();
        assert!(line.contains("state=FAILED"), "{line}");
        assert!(line.contains("signal=9"), "{line}");
        assert!(line.contains(" uid=1879048200 "), "{line}");
        assert!(line.contains("reason=\"time limit exceeded\""), "{line}");
        assert!(!line.contains('\n'));
    }
}
