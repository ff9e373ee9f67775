//! Our own retries of idempotent multi-document writes.
//!
//! The driver retries single-document writes once after a failover (retryable writes, on
//! replica sets), but never `update_many`/`delete_many`. Those that sit on request paths (the
//! booking's removal of expired copies, tasks, deletes) are idempotent (a delete by filter, a
//! `$set` of a fixed value), so sending them again after a transient error (see
//! [`is_transient`]) is safe; a bounded number of attempts keeps a dead database from holding
//! a request for ever (each attempt waits at most the server-selection timeout).

use std::future::Future;
use std::time::Duration;

use super::errors::{backend, is_transient};
use crate::store::StoreResult;

/// Attempts of one idempotent write, the first included.
pub(super) const ATTEMPTS: u32 = 3;

/// Pause before the second attempt; doubled before the third.
const PAUSE: Duration = Duration::from_millis(250);

/// Runs `op` until it succeeds, fails for good, or [`ATTEMPTS`] transient failures.
/// Only for writes whose repetition changes nothing (a count returned by a repeated attempt
/// may be lower than what the first, unconfirmed one did).
pub(super) async fn idempotent<T, F, Fut>(what: &'static str, mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = mongodb::error::Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                tracing::warn!(what, attempt, error = %e, "transient MongoDB error: retrying");
                tokio::time::sleep(PAUSE.saturating_mul(1 << (attempt - 1))).await;
                attempt += 1;
            }
            Err(e) => return Err(backend(e)),
        }
    }
}
