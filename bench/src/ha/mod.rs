//! `leotest-ha-load`: a steady load of kernel decisions, `update_run` and `get_runs` against
//! the `ha` compose testbed while the e2e script kills an orchestrator replica; afterwards it
//! reads every acknowledged run back through the balancer and reports losses, latencies and
//! the longest gap between answers around the kill (`scripts/e2e-ha.sh`).
//!
//! It runs inside a labeled experiment container, so the kernel service maps it to that
//! container's user exactly as it would a real experiment.

pub mod record;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use leotest_client::kernel::{KernelClient, KernelCommand};
use leotest_client::leotest_proto::unary::{
    MessageGetRuns, MessageUpdateRun, ResponseState, RunInstance,
};
use leotest_client::{ClientConfig, Credentials, LeotestClient, RetryPolicy};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::MissedTickBehavior;

use record::{Record, Stream, Writes};

/// Load and failover check for the `ha` testbed (see scripts/e2e-ha.sh).
#[derive(Debug, Parser)]
#[command(name = "leotest-ha-load", version, about)]
pub struct Args {
    /// Kernel service (host:port), reached from this container.
    #[arg(long, default_value = "kernel-service:9000")]
    pub kernel: String,
    /// The orchestrator's load balancer (host:port).
    #[arg(long, default_value = "orchestrator-lb:50051")]
    pub orchestrator: String,
    /// CA certificate of the orchestrator (PEM).
    #[arg(long)]
    pub ca_cert: PathBuf,
    /// User id for the gRPC calls (a node reports its runs).
    #[arg(long, default_value = "node-1")]
    pub userid: String,
    /// File holding that user's access token.
    #[arg(long)]
    pub access_token_file: PathBuf,
    /// Seconds of load.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Kernel decisions per second.
    #[arg(long, default_value_t = 20.0)]
    pub kernel_rate: f64,
    /// `update_run` calls per second.
    #[arg(long, default_value_t = 20.0)]
    pub update_rate: f64,
    /// `get_runs` calls per second.
    #[arg(long, default_value_t = 10.0)]
    pub read_rate: f64,
    /// gRPC connections (HTTP/2 channels) the calls are spread over; the balancer places
    /// each on a replica, so several make sure both replicas carry load.
    #[arg(long, default_value_t = 4)]
    pub conns: usize,
    /// Answer deadline of one request, retries included (the kernel service's default).
    #[arg(long, default_value_t = 3.0)]
    pub deadline: f64,
    /// Job id (and run id prefix) of the runs written; default ha-load-<unix time>.
    #[arg(long)]
    pub job: Option<String>,
    /// File the test script writes the kill time into (Unix milliseconds), read at the end.
    #[arg(long)]
    pub event_file: Option<PathBuf>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("leotest-ha-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok((text, complete)) => {
            print!("{text}");
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("leotest-ha-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// What the streams share.
struct Shared {
    kernel: KernelClient,
    clients: Vec<LeotestClient>,
    next: AtomicU64,
    deadline: Duration,
    job: String,
    nodeid: String,
    /// Acknowledged run ids, in order.
    acked: Mutex<Vec<String>>,
}

impl Shared {
    fn client(&self, n: u64) -> &LeotestClient {
        &self.clients[n as usize % self.clients.len()]
    }

    fn latest_acked(&self) -> Option<String> {
        self.acked.lock().ok().and_then(|a| a.last().cloned())
    }
}

async fn kernel_decision(sh: &Shared) -> Result<(), String> {
    match sh.kernel.request(&KernelCommand::CcaCheck).await {
        Ok((reply, _)) if reply.access_denied => Err("access_denied".into()),
        Ok((_, text)) if text.contains("net.ipv4.tcp_congestion_control = ") => Ok(()),
        Ok((_, text)) => Err(format!("unexpected reply {:?}", text.trim())),
        Err(e) => Err(e.to_string()),
    }
}

async fn update_run(sh: &Shared, seq: u64) -> Result<(), String> {
    let runid = format!("{}-{seq:06}", sh.job);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let req = MessageUpdateRun {
        run: Some(RunInstance {
            runid: runid.clone(),
            jobid: sh.job.clone(),
            nodeid: sh.nodeid.clone(),
            userid: sh.nodeid.clone(),
            start_time: now.clone(),
            end_time: now.clone(),
            last_updated: now,
            blob_url: String::new(),
            status: "complete".into(),
            status_message: "leotest-ha-load".into(),
        }),
    };
    let res = sh
        .client(seq)
        .update_run(req)
        .await
        .map_err(|e| e.to_string())?;
    if res.state != ResponseState::Success as i32 {
        return Err(format!("FAILED: {}", res.message));
    }
    if let Ok(mut acked) = sh.acked.lock() {
        acked.push(runid);
    }
    Ok(())
}

/// Reads the latest acknowledged run back: an acknowledged write must be visible through
/// whichever replica answers.
async fn get_runs(sh: &Shared, seq: u64) -> Result<(), String> {
    let Some(runid) = sh.latest_acked() else {
        return Ok(());
    };
    let res = sh
        .client(seq)
        .get_runs(MessageGetRuns {
            runid: Some(runid.clone()),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    if res.runs.iter().any(|r| r.runid == runid) {
        Ok(())
    } else {
        Err(format!("acknowledged run {runid} not found"))
    }
}

/// Issues `rate` requests per second of `stream` for `duration`, each in its own task so that
/// a stalled request never delays the schedule; latency counts from the scheduled start.
async fn open_loop(
    sh: Arc<Shared>,
    stream: Stream,
    rate: f64,
    duration: Duration,
    tx: mpsc::UnboundedSender<Record>,
) {
    if rate <= 0.0 {
        return;
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    // Enough for every request of one deadline to be outstanding at once, and then some.
    let slots = Arc::new(Semaphore::new(
        (rate * sh.deadline.as_secs_f64() * 2.0) as usize + 16,
    ));
    let start = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let scheduled = tick.tick().await.into_std();
        if scheduled.duration_since(start) >= duration {
            break;
        }
        let start_ms = unix_ms(SystemTime::now() - scheduled.elapsed());
        let (sh, tx, slots) = (sh.clone(), tx.clone(), slots.clone());
        tasks.spawn(async move {
            let error = match slots.try_acquire() {
                Err(_) => Some("client overloaded: too many requests outstanding".to_string()),
                Ok(_permit) => {
                    let seq = sh.next.fetch_add(1, Ordering::Relaxed);
                    let call = async {
                        match stream {
                            Stream::Kernel => kernel_decision(&sh).await,
                            Stream::UpdateRun => update_run(&sh, seq).await,
                            Stream::GetRuns => get_runs(&sh, seq).await,
                        }
                    };
                    match tokio::time::timeout(sh.deadline, call).await {
                        Ok(r) => r.err(),
                        Err(_) => Some(format!("no answer within {} ms", sh.deadline.as_millis())),
                    }
                }
            };
            let _ = tx.send(Record {
                stream,
                start_ms,
                latency: scheduled.elapsed(),
                error,
            });
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Reads back every run of the job and compares with what was acknowledged; when they cannot
/// be read, every acknowledged run counts as missing.
async fn verify(sh: &Shared) -> Writes {
    let acked = sh.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let res = match sh.clients[0]
        .get_runs(MessageGetRuns {
            jobid: Some(sh.job.clone()),
            ..Default::default()
        })
        .await
    {
        Ok(res) => res,
        Err(e) => {
            return Writes {
                acked: acked.len(),
                missing: acked.into_iter().take(10).collect(),
                error: Some(format!("reading the runs back: {e}")),
                ..Writes::default()
            }
        }
    };
    let stored: HashSet<&str> = res.runs.iter().map(|r| r.runid.as_str()).collect();
    let acked_set: HashSet<&str> = acked.iter().map(String::as_str).collect();
    let missing: Vec<String> = acked
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .cloned()
        .collect();
    Writes {
        acked: acked.len(),
        readable: acked.len() - missing.len(),
        unacked_stored: stored.iter().filter(|id| !acked_set.contains(*id)).count(),
        missing: missing.into_iter().take(10).collect(),
        error: None,
    }
}

async fn connect(args: &Args, deadline: Duration) -> anyhow::Result<Vec<LeotestClient>> {
    let token = tokio::fs::read_to_string(&args.access_token_file)
        .await
        .with_context(|| format!("reading {}", args.access_token_file.display()))?;
    let mut clients = Vec::with_capacity(args.conns.max(1));
    for _ in 0..args.conns.max(1) {
        let mut cfg = ClientConfig::new(
            args.orchestrator.clone(),
            Credentials::Static {
                userid: args.userid.clone(),
                access_token: token.trim().to_string(),
            },
        );
        cfg.ca_cert = Some(args.ca_cert.clone());
        // Like the kernel service: short attempts, retried within the deadline.
        cfg.timeout = Duration::from_secs(1).min(deadline);
        cfg.retry = RetryPolicy {
            max_attempts: 10,
            max_elapsed: deadline,
            initial_backoff: Duration::from_millis(100),
        };
        // Each client has its own channel, hence its own connection through the balancer.
        clients.push(LeotestClient::connect(cfg).await?);
    }
    Ok(clients)
}

/// Runs the load, then the read-back; returns the report and whether the read-back worked.
pub async fn run(args: Args) -> anyhow::Result<(String, bool)> {
    let deadline = Duration::from_secs_f64(args.deadline.clamp(0.1, 60.0));
    let duration = Duration::from_secs_f64(args.duration.clamp(1.0, 3600.0));
    let job = args.job.clone().unwrap_or_else(|| {
        format!(
            "ha-load-{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        )
    });
    let (host, port) = args
        .kernel
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .context("--kernel must be host:port")?;
    let sh = Arc::new(Shared {
        kernel: KernelClient::new(host, port, deadline),
        clients: connect(&args, deadline).await?,
        next: AtomicU64::new(0),
        deadline,
        job: job.clone(),
        nodeid: args.userid.clone(),
        acked: Mutex::new(Vec::new()),
    });
    let started = SystemTime::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let streams = [
        (Stream::Kernel, args.kernel_rate),
        (Stream::UpdateRun, args.update_rate),
        (Stream::GetRuns, args.read_rate),
    ];
    let mut loops = Vec::new();
    for (stream, rate) in streams {
        loops.push(tokio::spawn(open_loop(
            sh.clone(),
            stream,
            rate,
            duration,
            tx.clone(),
        )));
    }
    drop(tx);
    for l in loops {
        l.await.context("load task")?;
    }
    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        records.push(r);
    }
    // The event file holds `SENT DONE` (Unix ms around `docker kill`), or one time for both.
    let event =
        match &args.event_file {
            Some(path) => match tokio::fs::read_to_string(path).await {
                Ok(text) => Some(parse_event(&text).with_context(|| {
                    format!("{}: not one or two Unix times in ms", path.display())
                })?),
                Err(_) => None,
            },
            None => None,
        };
    let event_ms = event.map(|e| e.done);
    let writes = verify(&sh).await;
    let summaries: Vec<_> = Stream::ALL
        .iter()
        .map(|s| record::summarize(&records, *s, event))
        .collect();
    let mut out = format!(
        "# leotest-ha-load: job {job}, {:.0} s, kernel {}/s, update_run {}/s, get_runs {}/s, {} connections, deadline {} ms\n",
        duration.as_secs_f64(),
        args.kernel_rate,
        args.update_rate,
        args.read_rate,
        sh.clients.len(),
        deadline.as_millis()
    );
    match event_ms {
        Some(ev) => out.push_str(&format!(
            "# event (replica killed) at +{:.1} s\n",
            (ev - unix_ms(started)) / 1000.0
        )),
        None => out.push_str("# no event recorded\n"),
    }
    out.push_str(&record::report(&summaries, &writes, event_ms));
    Ok((out, writes.error.is_none()))
}

fn parse_event(text: &str) -> Option<record::Event> {
    let times: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match times[..] {
        [at] => Some(record::Event { sent: at, done: at }),
        [sent, done] if sent <= done => Some(record::Event { sent, done }),
        _ => None,
    }
}
