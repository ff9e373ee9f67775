//! Access decision: ask the orchestrator `kernel_access(userid)`, fail closed, optional grant cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use leotest_client::leotest_proto::unary::ResponseState;
use leotest_client::{ClientConfig, Credentials, LeotestClient, RetryPolicy};
use thiserror::Error;

/// Why no grant could be obtained; every variant means deny.
#[derive(Debug, Error)]
pub enum OracleError {
    #[error("orchestrator did not answer within {0:?}")]
    Deadline(Duration),
    #[error("orchestrator: {0}")]
    Client(#[from] leotest_client::ClientError),
}

/// Says whether a user may use the kernel service.
#[async_trait]
pub trait AccessOracle: Send + Sync {
    async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError>;
}

/// The orchestrator-backed oracle.
pub struct ClientOracle {
    client: LeotestClient,
    deadline: Duration,
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
        let mut cfg = ClientConfig::new(
            endpoint,
            Credentials::Static {
                userid: nodeid,
                access_token: token,
            },
        );
        cfg.ca_cert = Some(ca_cert);
        cfg.domain = domain;
        cfg.timeout = deadline;
        cfg.retry = RetryPolicy {
            max_attempts: 5,
            max_elapsed: deadline,
            initial_backoff: Duration::from_millis(100),
        };
        let client = LeotestClient::connect(cfg).await?;
        Ok(ClientOracle { client, deadline })
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

/// Remembers grants (never denials) for a short TTL, keyed by container and user.
pub struct GrantCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), (Instant, u64)>>,
}

/// Upper bound on cached grants, so a churn of containers cannot grow memory without limit.
const CACHE_MAX: usize = 10_000;

impl GrantCache {
    pub fn new(ttl: Duration) -> Self {
        GrantCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A grant for this pair is still valid: younger than the TTL and no container event since.
    pub fn hit(&self, container: &str, userid: &str, generation: u64) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let Ok(map) = self.entries.lock() else {
            return false;
        };
        matches!(map.get(&(container.to_string(), userid.to_string())),
            Some((at, gen)) if *gen == generation && at.elapsed() < self.ttl)
    }

    pub fn insert(&self, container: &str, userid: &str, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(
                (container.to_string(), userid.to_string()),
                (Instant::now(), generation),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_ttl_never_caches() {
        let c = GrantCache::new(Duration::ZERO);
        c.insert("c1", "u", 0);
        assert!(!c.hit("c1", "u", 0));
    }

    #[test]
    fn container_event_invalidates_a_grant() {
        let c = GrantCache::new(Duration::from_secs(3600));
        c.insert("c1", "u", 7);
        assert!(c.hit("c1", "u", 7));
        assert!(!c.hit("c1", "other", 7));
        assert!(!c.hit("c1", "u", 8));
    }
}
