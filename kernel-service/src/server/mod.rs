//! Accept loop and per-connection flow: limit, identify, decide, read one command, run it,
//! reply, close.

mod framing;
pub mod limits;
pub mod unix;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use framing::{read_command, LineError, ORIGINAL_RECV};
pub use limits::{default_limits, ConnLimits, Slot};

use crate::caps::CapSet;
use crate::commands;
use crate::config::CcaScope;
use crate::conncheck::{self, OwnSocket, Rechecked};
use crate::identity::{Caller, IdentityError, IdentitySource};
use crate::logsafe::untrusted;
use crate::metrics::{CommandKind, Limit, Metrics};
use crate::oracle::{AccessOracle, DecisionCache, InFlight, TimedOracle};
use crate::protocol::{self, error_reply, Command};
use crate::sandbox::{wire, JobManager};

/// The original's reply to a refused caller (no newline, kept byte-for-byte).
pub const ACCESS_DENIED: &[u8] = leotest_wire::ACCESS_DENIED.as_bytes();
/// Reply to a non-whitelisted line when the sandbox is not available.
pub const UNKNOWN_COMMAND: &[u8] = b"error: unknown command\n";
/// How long shutdown waits for in-flight connections.
const DRAIN: Duration = Duration::from_secs(10);
/// Longest `userid` label passed on to the orchestrator (its own limit for ids).
const MAX_USERID: usize = 256;

/// Tunables of the per-connection flow.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Limit for reading the command line and for writing each reply.
    pub read_timeout: Duration,
    /// Whole budget of one access decision (identity and orchestrator); past it, deny.
    pub decision_deadline: Duration,
    /// Which namespace `cca.*` commands act on.
    pub cca_scope: CcaScope,
    /// Directory of the bbr2 module parameters (`/sys/module/tcp_bbr2/parameters`).
    pub bbr2_param_dir: PathBuf,
    /// Connections served at once, in total; more wait in the accept backlog.
    pub max_connections: usize,
    /// Connections one source address may hold at once; more are answered with an error.
    pub max_per_source: usize,
    /// Connections one user may hold at once (over all its containers).
    pub max_per_user: usize,
    /// Callers whose container may hold any of these are refused.
    pub refuse_caps: CapSet,
}

/// Everything a connection needs.
pub struct Service {
    identity: Arc<dyn IdentitySource>,
    oracle: Arc<dyn AccessOracle>,
    cache: DecisionCache,
    flights: InFlight,
    limits: ConnLimits,
    jobs: Option<JobManager>,
    cfg: ServiceConfig,
    metrics: Arc<Metrics>,
}

/// Outcome of the access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, as this caller.
    Granted(Caller),
    /// Refused, with the reason for the audit line and the caller when it was identified.
    Denied(&'static str, Option<Caller>),
}

/// A `userid` label the orchestrator can be asked about: bounded, no control characters.
fn plausible_userid(u: &str) -> bool {
    !u.is_empty() && u.len() <= MAX_USERID && !u.chars().any(char::is_control)
}

impl Service {
    /// A service deciding with `identity`, `oracle` and `cache`; `jobs` is `None` without job support.
    pub fn new(
        identity: Arc<dyn IdentitySource>,
        oracle: Arc<dyn AccessOracle>,
        cache: DecisionCache,
        jobs: Option<JobManager>,
        cfg: ServiceConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Every call actually sent (joined calls count once) is counted and timed here.
        let oracle: Arc<dyn AccessOracle> =
            Arc::new(TimedOracle::new(oracle, Arc::clone(&metrics)));
        Service {
            identity,
            oracle,
            cache,
            flights: InFlight::default(),
            limits: ConnLimits::new(cfg.max_per_source, cfg.max_per_user),
            jobs,
            cfg,
            metrics,
        }
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The connection limits and what they hold now.
    pub fn limits(&self) -> &ConnLimits {
        &self.limits
    }

    /// Identity, label, orchestrator; every failure or time-out denies.
    pub async fn decide(&self, peer: SocketAddr, local: SocketAddr) -> Decision {
        let generation = self.identity.generation();
        self.within_deadline(self.decide_inner(generation, self.identity.resolve(peer, local)))
            .await
    }

    /// The same decision for a unix-socket caller (see [`unix`]).
    pub async fn decide_process(&self, pid: u32, pidfd: &std::os::fd::OwnedFd) -> Decision {
        let generation = self.identity.generation();
        self.within_deadline(
            self.decide_inner(generation, self.identity.resolve_process(pid, pidfd)),
        )
        .await
    }

    async fn within_deadline(&self, decision: impl Future<Output = Decision>) -> Decision {
        match tokio::time::timeout(self.cfg.decision_deadline, decision).await {
            Ok(d) => d,
            Err(_) => Decision::Denied("decision deadline", None),
        }
    }

    async fn decide_inner(
        &self,
        generation: u64,
        resolved: impl Future<Output = Result<Caller, IdentityError>>,
    ) -> Decision {
        let caller = match resolved.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "identity");
                return Decision::Denied(e.reason(), None);
            }
        };
        let Some(userid) = caller.userid.clone() else {
            return Decision::Denied("no userid label", Some(caller));
        };
        if !plausible_userid(&userid) {
            return Decision::Denied("invalid userid label", Some(caller));
        }
        let refused = caller.caps.intersect(self.cfg.refuse_caps);
        if !refused.is_empty() {
            tracing::warn!(
                container = %untrusted(caller.container_id.get(..12).unwrap_or(&caller.container_id)),
                caps = %refused,
                "refused: the caller's container holds capabilities outside the identity model"
            );
            return Decision::Denied("caller holds a refused capability", Some(caller));
        }
        match self.cache.hit(&caller.container_id, &userid, generation) {
            Some(true) => return Decision::Granted(caller),
            Some(false) => return Decision::Denied("not permitted (cached)", Some(caller)),
            None => {}
        }
        let answer = self
            .flights
            .kernel_access(&self.oracle, &userid, || {})
            .await;
        match answer {
            Ok(granted) => {
                self.cache
                    .insert(&caller.container_id, &userid, generation, granted);
                if granted {
                    Decision::Granted(caller)
                } else {
                    Decision::Denied("not permitted", Some(caller))
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "orchestrator check failed");
                Decision::Denied("orchestrator error", Some(caller))
            }
        }
    }

    async fn run_command<S>(&self, cmd: &Command, caller: &Caller, out: &mut S) -> Vec<u8>
    where
        S: AsyncRead + AsyncWrite + OwnSocket + Unpin,
    {
        let user = caller.userid.as_deref().unwrap_or_default();
        let res = match cmd {
            Command::CcaCheck => {
                let netns = caller.netns.as_ref().map(|n| &*n.0);
                commands::cca_check(self.cfg.cca_scope, caller.pid, netns).await
            }
            Command::CcaChange(a) => {
                let netns = caller.netns.as_ref().map(|n| &*n.0);
                commands::cca_change(self.cfg.cca_scope, caller.pid, netns, a.clone()).await
            }
            Command::Bbr2Set { name, value } => {
                commands::bbr2_set(self.cfg.bbr2_param_dir.clone(), name.clone(), value.clone())
                    .await
            }
            // Only the bare word: other words still run as sandboxed programs.
            Command::Other(line) if is_help(line) => return commands::HELP.as_bytes().to_vec(),
            _ => {
                let Some(jobs) = &self.jobs else {
                    return UNKNOWN_COMMAND.to_vec();
                };
                return match cmd {
                    Command::JobStart(argv) => {
                        let t0 = Instant::now();
                        let reply = wire::job_start(jobs, user, argv.clone()).await;
                        // Refusals (quotas, bad argv) are answered at once: only starts count.
                        if !reply.starts_with(b"error:") {
                            self.metrics
                                .sandbox_start_seconds
                                .observe(t0.elapsed().as_secs_f64());
                        }
                        reply
                    }
                    Command::JobStatus(id) => wire::job_status(jobs, user, false, id),
                    Command::JobStop(id) => wire::job_stop(jobs, user, false, id).await,
                    Command::JobList => wire::job_list(jobs, user, false),
                    Command::JobWatch(id) => {
                        // A long connection: its counters are checked again while it streams.
                        let mut out = Rechecked::new(out, &caller.conn, conncheck::RECHECK_EVERY);
                        let _ = wire::job_watch(jobs, user, false, id, &mut out).await;
                        Vec::new()
                    }
                    Command::Other(line) => wire::oneshot(jobs, user, line).await,
                    _ => UNKNOWN_COMMAND.to_vec(),
                };
            }
        };
        res.unwrap_or_else(|e| {
            self.metrics.commands_failed.inc();
            error_reply(e)
        })
    }

    /// Refuses a connection over a limit: an error line, then close.
    async fn over_limit<S>(&self, stream: &mut S, what: &'static str, limit: usize)
    where
        S: AsyncWrite + Unpin,
    {
        let label = if what == "user" { "user" } else { "source" };
        self.metrics
            .over_limit
            .get_or_create(&Limit { limit: label })
            .inc();
        let msg = error_reply(format!(
            "too many connections from this {what} (limit {limit})"
        ));
        let _ = tokio::time::timeout(self.cfg.read_timeout, stream.write_all(&msg)).await;
        let _ = stream.shutdown().await;
    }

    /// Serves one connection to completion.
    pub async fn handle<S>(&self, mut stream: S, peer: SocketAddr, local: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + OwnSocket + Unpin,
    {
        let t0 = Instant::now();
        let _active = self.metrics.connection();
        // Before anything else: a source over its limit costs no lookup and no orchestrator call.
        let Some(_source_slot) = self.limits.source(peer.ip()) else {
            audit(
                Peer::Tcp(peer),
                None,
                "-",
                "limited",
                "per-source connection limit",
                t0,
            );
            self.over_limit(&mut stream, "address", self.limits.per_source())
                .await;
            return;
        };
        let t_decide = Instant::now();
        let decision = self.decide(peer, local).await;
        self.serve_decision(stream, Peer::Tcp(peer), decision, t0, t_decide)
            .await;
    }

    /// The rest of a connection once its caller is decided: per-user limit, the command, the
    /// connection check, the reply (TCP and unix socket alike).
    async fn serve_decision<S>(
        &self,
        mut stream: S,
        peer: Peer,
        decision: Decision,
        t0: Instant,
        t_decide: Instant,
    ) where
        S: AsyncRead + AsyncWrite + OwnSocket + Unpin,
    {
        let caller = match decision {
            Decision::Granted(c) => {
                self.metrics.decided("granted", None, t_decide);
                c
            }
            Decision::Denied(reason, who) => {
                self.metrics.decided("denied", Some(reason), t_decide);
                audit(peer, who.as_ref(), "-", "denied", reason, t0);
                let _ =
                    tokio::time::timeout(self.cfg.read_timeout, stream.write_all(ACCESS_DENIED))
                        .await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        let user = caller.userid.as_deref().unwrap_or_default();
        let Some(_user_slot) = self.limits.user(user) else {
            audit(
                peer,
                Some(&caller),
                "-",
                "limited",
                "per-user connection limit",
                t0,
            );
            self.over_limit(&mut stream, "user", self.limits.per_user())
                .await;
            return;
        };
        let line = read_command(&mut stream, self.cfg.read_timeout).await;
        // The command is in: before it runs, the connection must be the one the caller's
        // socket holds (issue 23: an on-path neighbour that reset the service's side of the
        // victim's connection and reconnected from its 4-tuple fails here).
        if line.is_ok() {
            if let Err(e) = conncheck::verify(stream.own_fd(), &caller.conn) {
                tracing::warn!(error = %e, "connection check failed");
                self.metrics.refused_after_decision(e.reason());
                audit(peer, Some(&caller), "-", "denied", e.reason(), t0);
                let _ =
                    tokio::time::timeout(self.cfg.read_timeout, stream.write_all(ACCESS_DENIED))
                        .await;
                let _ = stream.shutdown().await;
                return;
            }
        }
        let (kind, reply) = match line {
            Err(LineError::Timeout) | Err(LineError::Io) => ("none", Vec::new()),
            Err(LineError::TooLong) => {
                self.metrics.bad_requests.inc();
                ("invalid", error_reply(protocol::ParseError::TooLong))
            }
            Ok(line) => match protocol::parse(&line) {
                Ok(cmd) => (
                    command_label(&cmd),
                    self.run_command(&cmd, &caller, &mut stream).await,
                ),
                Err(e) => {
                    self.metrics.bad_requests.inc();
                    ("invalid", error_reply(e))
                }
            },
        };
        self.metrics
            .commands
            .get_or_create(&CommandKind { command: kind })
            .inc();
        // A granted command that then failed says so (its reply was an error line): the
        // grant alone does not tell an operator the change was not made.
        let outcome = if reply.starts_with(b"error:") {
            "failed"
        } else {
            "ok"
        };
        audit_outcome(peer, Some(&caller), kind, "granted", "", outcome, t0);
        if !reply.is_empty() {
            let _ = tokio::time::timeout(self.cfg.read_timeout, stream.write_all(&reply)).await;
        }
        let _ = stream.shutdown().await;
    }
}

/// Whether a `Command::Other` line is the `help` request.
fn is_help(line: &str) -> bool {
    line.trim() == "help"
}

/// The `command` label and audit kind: `help` apart from the other one-shot programs.
fn command_label(cmd: &Command) -> &'static str {
    match cmd {
        Command::Other(line) if is_help(line) => "help",
        _ => cmd.kind(),
    }
}

/// Who is connected, for the audit line: a TCP source address, or a unix-socket caller's pid.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A TCP connection from this address.
    Tcp(SocketAddr),
    /// A unix-socket connection from the process with this pid.
    Unix(u32),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The address only, as before: the source port says nothing about the caller.
            Peer::Tcp(a) => write!(f, "{}", a.ip()),
            Peer::Unix(pid) => write!(f, "unix:pid={pid}"),
        }
    }
}

/// One audit line per connection; caller-supplied values (the `userid` label) are escaped and
/// cut, the command is only its kind (never its arguments).
fn audit(
    peer: Peer,
    caller: Option<&Caller>,
    command: &str,
    decision: &str,
    reason: &str,
    t0: Instant,
) {
    audit_outcome(peer, caller, command, decision, reason, "-", t0);
}

/// [`audit`] with the command's `outcome`: `ok`, `failed` (an error reply), `-` (none ran).
fn audit_outcome(
    peer: Peer,
    caller: Option<&Caller>,
    command: &str,
    decision: &str,
    reason: &str,
    outcome: &str,
    t0: Instant,
) {
    let container = caller
        .map(|c| c.container_id.get(..12).unwrap_or(&c.container_id))
        .unwrap_or("-");
    let userid = caller.and_then(|c| c.userid.as_deref()).unwrap_or("-");
    tracing::info!(
        target: "audit",
        peer = %peer,
        container = %untrusted(container),
        userid = %untrusted(userid),
        command,
        decision,
        reason,
        outcome,
        latency_ms = t0.elapsed().as_millis() as u64,
    );
}

/// Binds the command listener with an accept backlog of `backlog` (the kernel caps it at
/// `net.core.somaxconn`).
///
/// `tokio::net::TcpListener::bind` listens with std's backlog of 128: 1 000 clients connecting
/// at once overflowed it, the kernel dropped their handshakes' last ACK and they waited for the
/// one-second SYN-ACK retransmission — that, not the decision, was the p99 of a burst.
pub fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
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
