//! The in-process orchestrator: production's gRPC stack ([`Stack`], the one `server::run`
//! serves: the service, health and reflection behind the budget, metrics and auth layers, with
//! the binary's default flags), served by tonic over in-memory duplex pipes (no TLS, no socket,
//! no binary), on the embedded store in a temporary directory bootstrapped with the harness's
//! admin token, with a [`TestClock`] that stands still until a test moves it.
//!
//! What `server::run` adds around the stack needs the outside world and is left out: TLS, the
//! listener and its connection admission (so the budget layer sees no connection to charge),
//! the metrics endpoint (so the metrics layers record nothing), the purge loop.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Parser as _;
use hyper_util::rt::TokioIo;
use leotest_orchestrator::cli::Cli;
use leotest_orchestrator::clock::TestClock;
use leotest_orchestrator::server::{bootstrap_admin, Stack};
use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::Store;
use leotest_proto::unary::*;
use leotest_proto::LeotestOrchestratorClient;
use leotest_test_support::calls::{self, Client};
use leotest_test_support::{future_year, token_from_message, As, Creds, ADMIN_TOKEN};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

/// The year of every date the tests write: test-support's `future_year()`, the first year at
/// least two years ahead with 2030's calendar (so weekdays keep their shape), the one its
/// `calls::atq_job` dates jobs in. The clock starts on 1 January of it. `{YEAR}` in a format
/// string prints it.
pub(crate) struct Year;

/// See [`Year`].
pub(crate) const YEAR: Year = Year;

impl std::fmt::Display for Year {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", future_year())
    }
}

/// Bytes buffered in each direction of one in-memory connection.
const PIPE_BYTES: usize = 1 << 16;

/// One orchestrator for one test.
pub(crate) struct Harness {
    pub clock: Arc<TestClock>,
    channel: Channel,
    client: Client,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `YEAR-mm-dd hh:00:00` in UTC.
pub(crate) fn at(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(future_year(), month, day)
        .and_then(|d| d.and_hms_opt(hour, 0, 0))
        .expect("a valid date")
        .and_utc()
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let clock = TestClock::at(at(1, 1, 0));
        let store: Arc<dyn Store> = Arc::new(
            EmbeddedStore::open_with_clock(dir.path(), clock.clone()).expect("embedded store"),
        );
        // The binary's defaults (budgets, overlap rules, token storage, message sizes); as in
        // the binary, LEOTEST_* variables would change them.
        let cfg = Cli::try_parse_from(["leotest-orchestrator"])
            .expect("the default flags")
            .server;
        bootstrap_admin(store.as_ref(), ADMIN_TOKEN, cfg.token_storage)
            .await
            .expect("admin bootstrap");
        let stack = Stack::new(&cfg, store, clock.clone(), None, None)
            .await
            .expect("the gRPC stack");

        // Each connection the client opens is one duplex pipe; the server end goes to the
        // server's incoming stream.
        let (tx, rx) = mpsc::unbounded_channel::<DuplexStream>();
        let incoming = UnboundedReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
        let server = tokio::spawn(async move {
            let served = stack.serve(incoming, std::future::pending()).await;
            if let Err(e) = served {
                panic!("in-process server failed: {e}");
            }
        });
        let channel = Endpoint::from_static("http://in-process.invalid")
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let (client, server) = tokio::io::duplex(PIPE_BYTES);
                let sent = tx.send(server);
                async move {
                    sent.map_err(|_| std::io::Error::other("in-process server stopped"))?;
                    Ok::<_, std::io::Error>(TokioIo::new(client))
                }
            }))
            .await
            .expect("in-process channel");
        Harness {
            clock,
            client: LeotestOrchestratorClient::new(channel.clone()),
            channel,
            server,
            _dir: dir,
        }
    }

    /// The in-process connection, for the services beside the orchestrator's.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A client acting as `creds`.
    pub(crate) fn with(&self, creds: &Creds) -> As {
        As::new(&self.client, creds)
    }

    pub(crate) fn admin(&self) -> As {
        self.with(&Creds::admin())
    }

    /// A client sending no credentials.
    pub(crate) fn anonymous(&self) -> As {
        self.with(&Creds::None)
    }

    /// Registers user `id` with `role` through the admin; a client acting as it.
    pub(crate) async fn user(&self, id: &str, role: UserRoles) -> As {
        let r = self
            .admin()
            .register_user(MessageRegisterUser {
                id: id.into(),
                name: format!("{id} name"),
                role: role as i32,
                team: "team-x".into(),
            })
            .await;
        assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
        self.with(&Creds::token(id, &token_from_message(&r.message)))
    }

    /// Registers node `id` through the admin; a client acting as its NODE identity.
    pub(crate) async fn node(&self, id: &str) -> As {
        let r = self
            .admin()
            .register_node(MessageRegisterNode {
                node: Some(node_record(id)),
            })
            .await;
        assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
        self.with(&Creds::token(id, &token_from_message(&r.message)))
    }
}

/// The node record a test registers (location `bangalore`): test-support's.
pub(crate) use leotest_test_support::calls::node_record;

/// test-support's atq job on `nodeid` (1 March 10:00 to 2 March 10:00 of [`YEAR`], 600 s),
/// with a secret in its command line and overhead on.
pub(crate) fn atq_job(id: &str, nodeid: &str) -> MessageScheduleJob {
    let mut job = calls::atq_job(id, nodeid, "");
    if let Some(p) = job.params.as_mut() {
        p.execute = "run --secret=s3".into();
    }
    job.overhead = true;
    job
}

/// A run of a job as a node agent reports it (test-support's, dated in [`YEAR`]).
pub(crate) use leotest_test_support::calls::run;

/// A SERVER_START task of `jobid` for `nodeid`.
pub(crate) fn task(taskid: &str, jobid: &str, nodeid: &str) -> Task {
    Task {
        r#type: TaskType::ServerStart as i32,
        taskid: taskid.into(),
        runid: "r1".into(),
        jobid: jobid.into(),
        nodeid: nodeid.into(),
        ttl_secs: 600,
        ..Default::default()
    }
}

/// The `state` field of a success / a failure.
pub(crate) const OK: i32 = ResponseState::Success as i32;
pub(crate) const FAILED: i32 = ResponseState::Failed as i32;

/// The original's denial text for `who` with `role`.
pub(crate) fn denied(who: &As, role: &str) -> String {
    format!(
        "permission denied: userid={} and role={role}",
        who.creds().who()
    )
}

/// A standard scene: user `alice` (USER) owns job `j1` on node `n1`; `bob` (USER) is a
/// stranger; `n2` is another node.
pub(crate) struct Scene {
    pub h: Harness,
    pub alice: As,
    pub bob: As,
    pub n1: As,
    pub n2: As,
}

impl Scene {
    pub(crate) async fn new() -> Scene {
        let h = Harness::start().await;
        let alice = h.user("alice", UserRoles::User).await;
        let bob = h.user("bob", UserRoles::User).await;
        let n1 = h.node("n1").await;
        let n2 = h.node("n2").await;
        let r = alice.schedule_job(atq_job("j1", "n1")).await;
        assert_eq!(r.state, OK, "{}", r.message);
        Scene {
            h,
            alice,
            bob,
            n1,
            n2,
        }
    }
}
