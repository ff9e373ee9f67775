//! Bounded retry of transient failures; the only module that knows about the `backoff` crate.
//!
//! `backoff` is unmaintained (RUSTSEC-2025-0012); keeping it behind this module means
//! swapping it touches nothing else.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::ClientError;

/// How often and how long a call is retried after a transient error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first one; 1 disables retrying.
    pub max_attempts: u32,
    /// No new attempt starts after this much time since the first one.
    pub max_elapsed: Duration,
    /// Wait before the second attempt; later waits grow exponentially.
    pub initial_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// A policy that makes exactly one attempt.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

/// What to do with the outcome of one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after the policy's backoff.
    Retry,
    /// Return the error to the caller.
    GiveUp,
}

/// Decides whether attempt number `attempt` (1-based) that failed with `err` is retried.
pub fn classify(policy: &RetryPolicy, attempt: u32, err: &ClientError) -> Decision {
    if err.is_transient() && attempt < policy.max_attempts {
        Decision::Retry
    } else {
        Decision::GiveUp
    }
}

/// Runs `op` until it succeeds, fails permanently, or the policy's bounds are reached.
pub async fn with_retry<T, F, Fut>(policy: &RetryPolicy, op: F) -> Result<T, ClientError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    with_retry_counted(policy, &AtomicU64::new(0), op).await
}

/// [`with_retry`], adding one to `retries` for every attempt after the first.
pub async fn with_retry_counted<T, F, Fut>(
    policy: &RetryPolicy,
    retries: &AtomicU64,
    op: F,
) -> Result<T, ClientError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let schedule = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(policy.initial_backoff)
        .with_max_interval(policy.max_elapsed.max(policy.initial_backoff))
        .with_max_elapsed_time(Some(policy.max_elapsed))
        .build();
    let attempts = AtomicU32::new(0);
    backoff::future::retry(schedule, || {
        let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        if attempt > 1 {
            retries.fetch_add(1, Ordering::Relaxed);
        }
        let fut = op();
        async move {
            fut.await
                .map_err(|err| match classify(policy, attempt, &err) {
                    Decision::Retry => {
                        tracing::debug!(attempt, error = %err, "transient error, retrying");
                        backoff::Error::transient(err)
                    }
                    Decision::GiveUp => backoff::Error::permanent(err),
                })
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            max_elapsed: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(1),
        }
    }

    #[test]
    fn transient_errors_are_retried_until_attempts_run_out() {
        let p = policy(3);
        let unavailable = ClientError::from(tonic::Status::unavailable("down"));
        let deadline = ClientError::from(tonic::Status::deadline_exceeded("slow"));
        assert_eq!(classify(&p, 1, &unavailable), Decision::Retry);
        assert_eq!(classify(&p, 2, &deadline), Decision::Retry);
        assert_eq!(classify(&p, 3, &unavailable), Decision::GiveUp);
    }

    #[test]
    fn a_call_cut_by_a_dropped_connection_is_retried() {
        let cut = ClientError::from(tonic::Status::cancelled(
            "operation was canceled: connection closed",
        ));
        assert!(cut.is_transient(), "{cut}");
        assert_eq!(classify(&policy(3), 1, &cut), Decision::Retry);
    }

    #[test]
    fn a_call_whose_connection_broke_under_it_is_retried_a_servers_unknown_is_not() {
        // What a kernel service saw 3 s into a cut of its satellite uplink (scripts/e2e-sites.sh).
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection reset");
        let broken = tonic::Status::from_error(Box::new(io));
        assert_eq!(broken.code(), tonic::Code::Unknown);
        let broken = ClientError::from(broken);
        assert!(broken.is_transient(), "{broken}");
        let sent = ClientError::from(tonic::Status::unknown("transport error"));
        assert!(!sent.is_transient(), "{sent}");
    }

    #[test]
    fn auth_and_other_errors_are_never_retried() {
        let p = policy(10);
        for status in [
            tonic::Status::unauthenticated("bad token"),
            tonic::Status::permission_denied("no"),
            tonic::Status::invalid_argument("bad"),
            tonic::Status::unimplemented("later"),
            tonic::Status::internal("oops"),
        ] {
            let err = ClientError::from(status);
            assert!(!err.is_transient(), "{err}");
            assert_eq!(classify(&p, 1, &err), Decision::GiveUp, "{err}");
        }
    }

    #[test]
    fn status_codes_map_to_distinct_errors() {
        assert!(matches!(
            ClientError::from(tonic::Status::unauthenticated("x")),
            ClientError::Unauthenticated(_)
        ));
        assert!(matches!(
            ClientError::from(tonic::Status::permission_denied("x")),
            ClientError::PermissionDenied(_)
        ));
        assert!(matches!(
            ClientError::from(tonic::Status::deadline_exceeded("x")),
            ClientError::Timeout(_)
        ));
        let other = ClientError::from(tonic::Status::not_found("x"));
        assert_eq!(other.code(), Some(Code::NotFound));
    }

    #[tokio::test]
    async fn with_retry_stops_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(&policy(3), || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(ClientError::Unavailable("down".into())) }
        })
        .await;
        assert!(matches!(result, Err(ClientError::Unavailable(_))));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn retries_are_counted() {
        let retries = AtomicU64::new(0);
        let result: Result<(), _> = with_retry_counted(&policy(3), &retries, || async {
            Err(ClientError::Unavailable("down".into()))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(
            retries.load(Ordering::Relaxed),
            2,
            "3 attempts are 2 retries"
        );
    }

    #[tokio::test]
    async fn with_retry_makes_one_call_for_auth_errors() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(&policy(5), || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(ClientError::Unauthenticated("bad".into())) }
        })
        .await;
        assert!(matches!(result, Err(ClientError::Unauthenticated(_))));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn with_retry_returns_the_first_success() {
        let calls = AtomicU32::new(0);
        let result = with_retry(&policy(5), || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n < 2 {
                    Err(ClientError::Timeout("slow".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.ok(), Some(2));
    }

    #[tokio::test]
    async fn with_retry_gives_up_when_elapsed_budget_is_spent() {
        let p = RetryPolicy {
            max_attempts: u32::MAX,
            max_elapsed: Duration::ZERO,
            initial_backoff: Duration::from_millis(1),
        };
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(&p, || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(ClientError::Unavailable("down".into())) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
