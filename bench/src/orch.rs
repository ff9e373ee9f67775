//! The real orchestrator binary over TLS: fixture (test-support's harness started the way the
//! benchmarks run it, plus the benchmark's users and store) and the RPC throughput benchmark.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use leotest_proto::unary::{
    MessageGetUser, MessageKernelAccess, MessageRegisterUser, ResponseState, UserRoles,
};
use leotest_proto::{LeotestOrchestratorClient, TOKEN_HEADER, USERID_HEADER};
use leotest_test_support::{localhost_tls, try_token_from_message};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::load::{closed_loop, open_loop, LoadResult};
use crate::procs::{binary, Memory};
use crate::stats::{ratio_line, table, Row};
use crate::Settings;

/// Which store the orchestrator under test uses.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The orchestrator's own embedded store.
    Embedded,
    /// MongoDB-wire server at this URI (a fresh database per run).
    Mongo(String),
}

impl Backend {
    /// Name of the backend in result tables.
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Mongo(_) => "mongodb-wire",
        }
    }
}

/// Adds the static-token credentials to every request.
#[derive(Clone)]
pub struct StaticAuth {
    userid: MetadataValue<tonic::metadata::Ascii>,
    token: MetadataValue<tonic::metadata::Ascii>,
}

impl StaticAuth {
    /// Credentials for `userid` with a static `token`; fails when either is not valid metadata.
    pub fn new(userid: &str, token: &str) -> Result<Self> {
        Ok(StaticAuth {
            userid: userid.parse().context("userid metadata")?,
            token: token.parse().context("token metadata")?,
        })
    }
}

impl tonic::service::Interceptor for StaticAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        md.insert(USERID_HEADER, self.userid.clone());
        md.insert(TOKEN_HEADER, self.token.clone());
        Ok(req)
    }
}

/// An orchestrator client that sends static-token credentials with every call.
pub type AuthedClient = LeotestOrchestratorClient<InterceptedService<Channel, StaticAuth>>;

/// A client on `ch` that calls as `userid` with `token`, taking replies of any size the
/// benchmarks ask for (long run lists).
pub fn authed_client(ch: &Channel, userid: &str, token: &str) -> Result<AuthedClient> {
    Ok(
        LeotestOrchestratorClient::with_interceptor(ch.clone(), StaticAuth::new(userid, token)?)
            .max_decoding_message_size(256 << 20),
    )
}

/// A running orchestrator with a NODE user and a USER_PRIV user registered: test-support's
/// harness (certificate, free port, start-up wait, kill on drop) started the way the
/// benchmarks run it, plus the benchmark's users and store.
pub struct Orchestrator {
    /// User id of the NODE user.
    pub node_id: String,
    /// Access token of the NODE user.
    pub node_token: String,
    /// User id of the USER_PRIV user.
    pub priv_id: String,
    /// Access token of the USER_PRIV user.
    pub priv_token: String,
    backend: Backend,
    /// The MongoDB database, shared by replicas.
    db_name: Option<String>,
    process: leotest_test_support::Orchestrator,
}

/// A fresh private directory for one orchestrator (certificate, log, embedded store).
pub fn scratch_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("leotest-bench-orch")
        .tempdir()?)
}

/// Data directory of the embedded store inside a [`scratch_dir`] (the harness's).
pub fn data_dir(dir: &Path) -> PathBuf {
    leotest_test_support::Orchestrator::data_dir_in(dir)
}

pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .context("read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Orchestrator {
    /// Generates a fresh certificate, starts the release binary on a free loopback port and
    /// registers the benchmark users through the admin account.
    pub async fn start(bin_dir: &Path, backend: &Backend) -> Result<Self> {
        Self::start_in(scratch_dir()?, bin_dir, backend).await
    }

    /// Like [`start`](Self::start) in a directory the caller prepared; the embedded store
    /// lives in its `data` subdirectory.
    pub async fn start_in(
        dir: tempfile::TempDir,
        bin_dir: &Path,
        backend: &Backend,
    ) -> Result<Self> {
        let bin = binary(bin_dir, "leotest-orchestrator")?;
        Self::start_bin_in(dir, &bin, backend).await
    }

    /// Like [`start`](Self::start) with the orchestrator binary at `bin` (e.g. a baseline
    /// build).
    pub async fn start_bin(bin: &Path, backend: &Backend) -> Result<Self> {
        Self::start_bin_in(scratch_dir()?, bin, backend).await
    }

    async fn start_bin_in(dir: tempfile::TempDir, bin: &Path, backend: &Backend) -> Result<Self> {
        let db_name = match backend {
            Backend::Embedded => None,
            Backend::Mongo(_) => Some(format!("leotest_bench_{}", random_hex(4)?)),
        };
        let mut o = Self::spawn(dir, bin, backend, db_name, &random_hex(16)?).await?;
        let admin = o.client(&o.channel().await?, "admin", o.admin_token())?;
        o.node_token = register(&admin, &o.node_id, UserRoles::Node).await?;
        o.priv_token = register(&admin, &o.priv_id, UserRoles::UserPriv).await?;
        Ok(o)
    }

    /// A second process of the binary at `bin` on the same MongoDB database (a replica),
    /// with the same users.
    pub async fn replica(&self, bin: &Path) -> Result<Self> {
        let Backend::Mongo(_) = &self.backend else {
            bail!("replicas need the MongoDB store");
        };
        let mut o = Self::spawn(
            scratch_dir()?,
            bin,
            &self.backend,
            self.db_name.clone(),
            self.admin_token(),
        )
        .await?;
        o.node_token = self.node_token.clone();
        o.priv_token = self.priv_token.clone();
        Ok(o)
    }

    /// Starts `bin` in `dir` with a fresh certificate of its own `gen-cert`, on `backend`,
    /// as the benchmarks always have: the caller's environment, `RUST_LOG=warn`, ready once
    /// the port accepts connections (the `info` line is not logged at `warn`).
    async fn spawn(
        dir: tempfile::TempDir,
        bin: &Path,
        backend: &Backend,
        db_name: Option<String>,
        admin_token: &str,
    ) -> Result<Self> {
        let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        leotest_test_support::Orchestrator::try_gen_cert_at(bin, &cert, &key)?;
        let store: Vec<String> = match backend {
            Backend::Embedded => vec!["--store".into(), "embedded".into()],
            Backend::Mongo(uri) => vec![
                "--store".into(),
                "mongo".into(),
                "--db-server".into(),
                uri.clone(),
                "--db-name".into(),
                db_name.clone().unwrap_or_default(),
            ],
        };
        let mut b = leotest_test_support::Orchestrator::builder()
            .bin(bin)
            .dir(dir)
            .cert(&cert, &key)
            .admin_token(admin_token)
            .inherit_env()
            .log_level("warn")
            .ready_on_port()
            .args(&store);
        if !has_listen_flag(bin) {
            b = b.grpc_port_flag();
        }
        let process = b.try_start().await.context("the orchestrator under test")?;
        Ok(Orchestrator {
            node_id: "bench-node".into(),
            node_token: String::new(),
            priv_id: "bench-priv".into(),
            priv_token: String::new(),
            backend: backend.clone(),
            db_name,
            process,
        })
    }

    /// Address it listens on (loopback).
    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// Its self-signed TLS certificate, trusted by the bench's clients.
    pub fn cert(&self) -> PathBuf {
        self.process.cert_path()
    }

    /// The static admin access token.
    pub fn admin_token(&self) -> &str {
        &self.process.admin_token
    }

    /// The MongoDB database it uses (a fresh one per [`start`](Self::start), shared by its
    /// replicas); `None` on the embedded store.
    pub fn db_name(&self) -> Option<&str> {
        self.db_name.as_deref()
    }

    /// The process id.
    pub fn pid(&self) -> Result<u32> {
        self.process
            .pid()
            .context("the orchestrator is not running")
    }

    /// A new HTTP/2 connection over TLS, trusting the fresh certificate, name `localhost`.
    pub async fn channel(&self) -> Result<Channel> {
        let tls = localhost_tls(std::fs::read(self.cert())?);
        let ch = Endpoint::from_shared(format!("https://{}", self.addr()))?
            .tls_config(tls)?
            .tcp_nodelay(true)
            .connect()
            .await
            .context("connect to the orchestrator")?;
        Ok(ch)
    }

    /// A client on `ch` that calls as `userid` with `token`.
    pub fn client(&self, ch: &Channel, userid: &str, token: &str) -> Result<AuthedClient> {
        authed_client(ch, userid, token)
    }

    /// Clients authenticated as the NODE user, spread over `conns` connections.
    pub async fn node_clients(&self, conns: usize) -> Result<Vec<AuthedClient>> {
        self.clients_as(&self.node_id, &self.node_token, conns)
            .await
    }

    /// `conns` clients as the admin, who may read every run (a node sees only its own).
    pub async fn admin_clients(&self, conns: usize) -> Result<Vec<AuthedClient>> {
        self.clients_as("admin", self.admin_token(), conns).await
    }

    async fn clients_as(
        &self,
        userid: &str,
        token: &str,
        conns: usize,
    ) -> Result<Vec<AuthedClient>> {
        let mut v = Vec::with_capacity(conns);
        for _ in 0..conns {
            let ch = self.channel().await?;
            v.push(self.client(&ch, userid, token)?);
        }
        Ok(v)
    }

    /// The orchestrator's memory use now.
    pub fn memory(&self) -> Result<Memory> {
        Memory::of(self.pid()?)
    }
}

/// Registers `id` with `role` through an ADMIN client; the token from the reply.
pub async fn register(admin: &AuthedClient, id: &str, role: UserRoles) -> Result<String> {
    let reply = admin
        .clone()
        .register_user(MessageRegisterUser {
            id: id.to_string(),
            name: format!("bench {id}"),
            role: role as i32,
            team: "bench".to_string(),
        })
        .await
        .with_context(|| format!("register_user {id}"))?
        .into_inner();
    if reply.state != ResponseState::Success as i32 {
        bail!("register_user {id}: {}", reply.message);
    }
    try_token_from_message(&reply.message)
        .with_context(|| format!("no access_token in reply {:?}", reply.message))
}

/// One RPC the benchmark drives.
#[derive(Debug, Clone, Copy)]
pub enum Rpc {
    /// `kernel_access`: authentication plus a store read.
    KernelAccess,
    /// `get_user`: authentication plus a store read.
    GetUser,
    /// The gRPC health check: no authentication, no store (the baseline).
    Health,
}

impl Rpc {
    /// Name of the RPC in result tables.
    pub fn label(self) -> &'static str {
        match self {
            Rpc::KernelAccess => "kernel_access (auth+store)",
            Rpc::GetUser => "get_user (auth+store)",
            Rpc::Health => "health Check (baseline, no auth)",
        }
    }
}

/// Runs `rpc` closed-loop at `streams` concurrency, then open-loop at half the rate reached.
pub async fn drive(
    o: &Orchestrator,
    rpc: Rpc,
    streams: usize,
    conns: usize,
    duration: Duration,
) -> Result<(LoadResult, LoadResult)> {
    let authed = o.node_clients(conns).await?;
    let mut health = Vec::with_capacity(conns);
    for _ in 0..conns {
        health.push(tonic_health::pb::health_client::HealthClient::new(
            o.channel().await?,
        ));
    }
    let target = o.priv_id.clone();
    // Prove the call succeeds before timing it: a fast failure is not a result.
    if !call(rpc, &authed[0], &health[0], &target).await {
        bail!("{} does not succeed against the orchestrator", rpc.label());
    }
    let make = move || {
        let authed = authed.clone();
        let health = health.clone();
        let target = target.clone();
        move |w: usize| {
            let a = authed[w % authed.len()].clone();
            let h = health[w % health.len()].clone();
            let t = target.clone();
            async move { call(rpc, &a, &h, &t).await }
        }
    };
    // Warm-up: connections, TLS sessions, store caches.
    let _ = closed_loop(streams, duration / 5, make()).await;
    let closed = closed_loop(streams, duration, make()).await;
    let rate = closed.rps() / 2.0;
    let open = open_loop(streams, rate, duration, make()).await;
    Ok((closed, open))
}

async fn call(
    rpc: Rpc,
    authed: &AuthedClient,
    health: &tonic_health::pb::health_client::HealthClient<Channel>,
    target: &str,
) -> bool {
    match rpc {
        Rpc::KernelAccess => authed
            .clone()
            .kernel_access(MessageKernelAccess {
                userid: target.to_string(),
            })
            .await
            .is_ok_and(|r| r.get_ref().state == ResponseState::Success as i32),
        Rpc::GetUser => authed
            .clone()
            .get_user(MessageGetUser {
                userid: target.to_string(),
            })
            .await
            .is_ok_and(|r| r.get_ref().exists),
        Rpc::Health => health
            .clone()
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok(),
    }
}

/// The `orchestrator` subcommand for one backend.
pub async fn run(s: &Settings, backend: &Backend) -> Result<String> {
    let o = Orchestrator::start(&s.bin_dir, backend).await?;
    let idle = o.memory()?;
    let mut rows = Vec::new();
    let mut peak = Vec::new();
    let mut out = String::new();
    for rpc in [Rpc::Health, Rpc::KernelAccess, Rpc::GetUser] {
        let (mut closed, mut open) = drive(&o, rpc, s.streams, s.conns, s.duration).await?;
        if closed.errors + open.errors > 0 {
            out.push_str(&format!(
                "warning: {}: {} failed calls\n",
                rpc.label(),
                closed.errors + open.errors
            ));
        }
        let rps = closed.rps();
        rows.push(Row::new(
            format!("{} @{} streams, closed loop", rpc.label(), s.streams),
            &mut closed.samples,
            Some(rps),
        ));
        let half = open.rps();
        rows.push(Row::new(
            format!("{} @half load, open loop", rpc.label()),
            &mut open.samples,
            Some(half),
        ));
        peak.push((rpc, rps));
    }
    let loaded = o.memory()?;
    let title = format!(
        "orchestrator ({} store, TLS, {} streams over {} HTTP/2 connections, {:?} per phase)",
        backend.label(),
        s.streams,
        s.conns,
        s.duration
    );
    out.insert_str(0, &table(&title, &rows));
    let base = peak[0].1;
    for (rpc, rps) in &peak[1..] {
        out.push_str(&ratio_line(
            &format!("{} req/s vs health Check req/s", rpc.label()),
            *rps,
            base,
            "req/s",
        ));
        out.push('\n');
    }
    out.push_str(&format!(
        "memory ({}): idle {}; after load {}\n",
        backend.label(),
        idle.describe(),
        loaded.describe()
    ));
    Ok(out)
}

/// Orchestrator memory idle and after `kernel_access` load (the `rss` subcommand).
pub async fn memory(s: &Settings) -> Result<String> {
    let o = Orchestrator::start(&s.bin_dir, &Backend::Embedded).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = o.memory()?;
    let (closed, _) = drive(&o, Rpc::KernelAccess, s.streams, s.conns, s.duration).await?;
    let loaded = o.memory()?;
    Ok(format!(
        "orchestrator memory (embedded): idle {}; after kernel_access load ({:.0} req/s) {}\n{}\n",
        idle.describe(),
        closed.rps(),
        loaded.describe(),
        ratio_line(
            "orchestrator VmHWM after load / idle VmRSS",
            loaded.hwm_kib as f64 / 1024.0,
            idle.rss_kib as f64 / 1024.0,
            "MiB"
        )
    ))
}

/// Whether `bin` takes `--listen` (loopback only). A baseline built before it existed is
/// told `--grpc-port` (it binds every interface; the admin token is random and the process
/// lives for one benchmark).
fn has_listen_flag(bin: &Path) -> bool {
    std::process::Command::new(bin)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--listen"))
        .unwrap_or(true)
}
