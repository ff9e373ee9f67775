//! `leotest-bench compare-original --orig DIR`: leotest-rs next to the Python original in one
//! run on one machine. The ORIGINAL orchestrator (`servers.py original-orchestrator`, on its
//! own nx-27017) and the ORIGINAL kernel service (`python -m services.kernel` on the host,
//! through `shim_kernel.py`) run beside ours (embedded store, and the same nx-27017 server);
//! the same Rust load generator (`crate::load`) and the same container-netns client
//! (`crate::kernel::in_netns`) measure both; the same records are loaded into both.

pub(crate) mod dataset;
mod decision;
mod harness;
mod report;
pub mod sites;
mod summary;
mod sysstat;
mod target;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::mongo::MongoStore;
use leotest_proto::unary::{
    MessageGetRuns, MessageGetScheduledRuns, MessageGetUser, MessageKernelAccess, UserRoles,
};

use crate::orch::{
    authed_client, data_dir, random_hex, register, scratch_dir, Backend, Orchestrator,
};
use crate::procs::{binary, Memory};
use crate::Settings;
use dataset::Dataset;
use harness::{load_original, Harness, MongoWire, OriginalOrchestrator};
use summary::RpcResult;
use target::{answers, check, connect, measure, Answers, Requests, Rpc, Shape, Target};

/// The users `Orchestrator::start` registers on ours; the original gets the same ones.
const NODE: &str = "bench-node";
const PRIV: &str = "bench-priv";

/// Where the original and the harness around its code are (`compare-original`, `sites`).
#[derive(Debug, Clone, clap::Args)]
pub struct OriginalSource {
    /// A checkout of leoscope-testbed/global-testbed: the original that is started.
    #[arg(long, value_name = "DIR")]
    pub orig: PathBuf,

    /// The harness around the original's code [default: compat-tests/original].
    #[arg(long, value_name = "DIR")]
    pub harness: Option<PathBuf>,
}

impl OriginalSource {
    /// The harness, set up.
    pub(crate) fn prepare(&self) -> Result<Harness> {
        Harness::prepare(&self.orig, self.harness.as_deref())
    }
}

/// Options of `compare-original`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Where the original's code and its harness are.
    #[command(flatten)]
    pub source: OriginalSource,

    /// Open-loop rate of the kernel_access latency phase, calls/s [default: half the
    /// original's closed-loop rate; the other RPCs always use half of theirs].
    #[arg(long)]
    pub rate: Option<f64>,

    /// Runs of the job get_runs reads (`limit 100` is asked for) [default: 10000, smoke 2000].
    #[arg(long)]
    pub runs: Option<usize>,

    /// Sequential kernel decisions per kernel service [default: 300, smoke 20].
    #[arg(long)]
    pub kernel_samples: Option<usize>,

    /// Leave out leotest-rs on the MongoDB-wire store (embedded vs the original only).
    #[arg(long)]
    pub no_mongo: bool,
}

/// Concurrency of each RPC's closed loop: the heavy ones queue behind the original's ten
/// worker threads, so fewer streams keep a phase near its nominal length.
fn streams_for(rpc: Rpc, s: &Settings) -> usize {
    match rpc {
        Rpc::KernelAccess | Rpc::GetUser => s.streams,
        Rpc::GetRuns => 16.min(s.streams),
        Rpc::GetScheduledRuns => 4.min(s.streams),
    }
}

/// A certificate made by our `gen-cert` for the original (ours makes its own the same way),
/// so both servers do the same TLS work.
fn gen_cert(bin_dir: &Path, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let bin = binary(bin_dir, "leotest-orchestrator")?;
    leotest_test_support::Orchestrator::try_gen_cert_at(&bin, &cert, &key)?;
    Ok((cert, key))
}

/// Every server of the run; dropped in field order (the database last).
struct Servers {
    targets: Vec<Target>,
    original: OriginalOrchestrator,
    ours: Orchestrator,
    _ours_mongo: Option<Orchestrator>,
    cert: PathBuf,
    _mongo: MongoWire,
}

async fn start_servers(
    s: &Settings,
    o: &Options,
    h: &Harness,
    work: &Path,
    data: &Dataset,
) -> Result<Servers> {
    let mongo = MongoWire::start(&h.repo, work)?;
    let dir = scratch_dir()?;
    let data_path = data_dir(dir.path());
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&data_path)).await??;
    data.load_ours(&store).await?;
    drop(store);
    let ours = Orchestrator::start_in(dir, &s.bin_dir, &Backend::Embedded).await?;
    if ours.node_id != NODE || ours.priv_id != PRIV {
        bail!("the bench's users are not {NODE} and {PRIV}");
    }
    let ours_mongo = if o.no_mongo {
        None
    } else {
        let m = Orchestrator::start(&s.bin_dir, &Backend::Mongo(mongo.uri.clone())).await?;
        let db = m.db_name().context("the MongoDB store has a database")?;
        let store = MongoStore::connect(&mongo.uri, db).await?;
        data.load_ours(&store).await?;
        Some(m)
    };

    let (cert, key) = gen_cert(&s.bin_dir, work)?;
    let admin_token = random_hex(16)?;
    let db = format!("leotest_compare_{}", random_hex(4)?);
    let mut original =
        OriginalOrchestrator::start(h, work, &cert, &key, &mongo, &db, &admin_token)?;
    let ready = target::wait_answering(
        original.addr,
        &cert,
        &admin_token,
        Duration::from_secs(120),
        || original.check_alive(),
    )
    .await;
    if let Err(e) = ready {
        bail!("the original orchestrator: {e:#}\n{}", original.log_tail());
    }
    let admin = authed_client(&connect(original.addr, &cert).await?, "admin", &admin_token)?;
    let node_token = register(&admin, NODE, UserRoles::Node).await?;
    register(&admin, PRIV, UserRoles::UserPriv).await?;
    load_original(h, work, &mongo, &db, &admin_token, &data.to_original())?;

    let mut targets = vec![
        Target {
            name: "Python original",
            addr: original.addr,
            cert: cert.clone(),
            node_id: NODE.into(),
            node_token,
            pid: original.pid,
            db_pid: Some(mongo.pid),
        },
        Target {
            name: "leotest-rs, embedded",
            addr: ours.addr(),
            cert: ours.cert(),
            node_id: ours.node_id.clone(),
            node_token: ours.node_token.clone(),
            pid: ours.pid()?,
            db_pid: None,
        },
    ];
    if let Some(m) = &ours_mongo {
        targets.push(Target {
            name: "leotest-rs, MongoDB-wire",
            addr: m.addr(),
            cert: m.cert(),
            node_id: m.node_id.clone(),
            node_token: m.node_token.clone(),
            pid: m.pid()?,
            db_pid: Some(mongo.pid),
        });
    }
    Ok(Servers {
        targets,
        original,
        ours,
        _ours_mongo: ours_mongo,
        cert,
        _mongo: mongo,
    })
}

async fn drive_rpcs(
    s: &Settings,
    o: &Options,
    sv: &Servers,
    q: &Arc<Requests>,
) -> Result<Vec<RpcResult>> {
    let mut out = Vec::new();
    for rpc in Rpc::ALL {
        let streams = streams_for(rpc, s);
        let mut clients = Vec::new();
        for t in &sv.targets {
            clients.push(t.node_clients(s.conns).await?);
        }
        let mut closed = Vec::new();
        for (t, c) in sv.targets.iter().zip(&clients) {
            // Warm-up: connections, TLS sessions, caches of either side.
            measure(t, c, q, rpc, streams, Shape::Closed, s.duration / 5).await?;
            closed.push(measure(t, c, q, rpc, streams, Shape::Closed, s.duration).await?);
        }
        // A rate the original sustains (it is the slowest); the same for every target.
        let orig_rps = closed[0].load.rps();
        let rate = match (rpc, o.rate) {
            (Rpc::KernelAccess, Some(r)) => r,
            _ => orig_rps / 2.0,
        }
        .max(0.5);
        // At least ~20 scheduled calls, at most three phase lengths (smoke: one).
        let open_d = if s.smoke {
            s.duration
        } else {
            s.duration
                .max(Duration::from_secs_f64(20.0 / rate))
                .min(s.duration * 3)
        };
        let mut open = Vec::new();
        for (t, c) in sv.targets.iter().zip(&clients) {
            open.push(measure(t, c, q, rpc, streams, Shape::Open(rate), open_d).await?);
        }
        out.push(RpcResult {
            rpc,
            streams,
            rate,
            closed,
            open,
        });
    }
    Ok(out)
}

/// Whether every server answered the same rows, in the same order, and the same events.
fn describe_answers(seen: &[(&str, Answers)]) -> String {
    let mut out = String::new();
    for (name, a) in seen {
        let _ = writeln!(
            out,
            "- {name}: get_runs {} runs ({} .. {}), get_scheduled_runs {} events",
            a.runids.len(),
            a.runids.first().map_or("-", String::as_str),
            a.runids.last().map_or("-", String::as_str),
            a.events
        );
    }
    let same = seen.windows(2).all(|w| w[0].1 == w[1].1);
    out.push_str(if same {
        "- every server answered the same runs in the same order and as many events\n"
    } else {
        "- the servers' answers differ (above): the original applies `limit` to its \
         natural order; see docs/compatibility.md\n"
    });
    out
}

/// The `compare-original` subcommand.
pub async fn run(s: &Settings, o: &Options) -> Result<String> {
    let work = tempfile::Builder::new()
        .prefix("leotest-bench-compare")
        .tempdir()?;
    let h = o.source.prepare()?;
    let runs = o.runs.unwrap_or(if s.smoke { 2_000 } else { 10_000 });
    let data = Dataset::new(NODE, PRIV, runs);
    let sv = start_servers(s, o, &h, work.path(), &data).await?;
    let (start, end) = data.window();
    let q = Arc::new(Requests {
        kernel_access: MessageKernelAccess {
            userid: PRIV.into(),
        },
        get_user: MessageGetUser {
            userid: PRIV.into(),
        },
        get_runs: MessageGetRuns {
            jobid: Some(dataset::RUNS_JOB.into()),
            limit: Some(dataset::LIMIT as i32),
            ..Default::default()
        },
        runs_expected: dataset::LIMIT.min(runs),
        get_scheduled_runs: MessageGetScheduledRuns {
            nodeid: dataset::BUSY_NODE.into(),
            start,
            end,
        },
    });

    // Every RPC must succeed on every server before anything is timed.
    let mut seen: Vec<(&str, Answers)> = Vec::new();
    for t in &sv.targets {
        let c = t.node_clients(1).await?.remove(0);
        for rpc in Rpc::ALL {
            check(t, &c, &q, rpc).await?;
        }
        seen.push((t.name, answers(&c, &q).await?));
    }
    let answered = describe_answers(&seen);
    let idle: Vec<Memory> = sv
        .targets
        .iter()
        .map(|t| Memory::of(t.pid))
        .collect::<Result<_>>()?;
    let mut results = drive_rpcs(s, o, &sv, &q).await?;
    let loaded: Vec<Memory> = sv
        .targets
        .iter()
        .map(|t| Memory::of(t.pid))
        .collect::<Result<_>>()?;

    let samples = o
        .kernel_samples
        .unwrap_or(if s.smoke { 20 } else { 300 })
        .max(1);
    let side = decision::OriginalSide {
        harness: &h,
        addr: sv.original.addr,
        cert: &sv.cert,
        node_id: NODE,
        node_token: &sv.targets[0].node_token,
    };
    let mut kernel = decision::run(s, work.path(), &sv.ours, &side, samples).await?;

    let sizes = [
        String::new(),
        String::new(),
        format!(" (limit {} of a job with {runs} runs)", dataset::LIMIT),
        format!(
            " (node with {} hourly cron jobs, {}-day window)",
            dataset::BUSY_JOBS,
            dataset::WINDOW_DAYS
        ),
    ];
    let n = sv.targets.len();
    let mut figs = summary::rpc_figures(n, &mut results, &sizes);
    figs.push(summary::memory_figure(n, &idle, &loaded));
    figs.extend(summary::kernel_figures(&mut kernel));

    let mut out = report::table("leotest-rs vs the Python original, same run", &figs);
    let _ = writeln!(
        out,
        "\nSetup: TLS with one `gen-cert` certificate kind on every server; {} HTTP/2 \
         connections per server; {:?} per closed-loop phase after a {:?} warm-up; the \
         original and leotest-rs (MongoDB-wire) on one nx-27017 server (separate databases); \
         kernel decisions: {samples} per service in {} interleaved rounds.",
        s.conns,
        s.duration,
        s.duration / 5,
        decision::ROUNDS
    );
    out.push_str("\nAnswers (checked before timing):\n");
    out.push_str(&answered);
    out.push_str(
        "- the original runs with the harness's shims, all listed in compat-tests/original/README.md \
         (listen address and port, nx-27017's `explain()` statistics)\n",
    );
    let names: Vec<&str> = sv.targets.iter().map(|t| t.name).collect();
    out.push_str(&summary::details(&names, &mut results));
    out.push_str(&summary::kernel_details(&mut kernel));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(ids: &[&str], events: usize) -> Answers {
        Answers {
            runids: ids.iter().map(|s| s.to_string()).collect(),
            events,
        }
    }

    #[test]
    fn answers_are_compared_row_by_row() {
        let same = describe_answers(&[("x", a(&["r1", "r2"], 3)), ("y", a(&["r1", "r2"], 3))]);
        assert!(same.contains("- x: get_runs 2 runs (r1 .. r2), get_scheduled_runs 3 events"));
        assert!(same.contains("every server answered the same"), "{same}");
        let order = describe_answers(&[("x", a(&["r1", "r2"], 3)), ("y", a(&["r2", "r1"], 3))]);
        assert!(order.contains("answers differ"), "{order}");
        let events = describe_answers(&[("x", a(&["r1"], 3)), ("y", a(&["r1"], 4))]);
        assert!(events.contains("answers differ"), "{events}");
    }
}
