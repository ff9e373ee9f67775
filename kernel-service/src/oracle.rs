//! Access decision: ask the orchestrator `kernel_access(userid)`, fail closed; a short decision
//! cache and one call in flight per user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};
use leotest_proto::unary::ResponseState;
use leotest_rpc::{ChannelOptions, ClientConfig, Credentials, LeotestClient, RetryPolicy};
use thiserror::Error;

/// Why no grant could be obtained; every variant means deny.
#[derive(Debug, Error)]
pub enum OracleError {
    /// No answer within this time.
    #[error("orchestrator did not answer within {0:?}")]
    Deadline(Duration),
    /// The call failed.
    #[error("orchestrator: {0}")]
    Client(#[from] leotest_rpc::ClientError),
}

/// Says whether a user may use the kernel service.
#[async_trait]
pub trait AccessOracle: Send + Sync {
    /// Whether `userid` may use the kernel service now; an error means deny.
    async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError>;
}

/// The orchestrator-backed oracle.
pub struct ClientOracle {
    client: LeotestClient,
    deadline: Duration,
}

/// How the oracle reaches the orchestrator and how long it tries.
#[derive(Debug, Clone)]
pub struct OracleOptions {
    /// Orchestrator endpoint, `host:port` or `https://host:port`.
    pub endpoint: String,
    /// PEM CA certificate the orchestrator's certificate must chain to.
    pub ca_cert: std::path::PathBuf,
    /// Name the orchestrator's certificate must carry.
    pub domain: String,
    /// This node's user id, which the calls are made as.
    pub nodeid: String,
    /// This node's access token.
    pub token: String,
    /// Whole budget of one decision's call, retries included.
    pub deadline: Duration,
    /// Limit of one attempt (connecting included): a lost request or a dead connection costs
    /// this, not the whole deadline, and the next attempt (after the retry module's backoff)
    /// goes out on a fresh connection once keepalive has dropped the dead one.
    pub attempt_timeout: Duration,
    /// HTTP/2 keepalive interval and time-out ([`ChannelOptions::keepalive`]); zero: off.
    pub keepalive: Duration,
}

impl std::fmt::Display for OracleOptions {
    // Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} as {} (deadline {:?}, attempt {:?}, keepalive {:?})",
            self.endpoint, self.nodeid, self.deadline, self.attempt_timeout, self.keepalive
        )
    }
}

impl ClientOracle {
    /// Builds the TLS client with the node's credentials; retries stay inside `deadline`.
    pub async fn connect(
        endpoint: String,
        ca_cert: std::path::PathBuf,
        domain: String,
        nodeid: String,
        token: String,
        deadline: Duration,
    ) -> Result<Self, OracleError> {
        Self::connect_with(OracleOptions {
            endpoint,
            ca_cert,
            domain,
            nodeid,
            token,
            deadline,
            attempt_timeout: deadline,
            keepalive: Duration::ZERO,
        })
        .await
    }

    /// Builds the TLS client from [`OracleOptions`]. Attempts are retried with backoff by the
    /// client's retry module (the only place backoff lives), within `deadline`.
    pub async fn connect_with(o: OracleOptions) -> Result<Self, OracleError> {
        let mut cfg = ClientConfig::new(
            o.endpoint,
            Credentials::Static {
                userid: o.nodeid,
                access_token: o.token,
            },
        );
        cfg.ca_cert = Some(o.ca_cert);
        cfg.domain = o.domain;
        cfg.timeout = o.attempt_timeout.min(o.deadline);
        cfg.retry = RetryPolicy {
            // bounded by `deadline` first: at 1 s per attempt and 100 ms, 200 ms, ... between
            // them, a 3 s deadline holds 3 attempts, enough to ride out a 2 s handover gap
            max_attempts: 8,
            max_elapsed: o.deadline,
            initial_backoff: Duration::from_millis(100),
        };
        let opts = ChannelOptions {
            keepalive: (!o.keepalive.is_zero()).then_some(o.keepalive),
        };
        let client = LeotestClient::connect_with(cfg, opts).await?;
        Ok(ClientOracle {
            client,
            deadline: o.deadline,
        })
    }

    /// Retries the client made after transient errors, since start.
    pub fn retries(&self) -> u64 {
        self.client.retries()
    }
}

#[async_trait]
impl AccessOracle for ClientOracle {
    async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError> {
        let res = tokio::time::timeout(self.deadline, self.client.kernel_access(userid))
            .await
            .map_err(|_| OracleError::Deadline(self.deadline))??;
        Ok(res.state == ResponseState::Success as i32)
    }
}

/// Counts and times every call `inner` answers (`leotest_kernel_orchestrator_calls_total`,
/// `leotest_kernel_orchestrator_seconds{result}`).
pub struct TimedOracle {
    inner: Arc<dyn AccessOracle>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl TimedOracle {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn AccessOracle>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        TimedOracle { inner, metrics }
    }
}

#[async_trait]
impl AccessOracle for TimedOracle {
    async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError> {
        self.metrics.oracle_calls.inc();
        let t0 = Instant::now();
        let r = self.inner.kernel_access(userid).await;
        let result = match r {
            Ok(true) => "granted",
            Ok(false) => "denied",
            Err(_) => "error",
        };
        self.metrics
            .oracle_seconds
            .get_or_create(&crate::metrics::CallResult { result })
            .observe(t0.elapsed().as_secs_f64());
        r
    }
}

/// Remembers decisions for a short time, keyed by container and user: grants for the grant TTL
/// (default 0: never), denials for the deny TTL (default 1 s, so a refused container that
/// reconnects in a loop costs the orchestrator one call per second, not one per connection).
/// Any container event invalidates everything (the generation changes).
pub struct DecisionCache {
    grant_ttl: Duration,
    deny_ttl: Duration,
    entries: Mutex<HashMap<(String, String), Remembered>>,
}

/// When a decision was made, the identity generation it was made in, and whether it granted.
type Remembered = (Instant, u64, bool);

/// Upper bound on cached decisions, so a churn of containers cannot grow memory without limit.
const CACHE_MAX: usize = 10_000;

impl DecisionCache {
    /// A cache keeping grants for `grant_ttl` and denials for `deny_ttl`.
    pub fn new(grant_ttl: Duration, deny_ttl: Duration) -> Self {
        DecisionCache {
            grant_ttl,
            deny_ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A still valid decision for this pair: younger than its TTL and no container event since.
    pub fn hit(&self, container: &str, userid: &str, generation: u64) -> Option<bool> {
        if self.grant_ttl.is_zero() && self.deny_ttl.is_zero() {
            return None;
        }
        let map = self.entries.lock().ok()?;
        let (at, gen, granted) = map.get(&(container.to_string(), userid.to_string()))?;
        let ttl = if *granted {
            self.grant_ttl
        } else {
            self.deny_ttl
        };
        (*gen == generation && at.elapsed() < ttl).then_some(*granted)
    }

    /// Remembers the decision for `container` and `userid` made in identity `generation`.
    pub fn insert(&self, container: &str, userid: &str, generation: u64, granted: bool) {
        let ttl = if granted {
            self.grant_ttl
        } else {
            self.deny_ttl
        };
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(
                (container.to_string(), userid.to_string()),
                (Instant::now(), generation, granted),
            );
        }
    }
}

type SharedAnswer = Shared<BoxFuture<'static, Result<bool, String>>>;

/// One `kernel_access` call in flight per user, shared by every connection of that user that
/// arrives while it is on its way: a burst of 1 000 connections costs the orchestrator one
/// call, not 1 000. The answer is never older than the call itself (it is not cached after it
/// returns), so a connection may only see an answer asked up to one round trip before it came.
#[derive(Default)]
pub struct InFlight {
    next: AtomicU64,
    calls: Arc<Mutex<HashMap<String, (u64, SharedAnswer)>>>,
}

impl InFlight {
    /// Asks `oracle` about `userid`, joining a call already in flight for that user. `asked`
    /// is called once per call actually sent.
    pub async fn kernel_access(
        &self,
        oracle: &Arc<dyn AccessOracle>,
        userid: &str,
        asked: impl FnOnce(),
    ) -> Result<bool, String> {
        let fut = {
            let Ok(mut calls) = self.calls.lock() else {
                return Err("in-flight table poisoned".into());
            };
            match calls.get(userid) {
                Some((_, f)) => f.clone(),
                None => {
                    asked();
                    let id = self.next.fetch_add(1, Ordering::Relaxed);
                    let (oracle, key, table) = (
                        Arc::clone(oracle),
                        userid.to_string(),
                        Arc::clone(&self.calls),
                    );
                    let fut = async move {
                        let r = oracle.kernel_access(&key).await.map_err(|e| e.to_string());
                        if let Ok(mut t) = table.lock() {
                            if t.get(&key).map(|(i, _)| *i) == Some(id) {
                                t.remove(&key);
                            }
                        }
                        r
                    }
                    .boxed()
                    .shared();
                    calls.insert(userid.to_string(), (id, fut.clone()));
                    fut
                }
            }
        };
        fut.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn zero_ttls_never_cache() {
        let c = DecisionCache::new(Duration::ZERO, Duration::ZERO);
        c.insert("c1", "u", 0, true);
        c.insert("c2", "u", 0, false);
        assert_eq!(c.hit("c1", "u", 0), None);
        assert_eq!(c.hit("c2", "u", 0), None);
    }

    #[test]
    fn container_event_invalidates_a_decision() {
        let c = DecisionCache::new(Duration::from_secs(3600), Duration::from_secs(3600));
        c.insert("c1", "u", 7, true);
        c.insert("c2", "v", 7, false);
        assert_eq!(c.hit("c1", "u", 7), Some(true));
        assert_eq!(c.hit("c2", "v", 7), Some(false));
        assert_eq!(c.hit("c1", "other", 7), None);
        assert_eq!(c.hit("c1", "u", 8), None);
    }

    #[test]
    fn denials_only_by_default() {
        let c = DecisionCache::new(Duration::ZERO, Duration::from_secs(3600));
        c.insert("c1", "u", 1, true);
        c.insert("c1", "v", 1, false);
        assert_eq!(c.hit("c1", "u", 1), None, "grants are asked every time");
        assert_eq!(c.hit("c1", "v", 1), Some(false));
    }

    struct Slow(AtomicUsize);

    #[async_trait]
    impl AccessOracle for Slow {
        async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(userid == "alice")
        }
    }

    #[tokio::test]
    async fn concurrent_asks_for_one_user_share_one_call() {
        let slow = Arc::new(Slow(AtomicUsize::new(0)));
        let oracle: Arc<dyn AccessOracle> = slow.clone();
        let flights = Arc::new(InFlight::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..100 {
            let (o, f, s) = (oracle.clone(), flights.clone(), sent.clone());
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            tasks.push(tokio::spawn(async move {
                let r = f
                    .kernel_access(&o, user, || {
                        s.fetch_add(1, Ordering::SeqCst);
                    })
                    .await;
                (user, r)
            }));
        }
        for t in tasks {
            let (user, r) = t.await.unwrap();
            assert_eq!(r, Ok(user == "alice"));
        }
        assert_eq!(slow.0.load(Ordering::SeqCst), 2, "one call per user");
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        // Finished calls are not reused: the next ask is a new call.
        flights
            .kernel_access(&oracle, "alice", || {})
            .await
            .unwrap();
        assert_eq!(slow.0.load(Ordering::SeqCst), 3);
    }
}
