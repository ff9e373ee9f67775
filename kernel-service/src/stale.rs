//! Stale grants: while the orchestrator is unreachable, optionally reuse a grant it gave the
//! same user a short while ago (`--stale-grant-window`, off by default; issue 22 item 2).
//!
//! A node behind a satellite link loses its uplink for tens of milliseconds to seconds at every
//! handover and longer when the dish is obstructed; every kernel decision is one orchestrator
//! round trip and fails closed. With a window W > 0, a decision whose call failed because the
//! orchestrator could not be reached (connection failure, UNAVAILABLE, time-out) is granted if
//! the orchestrator granted the same user within the last W. Never otherwise:
//! * an orchestrator answer of "denied" (or a refusal of the node: UNAUTHENTICATED,
//!   PERMISSION_DENIED) forgets the user's grant at once, so revocation still wins the moment
//!   the orchestrator is heard again; an error status that decides nothing about the user
//!   (INTERNAL, UNKNOWN: also what a call gets when its connection breaks under it) counts as
//!   not heard;
//! * never past W after the last grant actually received;
//! * every reuse is counted (`leotest_kernel_stale_grants_total`) and logged.
//!
//! "Could not be reached" includes "has not answered yet": a satellite link holds a request
//! through a handover gap or a retransmission for far longer than its round trip, so a user
//! with a reusable grant waits only about 2.5 round trips (see [`StaleGrantOracle`]); the call
//! goes on in the background and its answer, a denial included, counts for the next decision.
//!
//! The trade-off: a user revoked while the link is down or slow keeps access until the node
//! hears the orchestrator's next answer for that user, and never for more than W after the
//! last grant the node saw. With W = 0 (the default) behaviour is exactly the original's:
//! unreachable means denied.

use std::collections::{HashMap, HashSet};
use std::future::Future;
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

/// Whether a failed call leaves the user's grant standing: the orchestrator was not reached,
/// did not answer in time, or answered an error status that decides nothing about the user
/// (INTERNAL, UNKNOWN — also what a call gets when its connection breaks under it —
/// RESOURCE_EXHAUSTED, ...). A refusal of the node (UNAUTHENTICATED, PERMISSION_DENIED) or
/// a local configuration error (TLS trust, credentials) is not: it forgets the grant.
pub fn unreachable(e: &OracleError) -> bool {
    match e {
        OracleError::Deadline(_) => true,
        OracleError::Client(c) => {
            c.is_transient() || matches!(c, leotest_rpc::ClientError::Status { .. })
        }
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

    /// True when grants may be reused (the window is not zero).
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

/// Tokio's clock (the real one, or a test's paused one), as a std instant.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The shortest time a decision waits for the orchestrator before a recent grant answers it.
const MIN_HEDGE: Duration = Duration::from_millis(20);

/// The longest: past it the link is not slow but gone, and the call's own deadline decides.
const MAX_HEDGE: Duration = Duration::from_secs(1);

/// Wraps the orchestrator oracle with the stale-grant policy.
///
/// A decision for a user with a reusable grant waits for the orchestrator only about
/// 2.5 round trips (2.5 x the smoothed time of its answers, within [`MIN_HEDGE`, `MAX_HEDGE`]);
/// if no answer came by then (a handover gap, a lost segment waiting for its retransmission),
/// the grant answers it and the call goes on in the background, at most one per user, so that
/// its answer, a denial included, still counts for the next decision.
pub struct StaleGrantOracle {
    inner: Arc<dyn AccessOracle>,
    state: Arc<State>,
}

/// What the wrapper and its background calls share.
struct State {
    grants: StaleGrants,
    reused: AtomicU64,
    /// Smoothed time of the orchestrator's answers, in microseconds (0: none yet).
    srtt_us: AtomicU64,
    /// Users with a call finishing in the background (at most one each, at most MAX_USERS).
    background: Mutex<HashSet<String>>,
}

impl StaleGrantOracle {
    /// Wraps `inner`, reusing a user's grant younger than `window` when the call is slow.
    pub fn new(inner: Arc<dyn AccessOracle>, window: Duration) -> Self {
        StaleGrantOracle {
            inner,
            state: Arc::new(State {
                grants: StaleGrants::new(window),
                reused: AtomicU64::new(0),
                srtt_us: AtomicU64::new(0),
                background: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Decisions granted from a remembered grant because the orchestrator was unreachable or
    /// had not answered within the hedge.
    pub fn reused(&self) -> u64 {
        self.state.reused.load(Ordering::Relaxed)
    }
}

impl State {
    /// How long a decision with a reusable grant waits for the orchestrator (None: no answer
    /// timed yet, so no idea of the round trip: wait for the call).
    fn hedge(&self) -> Option<Duration> {
        match self.srtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some((Duration::from_micros(us) * 5 / 2).clamp(MIN_HEDGE, MAX_HEDGE)),
        }
    }

    /// Folds one answer's time into the smoothed estimate (gain 1/8, as TCP's SRTT). A sample
    /// counts at most twice the estimate, so one answer that waited out a 2 s gap does not
    /// make the next decisions wait long, while a link that became slower is followed within
    /// a few answers.
    fn observe(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.srtt_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample.max(1)
        } else {
            (old - old / 8 + sample.min(old.saturating_mul(2)) / 8).max(1)
        };
        self.srtt_us.store(new, Ordering::Relaxed);
    }

    /// Asks `inner` and records the answer: a grant is remembered, any other answer forgets
    /// the user; an unreachable orchestrator changes nothing.
    async fn ask(
        self: Arc<Self>,
        inner: Arc<dyn AccessOracle>,
        userid: String,
    ) -> Result<bool, OracleError> {
        let t0 = now();
        let result = inner.kernel_access(&userid).await;
        let now = now();
        match &result {
            Ok(granted) => {
                self.observe(now.saturating_duration_since(t0));
                self.grants.record(&userid, *granted, now);
            }
            Err(e) if unreachable(e) => {
                tracing::debug!(userid = %untrusted(&userid), error = %e, "orchestrator not heard");
            }
            // A refusal of the node, or this node's own configuration: no reuse.
            Err(e) => {
                if self.grants.reusable(&userid, now).is_some() {
                    tracing::warn!(userid = %untrusted(&userid), error = %e,
                        "orchestrator refused the node: the user's recent grant is forgotten");
                }
                self.grants.record(&userid, false, now);
            }
        }
        result
    }

    /// The answer to a decision whose call ended: an unreachable orchestrator lets a recent
    /// grant stand.
    fn settle(&self, userid: &str, result: Result<bool, OracleError>) -> Result<bool, OracleError> {
        match &result {
            Err(e) if unreachable(e) => match self.grants.reusable(userid, now()) {
                Some(age) => {
                    self.reuse(userid, age, &e.to_string());
                    Ok(true)
                }
                None => result,
            },
            _ => result,
        }
    }

    fn reuse(&self, userid: &str, age: Duration, why: &str) {
        self.reused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            userid = %untrusted(userid),
            grant_age_ms = age.as_millis() as u64,
            error = %why,
            "orchestrator unreachable or slow: reusing a recent grant (--stale-grant-window)"
        );
    }

    /// Lets a hedged call finish in the background, so that its answer is recorded; at most
    /// one per user (and MAX_USERS in all): beyond that the call is dropped.
    fn finish_in_background(
        self: &Arc<Self>,
        userid: &str,
        call: impl Future<Output = Result<bool, OracleError>> + Send + 'static,
    ) {
        {
            let Ok(mut bg) = self.background.lock() else {
                return;
            };
            if bg.len() >= MAX_USERS || !bg.insert(userid.to_string()) {
                return;
            }
        }
        let (state, userid) = (Arc::clone(self), userid.to_string());
        tokio::spawn(async move {
            let _ = call.await;
            if let Ok(mut bg) = state.background.lock() {
                bg.remove(&userid);
            }
        });
    }
}

#[async_trait]
impl AccessOracle for StaleGrantOracle {
    async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError> {
        let state = &self.state;
        let call = Arc::clone(state).ask(Arc::clone(&self.inner), userid.to_string());
        let hedge = match state.grants.reusable(userid, now()) {
            Some(_) => state.hedge(),
            None => None,
        };
        let Some(hedge) = hedge else {
            return state.settle(userid, call.await);
        };
        let mut call = Box::pin(call);
        tokio::select! {
            r = &mut call => state.settle(userid, r),
            () = tokio::time::sleep(hedge) => match state.grants.reusable(userid, now()) {
                Some(age) => {
                    state.reuse(userid, age, &format!("no answer within {} ms", hedge.as_millis()));
                    state.finish_in_background(userid, call);
                    Ok(true)
                }
                None => state.settle(userid, call.await),
            },
        }
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
    async fn a_connection_broken_under_the_call_does_not_forget_the_grant() {
        // What hyper reports when the connection goes away mid-call: the orchestrator decided
        // nothing, so the grant stands (the cut in scripts/e2e-sites.sh lost it 3 s in).
        let broken = || {
            Err(OracleError::Client(leotest_rpc::ClientError::Status {
                code: tonic::Code::Unknown,
                message: "transport error".into(),
            }))
        };
        let o = StaleGrantOracle::new(scripted(vec![Ok(true), broken(), down()]), W);
        assert!(o.kernel_access("alice").await.unwrap());
        assert!(o.kernel_access("alice").await.unwrap(), "broken connection");
        assert!(o.kernel_access("alice").await.unwrap(), "still down");
        assert_eq!(o.reused(), 2);
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

    /// Answers after a delay, from a script, one per call.
    struct Delayed(Mutex<VecDeque<(Duration, Result<bool, OracleError>)>>);

    #[async_trait]
    impl AccessOracle for Delayed {
        async fn kernel_access(&self, _: &str) -> Result<bool, OracleError> {
            let next = self.0.lock().unwrap().pop_front();
            let (wait, answer) = next.unwrap_or((Duration::ZERO, down()));
            tokio::time::sleep(wait).await;
            answer
        }
    }

    fn delayed(answers: Vec<(u64, Result<bool, OracleError>)>) -> Arc<dyn AccessOracle> {
        let script = answers
            .into_iter()
            .map(|(ms, a)| (Duration::from_millis(ms), a));
        Arc::new(Delayed(Mutex::new(script.collect())))
    }

    /// Times one decision on tokio's paused clock.
    async fn timed(o: &StaleGrantOracle, user: &str) -> (Result<bool, OracleError>, Duration) {
        let t0 = tokio::time::Instant::now();
        let r = o.kernel_access(user).await;
        (r, t0.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_is_hedged_by_a_recent_grant_and_still_counts() {
        let o = StaleGrantOracle::new(
            delayed(vec![(40, Ok(true)), (2_000, Ok(false)), (40, Ok(false))]),
            W,
        );
        let (r, took) = timed(&o, "alice").await;
        assert!(r.unwrap());
        assert_eq!(took, Duration::from_millis(40));
        // The next answer is held 2 s (a handover gap): the grant answers after 2.5 x 40 ms.
        let (r, took) = timed(&o, "alice").await;
        assert!(r.unwrap(), "granted from the recent grant");
        assert_eq!(took, Duration::from_millis(100));
        assert_eq!(o.reused(), 1);
        // The held call finished in the background with a denial: revoked stays revoked.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (r, _) = timed(&o, "alice").await;
        assert!(!r.unwrap(), "the orchestrator's answer, not the grant");
        assert_eq!(o.reused(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_recent_grant_a_slow_answer_is_waited_for() {
        let o = StaleGrantOracle::new(delayed(vec![(40, Ok(true)), (2_000, Ok(true))]), W);
        assert!(o.kernel_access("alice").await.unwrap());
        let (r, took) = timed(&o, "bob").await;
        assert!(r.unwrap());
        assert_eq!(
            took,
            Duration::from_secs(2),
            "bob was never granted: no hedge"
        );
        assert_eq!(o.reused(), 0);
        // Off: every answer is waited for.
        let o = StaleGrantOracle::new(
            delayed(vec![(40, Ok(true)), (2_000, Ok(true))]),
            Duration::ZERO,
        );
        assert!(o.kernel_access("alice").await.unwrap());
        assert_eq!(timed(&o, "alice").await.1, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn one_background_call_per_user() {
        // Every answer after the first is held 2 s: ten decisions hedge, one call finishes.
        let mut script = vec![(40, Ok(true))];
        script.extend((0..10).map(|_| (2_000, Ok(true))));
        let o = StaleGrantOracle::new(delayed(script), W);
        assert!(o.kernel_access("alice").await.unwrap());
        for _ in 0..10 {
            assert!(o.kernel_access("alice").await.unwrap());
        }
        assert_eq!(o.reused(), 10);
        assert_eq!(o.state.background.lock().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(o.state.background.lock().unwrap().is_empty());
    }

    #[test]
    fn the_round_trip_estimate_follows_a_slower_link_but_not_one_gap() {
        let s = State {
            grants: StaleGrants::new(W),
            reused: AtomicU64::new(0),
            srtt_us: AtomicU64::new(0),
            background: Mutex::new(HashSet::new()),
        };
        assert_eq!(s.hedge(), None, "nothing timed yet");
        s.observe(Duration::from_millis(40));
        assert_eq!(s.hedge(), Some(Duration::from_millis(100)));
        s.observe(Duration::from_secs(2));
        assert!(
            s.hedge().unwrap() < Duration::from_millis(130),
            "{:?}",
            s.hedge()
        );
        for _ in 0..30 {
            s.observe(Duration::from_millis(200));
        }
        assert!(
            s.hedge().unwrap() > Duration::from_millis(450),
            "{:?}",
            s.hedge()
        );
        for _ in 0..60 {
            s.observe(Duration::from_micros(100));
        }
        assert_eq!(s.hedge(), Some(MIN_HEDGE));
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
