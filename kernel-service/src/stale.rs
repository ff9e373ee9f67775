//! Stale grants: while the orchestrator is unreachable, optionally reuse a grant it gave the
//! same user a short while ago (`--stale-grant-window`, off by default; issue 22 item 2).
//!
//! A node behind a satellite link loses its uplink for tens of milliseconds to seconds at every
//! handover and longer when the dish is obstructed; every kernel decision is one orchestrator
//! round trip and fails closed. With a window W > 0, a decision whose call failed because the
//! orchestrator could not be reached (connection failure, UNAVAILABLE, time-out) is granted if
//! the orchestrator granted the same user within the last W. Never otherwise:
//! * an orchestrator answer of "denied" (or any other answer: an authentication refusal of the
//!   node, an error status) forgets the user's grant at once, so revocation still wins the
//!   moment the orchestrator is heard again;
//! * never past W after the last grant actually received;
//! * every reuse is counted (`leotest_kernel_stale_grants_total`) and logged.
//!
//! The trade-off: a user revoked while the link is down keeps access for up to W after the
//! last grant the node saw. With W = 0 (the default) behaviour is exactly the original's:
//! unreachable means denied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::logsafe::untrusted;
use crate::oracle::{AccessOracle, OracleError};

/// Most users remembered at once; past it, expired entries are dropped and, if still full, new
/// grants are not remembered (no reuse for them: fail closed), so memory stays bounded.
const MAX_USERS: usize = 10_000;

/// Longest window accepted (`--stale-grant-window`): a bound on how long a revoked user may
/// keep access through a long outage.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// Whether a failed call means "the orchestrator could not be reached" (and nothing else).
pub fn unreachable(e: &OracleError) -> bool {
    match e {
        OracleError::Deadline(_) => true,
        OracleError::Client(c) => c.is_transient(),
    }
}

/// The policy's state: when each user was last granted, decided with explicit instants.
#[derive(Debug)]
pub struct StaleGrants {
    window: Duration,
    last_grant: Mutex<HashMap<String, Instant>>,
}

impl StaleGrants {
    /// A policy reusing grants younger than `window` (zero: never).
    pub fn new(window: Duration) -> Self {
        StaleGrants {
            window: window.min(MAX_WINDOW),
            last_grant: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// Records an answer of the orchestrator at `now`: a grant is remembered, anything else
    /// (denied, refused, an error status) forgets the user.
    pub fn record(&self, userid: &str, granted: bool, now: Instant) {
        if !self.enabled() {
            return;
        }
        let Ok(mut map) = self.last_grant.lock() else {
            return;
        };
        if !granted {
            map.remove(userid);
            return;
        }
        if map.len() >= MAX_USERS && !map.contains_key(userid) {
            let window = self.window;
            map.retain(|_, at| now.saturating_duration_since(*at) < window);
            if map.len() >= MAX_USERS {
                return;
            }
        }
        map.insert(userid.to_string(), now);
    }

    /// The age of `userid`'s last grant when it may stand in for an unreachable orchestrator
    /// at `now`: strictly younger than the window.
    pub fn reusable(&self, userid: &str, now: Instant) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        let map = self.last_grant.lock().ok()?;
        let age = now.checked_duration_since(*map.get(userid)?)?;
        (age < self.window).then_some(age)
    }
}

/// Wraps the orchestrator oracle with the stale-grant policy.
pub struct StaleGrantOracle {
    inner: Arc<dyn AccessOracle>,
    grants: StaleGrants,
    reused: AtomicU64,
}

impl StaleGrantOracle {
    pub fn new(inner: Arc<dyn AccessOracle>, window: Duration) -> Self {
        StaleGrantOracle {
            inner,
            grants: StaleGrants::new(window),
            reused: AtomicU64::new(0),
        }
    }

    /// Decisions granted from a remembered grant because the orchestrator was unreachable.
    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl AccessOracle for StaleGrantOracle {
    async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError> {
        let result = self.inner.kernel_access(userid).await;
        let now = Instant::now();
        match &result {
            Ok(granted) => self.grants.record(userid, *granted, now),
            Err(e) if unreachable(e) => {
                if let Some(age) = self.grants.reusable(userid, now) {
                    self.reused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        userid = %untrusted(userid),
                        grant_age_ms = age.as_millis() as u64,
                        error = %e,
                        "orchestrator unreachable: reusing a recent grant (--stale-grant-window)"
                    );
                    return Ok(true);
                }
            }
            // The orchestrator answered, with a refusal of the node or an error: no reuse.
            Err(_) => self.grants.record(userid, false, now),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    const W: Duration = Duration::from_secs(30);

    /// Answers from a script, one per call.
    struct Scripted(Mutex<VecDeque<Result<bool, OracleError>>>);

    fn scripted(answers: Vec<Result<bool, OracleError>>) -> Arc<dyn AccessOracle> {
        Arc::new(Scripted(Mutex::new(answers.into())))
    }

    #[async_trait]
    impl AccessOracle for Scripted {
        async fn kernel_access(&self, _: &str) -> Result<bool, OracleError> {
            self.0
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Err(OracleError::Deadline(Duration::ZERO)))
        }
    }

    fn down() -> Result<bool, OracleError> {
        Err(OracleError::Deadline(Duration::from_secs(3)))
    }

    fn unavailable() -> Result<bool, OracleError> {
        Err(OracleError::Client(leotest_rpc::ClientError::Unavailable(
            "connection refused".into(),
        )))
    }

    #[tokio::test]
    async fn off_by_default_an_unreachable_orchestrator_denies() {
        let o = StaleGrantOracle::new(scripted(vec![Ok(true), down()]), Duration::ZERO);
        assert!(o.kernel_access("alice").await.unwrap());
        assert!(o.kernel_access("alice").await.is_err());
        assert_eq!(o.reused(), 0);
    }

    #[tokio::test]
    async fn a_recent_grant_stands_in_while_unreachable_and_is_counted() {
        let o = StaleGrantOracle::new(scripted(vec![Ok(true), down(), unavailable(), Ok(true)]), W);
        assert!(o.kernel_access("alice").await.unwrap());
        assert!(o.kernel_access("alice").await.unwrap(), "deadline");
        assert!(o.kernel_access("alice").await.unwrap(), "unavailable");
        assert!(o.kernel_access("alice").await.unwrap(), "answered again");
        assert_eq!(o.reused(), 2);
    }

    #[tokio::test]
    async fn never_after_a_denial() {
        let o = StaleGrantOracle::new(scripted(vec![Ok(true), Ok(false), down()]), W);
        assert!(o.kernel_access("alice").await.unwrap());
        assert!(!o.kernel_access("alice").await.unwrap());
        assert!(
            o.kernel_access("alice").await.is_err(),
            "revoked stays revoked"
        );
        assert_eq!(o.reused(), 0);
    }

    #[tokio::test]
    async fn never_for_another_user_or_after_a_refusal_of_the_node() {
        let refused = Err(OracleError::Client(
            leotest_rpc::ClientError::Unauthenticated("node token revoked".into()),
        ));
        let o = StaleGrantOracle::new(scripted(vec![Ok(true), down(), refused, down()]), W);
        assert!(o.kernel_access("alice").await.unwrap());
        assert!(
            o.kernel_access("bob").await.is_err(),
            "bob was never granted"
        );
        assert!(
            o.kernel_access("alice").await.is_err(),
            "an answer, not unreachable"
        );
        assert!(
            o.kernel_access("alice").await.is_err(),
            "the refusal forgot the grant"
        );
        assert_eq!(o.reused(), 0);
    }

    #[test]
    fn never_past_the_window() {
        let g = StaleGrants::new(W);
        let t0 = Instant::now();
        g.record("alice", true, t0);
        assert_eq!(g.reusable("alice", t0 + W / 2), Some(W / 2));
        assert_eq!(g.reusable("alice", t0 + W), None, "the window is exclusive");
        assert_eq!(g.reusable("alice", t0 + W * 2), None);
        // A fresh grant opens a fresh window.
        g.record("alice", true, t0 + W * 2);
        assert!(g.reusable("alice", t0 + W * 2 + W / 2).is_some());
    }

    #[test]
    fn the_window_is_capped_and_memory_bounded() {
        let g = StaleGrants::new(Duration::from_secs(86_400 * 365));
        let t0 = Instant::now();
        g.record("u", true, t0);
        assert_eq!(g.reusable("u", t0 + MAX_WINDOW), None);
        let g = StaleGrants::new(W);
        for i in 0..MAX_USERS + 10 {
            g.record(&format!("u{i}"), true, t0);
        }
        assert_eq!(g.last_grant.lock().unwrap().len(), MAX_USERS);
        // Once they expired, new users are remembered again.
        g.record("late", true, t0 + W);
        assert!(g.reusable("late", t0 + W).is_some());
    }
}
