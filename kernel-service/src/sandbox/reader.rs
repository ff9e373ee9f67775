//! The output reader of one job: a thread of the daemon that copies the job's pipe into its
//! [`OutputLog`], working for the job and paid for by it.
//!
//! Reading output costs the daemon about as much CPU as writing it costs the job. On a shared
//! pool thread that CPU was the daemon's own, outside every cgroup: four `cat /dev/zero` jobs
//! capped at 10 % each made the daemon use ~48 % of a core. So each job gets a thread of its
//! own which, once the job has written [`CHARGE_AFTER`] bytes, joins the job's CPU cgroup
//! (cgroup v1: `cpu`, `cpuacct`) until the output ends: from then on the job's quota throttles
//! its reader and `cpu_usage_usec` counts it. Not before: moving a thread between cgroups waits
//! for an RCU grace period (milliseconds), which the many jobs that print a few lines should
//! not pay for; the first [`CHARGE_AFTER`] bytes cost the daemon well under a millisecond.
//! cgroup v2 cannot place one thread of a process in another domain cgroup; there the reader
//! runs at nice 19 and its work is bounded by the output cap (reading stops there, see
//! [`output::pump`]).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::cgroup::JobCgroup;
use super::output::{self, OutputLog};

/// The pipe of a job whose log reached its cap (kept open, unread), or `None` at end of output.
pub type ReaderResult = Option<File>;

/// Output a job may write before its reader joins its cgroup (see the module doc).
pub const CHARGE_AFTER: u64 = 256 * 1024;

/// Lowest CPU priority: output flooding slows this thread, never the rest of the daemon.
const READER_NICE: i32 = 19;

fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), READER_NICE) {
        tracing::debug!(error = %e, "cannot lower the output reader's priority");
    }
}

/// Starts the reader of `src` into `log`, charged to `cg`; the receiver gets what
/// [`output::pump`] returned once the output ends or is full.
pub fn spawn(
    src: File,
    log: Arc<OutputLog>,
    cg: &dyn JobCgroup,
) -> oneshot::Receiver<ReaderResult> {
    let (tx, rx) = oneshot::channel();
    let pairs = cg.thread_charge_files();
    let body = move || {
        let mut pending = if pairs.is_empty() {
            // Never charged (cgroup v2): at least never ahead of the daemon's own work.
            lower_priority();
            None
        } else {
            Some(pairs)
        };
        let mut charged = None;
        let res = output::pump(src, &log, |total| {
            if total >= CHARGE_AFTER {
                if let Some(p) = pending.take() {
                    charged = Some(Charged::enter(p));
                }
            }
        });
        // Out of the job's cgroup before anyone is told: the job's cleanup removes it next.
        drop(charged);
        let _ = tx.send(res);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("job-output".into())
        .spawn(body)
    {
        // No thread for it (thread limit): the pipe's read end is closed with the closure, so
        // the job's writes fail (EPIPE, or SIGPIPE: its dispositions are the defaults); the
        // receiver reports "end of output" and the job's supervisor carries on.
        tracing::warn!(error = %e, "cannot start a job's output reader");
    }
    rx
}

/// This thread's membership of a job's CPU cgroup, undone on drop.
struct Charged {
    tid: String,
    /// The service's own `tasks` files to return to.
    home: Vec<PathBuf>,
}

impl Charged {
    fn enter(pairs: Vec<(PathBuf, PathBuf)>) -> Self {
        let tid = rustix::thread::gettid();
        let tid = tid.as_raw_nonzero().to_string();
        let mut home = Vec::new();
        for (job, back) in pairs {
            match std::fs::write(&job, &tid) {
                Ok(()) => home.push(back),
                Err(e) => {
                    tracing::warn!(error = %e, file = %job.display(), "output reader not charged to its job");
                }
            }
        }
        Charged { tid, home }
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        for back in &self.home {
            if let Err(e) = std::fs::write(back, &self.tid) {
                // The thread ends right after: the kernel takes it out of the job cgroup then.
                tracing::debug!(error = %e, file = %back.display(), "output reader stays charged until it exits");
            }
        }
    }
}
