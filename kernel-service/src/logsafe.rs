//! Caller-supplied text in the node daemon's log and audit lines: the shared escaping of
//! [`leotest_proto::logsafe`] with this daemon's bound, so a label or a command cannot forge
//! log lines, hide text or flood the log.

pub use leotest_proto::logsafe::Untrusted;

/// Longest part of a caller-supplied value that reaches a log line, in bytes: container ids and
/// userids fit, and an audit line per request stays short.
pub const MAX_LOGGED: usize = 64;

/// Wraps caller-supplied text for a log line, cut after [`MAX_LOGGED`] bytes.
pub fn untrusted(value: &str) -> Untrusted<'_> {
    leotest_proto::logsafe::untrusted(value, MAX_LOGGED)
}
