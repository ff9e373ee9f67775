//! Accept loop and per-connection flow: identify, decide, read one line, run it, reply, close.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::commands;
use crate::config::CcaScope;
use crate::identity::{Caller, IdentitySource};
use crate::metrics::Metrics;
use crate::oracle::{AccessOracle, GrantCache};
use crate::protocol::{self, Command, MAX_LINE};
use crate::sandbox::{wire, JobManager};

/// The original's reply to a refused caller (no newline, kept byte-for-byte).
pub const ACCESS_DENIED: &[u8] = b"access_denied";
/// Reply to a non-whitelisted line when the sandbox is not available.
pub const UNKNOWN_COMMAND: &[u8] = b"error: unknown command\n";
/// How long shutdown waits for in-flight connections.
const DRAIN: Duration = Duration::from_secs(10);

/// Tunables of the per-connection flow.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub read_timeout: Duration,
    pub decision_deadline: Duration,
    pub cca_scope: CcaScope,
    pub bbr2_param_dir: PathBuf,
    pub max_connections: usize,
}

/// Everything a connection needs.
pub struct Service {
    pub identity: Arc<dyn IdentitySource>,
    pub oracle: Arc<dyn AccessOracle>,
    pub cache: GrantCache,
    pub jobs: Option<JobManager>,
    pub cfg: ServiceConfig,
    pub metrics: Arc<Metrics>,
}

/// Outcome of the access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Granted(Caller),
    /// Refused, with the reason for the audit line and the caller when it was identified.
    Denied(&'static str, Option<Caller>),
}

enum LineError {
    Timeout,
    TooLong,
    Io,
}

/// Reads up to a newline or EOF within one total deadline (a slow sender gets no extension).
/// On time-out, bytes already received count as the line: the original used a single recv.
async fn read_line<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<Vec<u8>, LineError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout_at(deadline, r.read(&mut chunk)).await {
            Err(_) if buf.is_empty() => return Err(LineError::Timeout),
            Err(_) => return Ok(buf),
            Ok(Err(_)) => return Err(LineError::Io),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Ok(buf);
        }
        let data = &chunk[..n];
        if let Some(pos) = data.iter().position(|b| *b == b'\n') {
            buf.extend_from_slice(&data[..=pos]);
            return if buf.len() > MAX_LINE + 1 {
                Err(LineError::TooLong)
            } else {
                Ok(buf)
            };
        }
        buf.extend_from_slice(data);
        if buf.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
    }
}

fn error_reply(e: impl std::fmt::Display) -> Vec<u8> {
    format!("error: {e}\n").into_bytes()
}

impl Service {
    /// Identity, label, orchestrator; every failure or time-out denies.
    pub async fn decide(&self, peer: SocketAddr, local: SocketAddr) -> Decision {
        match tokio::time::timeout(self.cfg.decision_deadline, self.decide_inner(peer, local)).await
        {
            Ok(d) => d,
            Err(_) => Decision::Denied("decision deadline", None),
        }
    }

    async fn decide_inner(&self, peer: SocketAddr, local: SocketAddr) -> Decision {
        let generation = self.identity.generation();
        let caller = match self.identity.resolve(peer, local).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "identity");
                return Decision::Denied("unknown peer", None);
            }
        };
        let Some(userid) = caller.userid.clone() else {
            return Decision::Denied("no userid label", Some(caller));
        };
        if self.cache.hit(&caller.container_id, &userid, generation) {
            return Decision::Granted(caller);
        }
        match self.oracle.kernel_access(&userid).await {
            Ok(true) => {
                self.cache.insert(&caller.container_id, &userid, generation);
                Decision::Granted(caller)
            }
            Ok(false) => Decision::Denied("not permitted", Some(caller)),
            Err(e) => {
                tracing::warn!(error = %e, "orchestrator check failed");
                Decision::Denied("orchestrator error", Some(caller))
            }
        }
    }

    async fn run_command<S>(&self, cmd: &Command, caller: &Caller, out: &mut S) -> Vec<u8>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let user = caller.userid.as_deref().unwrap_or_default();
        let res = match cmd {
            Command::CcaCheck => {
                let netns = caller.netns.as_ref().map(|n| &*n.0);
                commands::cca_check(self.cfg.cca_scope, caller.pid, netns).await
            }
            Command::CcaChange(a) => {
                commands::cca_change(self.cfg.cca_scope, caller.pid, a.clone()).await
            }
            Command::Bbr2Set { name, value } => {
                commands::bbr2_set(self.cfg.bbr2_param_dir.clone(), name.clone(), value.clone())
                    .await
            }
            _ => {
                let Some(jobs) = &self.jobs else {
                    return UNKNOWN_COMMAND.to_vec();
                };
                return match cmd {
                    Command::JobStart(argv) => wire::job_start(jobs, user, argv.clone()).await,
                    Command::JobStatus(id) => wire::job_status(jobs, user, false, id),
                    Command::JobStop(id) => wire::job_stop(jobs, user, false, id).await,
                    Command::JobList => wire::job_list(jobs, user, false),
                    Command::JobWatch(id) => {
                        let _ = wire::job_watch(jobs, user, false, id, out).await;
                        Vec::new()
                    }
                    Command::Other(line) => wire::oneshot(jobs, user, line).await,
                    _ => UNKNOWN_COMMAND.to_vec(),
                };
            }
        };
        res.unwrap_or_else(|e| {
            Metrics::inc(&self.metrics.commands_failed);
            error_reply(e)
        })
    }

    /// Serves one connection to completion.
    pub async fn handle<S>(&self, mut stream: S, peer: SocketAddr, local: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let t0 = Instant::now();
        Metrics::inc(&self.metrics.connections);
        let decision = self.decide(peer, local).await;
        let caller = match &decision {
            Decision::Granted(c) => c.clone(),
            Decision::Denied(reason, who) => {
                Metrics::inc(&self.metrics.denied);
                audit(peer, who.as_ref(), "-", "denied", reason, t0);
                let _ = stream.write_all(ACCESS_DENIED).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        Metrics::inc(&self.metrics.granted);
        let (kind, reply) = match read_line(&mut stream, self.cfg.read_timeout).await {
            Err(LineError::Timeout) | Err(LineError::Io) => ("none", Vec::new()),
            Err(LineError::TooLong) => {
                Metrics::inc(&self.metrics.bad_requests);
                ("invalid", error_reply(protocol::ParseError::TooLong))
            }
            Ok(line) => match protocol::parse(&line) {
                Ok(cmd) => (
                    cmd.kind(),
                    self.run_command(&cmd, &caller, &mut stream).await,
                ),
                Err(e) => {
                    Metrics::inc(&self.metrics.bad_requests);
                    ("invalid", error_reply(e))
                }
            },
        };
        audit(peer, Some(&caller), kind, "granted", "", t0);
        if !reply.is_empty() {
            let _ = tokio::time::timeout(self.cfg.read_timeout, stream.write_all(&reply)).await;
        }
        let _ = stream.shutdown().await;
    }
}

fn audit(
    peer: SocketAddr,
    caller: Option<&Caller>,
    command: &str,
    decision: &str,
    reason: &str,
    t0: Instant,
) {
    let container = caller
        .map(|c| c.container_id.get(..12).unwrap_or(&c.container_id))
        .unwrap_or("-");
    let userid = caller.and_then(|c| c.userid.as_deref()).unwrap_or("-");
    tracing::info!(
        target: "audit",
        peer = %peer.ip(),
        container,
        userid,
        command,
        decision,
        reason,
        latency_ms = t0.elapsed().as_millis() as u64,
    );
}

/// Accepts until `shutdown` resolves, then drains in-flight connections (bounded).
pub async fn run(listener: TcpListener, svc: Arc<Service>, shutdown: impl Future<Output = ()>) {
    let cap = svc.cfg.max_connections.clamp(1, 1_000_000);
    let slots = Arc::new(Semaphore::new(cap));
    tokio::pin!(shutdown);
    loop {
        // Waiting for a slot before accepting leaves excess clients in the kernel backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        // Replies are small and followed by more writes only for `job.watch`: never let Nagle
        // hold a chunk back waiting for the client's (delayed) ACK.
        let _ = stream.set_nodelay(true);
        let svc = Arc::clone(&svc);
        tokio::spawn(async move {
            svc.handle(stream, peer, local).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(cap as u32)).await;
}

#[cfg(test)]
mod tests;
