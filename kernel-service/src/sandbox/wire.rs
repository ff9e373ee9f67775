//! Text replies of the job commands on port 9000, so the broker's dispatch stays one line each.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{output, JobManager};
use crate::protocol::error_reply;

/// What the original answered to every non-whitelisted line; kept when a command printed nothing.
pub const COMMAND_EXECUTED: &[u8] = b"Command executed.";

/// A watcher whose client does not accept a write for this long is dropped.
pub const WATCH_STALL: Duration = Duration::from_secs(30);

/// `job.start CMD ARGS...` → the new job id and a newline.
pub async fn job_start(m: &JobManager, caller: &str, argv: Vec<String>) -> Vec<u8> {
    match m.start(caller, argv).await {
        Ok(id) => format!("{id}\n").into_bytes(),
        Err(e) => error_reply(&e),
    }
}

/// `job.status ID` → one `key=value` status line.
pub fn job_status(m: &JobManager, caller: &str, is_admin: bool, id: &str) -> Vec<u8> {
    match m.status(caller, is_admin, id) {
        Ok(st) => format!("{st}\n").into_bytes(),
        Err(e) => error_reply(&e),
    }
}

/// `job.stop ID` → the status line after stopping (unchanged if it had already finished).
pub async fn job_stop(m: &JobManager, caller: &str, is_admin: bool, id: &str) -> Vec<u8> {
    match m.stop(caller, is_admin, id).await {
        Ok(st) => format!("{st}\n").into_bytes(),
        Err(e) => error_reply(&e),
    }
}

/// `job.list` → one status line per visible job, oldest first (empty if none).
pub fn job_list(m: &JobManager, caller: &str, is_admin: bool) -> Vec<u8> {
    m.list(caller, is_admin)
        .iter()
        .map(|st| format!("{st}\n"))
        .collect::<String>()
        .into_bytes()
}

/// `job.watch ID` → the job's output from its first byte, live until it ends or the client
/// leaves (closes its side, or resets) or stalls. Errors (unknown id, a watcher limit) are
/// written as an `error:` line.
pub async fn job_watch<S>(
    m: &JobManager,
    caller: &str,
    is_admin: bool,
    id: &str,
    out: &mut S,
) -> io::Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match m.watch(caller, is_admin, id) {
        Ok(stream) => output::forward(stream, out, WATCH_STALL).await,
        Err(e) => {
            out.write_all(&error_reply(&e)).await?;
            Ok(0)
        }
    }
}

/// Any other line: split on whitespace like the original, run it to completion in the sandbox
/// under the one-shot time limit, reply with its output (or `Command executed.` if silent).
pub async fn oneshot(m: &JobManager, caller: &str, line: &str) -> Vec<u8> {
    let argv: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    match m.run_oneshot(caller, argv, m.oneshot_time_limit()).await {
        Ok(o) if o.output.is_empty() => COMMAND_EXECUTED.to_vec(),
        Ok(o) => o.output,
        Err(e) => error_reply(&e),
    }
}
