//! One orchestrator under comparison (ours or the original) as the load generator sees it:
//! address, certificate, the NODE and USER_PRIV users, the processes whose CPU is counted; and
//! the four RPCs driven through the shared closed / open loop generators (`crate::load`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use leotest_proto::unary::{
    MessageGetRuns, MessageGetScheduledRuns, MessageGetUser, MessageKernelAccess, ResponseState,
};
use tonic::transport::{Channel, Endpoint};

use super::sysstat::{CpuMark, CpuUse};
use crate::load::{closed_loop, open_loop, LoadResult};
use crate::orch::{authed_client, AuthedClient};

/// Longest a single call may take before it counts as failed (the original queues calls
/// behind ten worker threads; nothing should wait forever).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A TLS connection to `addr` trusting `cert`, name `localhost` (what the original's client
/// checks too).
pub(super) async fn connect(addr: SocketAddr, cert: &Path) -> Result<Channel> {
    let pem = std::fs::read(cert).with_context(|| format!("read {}", cert.display()))?;
    let tls = leotest_test_support::localhost_tls(pem);
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// Polls `get_user(admin)` until it answers `exists` (the original takes seconds to start).
pub(super) async fn wait_answering(
    addr: SocketAddr,
    cert: &Path,
    admin_token: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        alive()?;
        match connect(addr, cert).await {
            Ok(ch) => {
                let mut c = authed_client(&ch, "admin", admin_token)?;
                match c
                    .get_user(MessageGetUser {
                        userid: "admin".into(),
                    })
                    .await
                {
                    Ok(r) if r.get_ref().exists => return Ok(()),
                    Ok(r) => last = format!("get_user(admin) answered {:?}", r.get_ref()),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bail!("{addr} did not answer get_user(admin) within {timeout:?}: {last}")
}

/// An orchestrator the same load is driven against.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub node_id: String,
    pub node_token: String,
    /// The server process (CPU, memory).
    pub pid: u32,
    /// Its database process, when it has one (MongoDB-wire).
    pub db_pid: Option<u32>,
}

impl Target {
    /// Clients authenticated as the NODE user, spread over `conns` HTTP/2 connections.
    pub(super) async fn node_clients(&self, conns: usize) -> Result<Vec<AuthedClient>> {
        let mut v = Vec::with_capacity(conns);
        for _ in 0..conns.max(1) {
            let ch = connect(self.addr, &self.cert).await?;
            v.push(authed_client(&ch, &self.node_id, &self.node_token)?);
        }
        Ok(v)
    }

    fn mark(&self) -> Result<CpuMark> {
        CpuMark::take(self.pid, self.db_pid)
    }
}

/// The RPCs compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rpc {
    KernelAccess,
    GetUser,
    GetRuns,
    GetScheduledRuns,
}

impl Rpc {
    pub(super) const ALL: [Rpc; 4] = [
        Rpc::KernelAccess,
        Rpc::GetUser,
        Rpc::GetRuns,
        Rpc::GetScheduledRuns,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Rpc::KernelAccess => "kernel_access",
            Rpc::GetUser => "get_user",
            Rpc::GetRuns => "get_runs",
            Rpc::GetScheduledRuns => "get_scheduled_runs",
        }
    }
}

/// The requests, the same bytes for every server.
#[derive(Debug, Clone)]
pub(super) struct Requests {
    pub kernel_access: MessageKernelAccess,
    pub get_user: MessageGetUser,
    pub get_runs: MessageGetRuns,
    /// Rows a get_runs answer must hold.
    pub runs_expected: usize,
    pub get_scheduled_runs: MessageGetScheduledRuns,
}

/// One call; `true` when the answer is the successful one (not merely an OK status).
async fn call(rpc: Rpc, c: &AuthedClient, q: &Requests) -> bool {
    let mut c = c.clone();
    let fut = async move {
        match rpc {
            Rpc::KernelAccess => c
                .kernel_access(q.kernel_access.clone())
                .await
                .is_ok_and(|r| r.get_ref().state == ResponseState::Success as i32),
            Rpc::GetUser => c
                .get_user(q.get_user.clone())
                .await
                .is_ok_and(|r| r.get_ref().exists),
            Rpc::GetRuns => c
                .get_runs(q.get_runs.clone())
                .await
                .is_ok_and(|r| r.get_ref().runs.len() == q.runs_expected),
            Rpc::GetScheduledRuns => c
                .get_scheduled_runs(q.get_scheduled_runs.clone())
                .await
                .is_ok_and(|r| {
                    r.get_ref().state == ResponseState::Success as i32
                        && !r.get_ref().events.is_empty()
                }),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .unwrap_or(false)
}

/// What a server answers to the checked RPCs, to show every server did the same work: the
/// runids `get_runs` returns (in its order) and the number of `get_scheduled_runs` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answers {
    pub runids: Vec<String>,
    pub events: usize,
}

pub(super) async fn answers(c: &AuthedClient, q: &Requests) -> Result<Answers> {
    let mut c = c.clone();
    let runs = c.get_runs(q.get_runs.clone()).await?.into_inner().runs;
    let r = c
        .get_scheduled_runs(q.get_scheduled_runs.clone())
        .await?
        .into_inner();
    if r.state != ResponseState::Success as i32 {
        bail!("get_scheduled_runs answered {:?}", r.message);
    }
    Ok(Answers {
        runids: runs.into_iter().map(|r| r.runid).collect(),
        events: r.events.len(),
    })
}

/// A measured phase: the calls and what the server (and its database) spent on them.
#[derive(Debug, Default)]
pub(super) struct Phase {
    pub load: LoadResult,
    pub cpu: CpuUse,
}

/// How a phase issues its calls.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    /// `streams` calls back to back.
    Closed,
    /// `rate` calls per second in all, latency from each call's scheduled start.
    Open(f64),
}

/// Drives `rpc` at `streams` concurrency for `duration` and reads the CPU the target spent.
pub(super) async fn measure(
    t: &Target,
    clients: &[AuthedClient],
    q: &Arc<Requests>,
    rpc: Rpc,
    streams: usize,
    shape: Shape,
    duration: Duration,
) -> Result<Phase> {
    let make = || {
        let clients = clients.to_vec();
        let q = q.clone();
        move |w: usize| {
            let c = clients[w % clients.len()].clone();
            let q = q.clone();
            async move { call(rpc, &c, &q).await }
        }
    };
    let mark = t.mark()?;
    let load = match shape {
        Shape::Closed => closed_loop(streams, duration, make()).await,
        Shape::Open(rate) => open_loop(streams, rate, duration, make()).await,
    };
    let cpu = mark.since(t.pid, t.db_pid)?;
    Ok(Phase { load, cpu })
}

/// Proves `rpc` succeeds on `t` before it is timed (a fast failure is not a result).
pub(super) async fn check(t: &Target, c: &AuthedClient, q: &Requests, rpc: Rpc) -> Result<()> {
    if !call(rpc, c, q).await {
        bail!("{}: {} does not succeed", t.name, rpc.label());
    }
    Ok(())
}
