//! Caller-supplied text in the orchestrator's log lines: the shared escaping of
//! [`leotest_proto::logsafe`] with this daemon's bound. Wrap every value a client sent (a
//! userid in failed-authentication lines, ids in requests):
//! `tracing::info!(userid = %untrusted(&id), ...)`.

pub use leotest_proto::logsafe::Untrusted;

/// Bytes of a value that are logged; the rest is replaced by a byte count. Large enough for
/// any valid id (256 bytes), small enough that a hostile value cannot flood.
pub const MAX_LOGGED: usize = 256;

/// Wraps caller-supplied text for a log line, cut after [`MAX_LOGGED`] bytes.
pub fn untrusted(value: &str) -> Untrusted<'_> {
    leotest_proto::logsafe::untrusted(value, MAX_LOGGED)
}
