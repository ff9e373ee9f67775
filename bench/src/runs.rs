//! `get_runs` over a large runs table (vs the same queries on a 1 000-run table) and
//! `get_scheduled_runs` for a busy node (vs a node with one job), on the embedded store and,
//! when a MongoDB-wire server is given, on the MongoDB store. Data is loaded through the
//! `Store` trait's bulk path (`insert_jobs` / `insert_runs`), the same records the RPCs write.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::mongo::MongoStore;
use leotest_orchestrator::store::{Job, Run, Store};
use leotest_proto::unary::{MessageGetRuns, MessageGetScheduledRuns, MessageTimeRange};

use crate::compare::dataset::cron_job;
use crate::load::closed_loop;
use crate::orch::{data_dir, scratch_dir, AuthedClient, Backend, Orchestrator};
use crate::stats::{ratio_line, table, Row};
use crate::Settings;

/// Runs per node and per job are fixed by these divisors, so every query below returns the
/// same number of rows from the small and the large table.
const NODES: usize = 10;
const RUNS_PER_JOB: usize = 1000;
/// Rows each limited query returns.
const LIMIT: i32 = 100;
/// Cron jobs of the busy node: one per minute of the hour, each running 30 s.
const BUSY_JOBS: usize = 60;
const BUSY_NODE: &str = "node-busy";
const QUIET_NODE: &str = "node-quiet";
/// Width of the get_scheduled_runs window.
const WINDOW_DAYS: i64 = 7;

fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Records per bulk call (one SQLite transaction / one insert_many).
const BATCH: usize = 10_000;

/// Loads `n` runs through the store's bulk path, in batches.
async fn bulk_runs(store: &dyn Store, n: usize) -> Result<()> {
    let jobs = n.div_ceil(RUNS_PER_JOB).max(1);
    for lo in (0..n).step_by(BATCH) {
        let batch: Vec<Run> = (lo..(lo + BATCH).min(n))
            .map(|i| {
                let start = epoch() + chrono::Duration::minutes(i as i64);
                Run {
                    runid: format!("run-{i:08}"),
                    jobid: format!("job-{}", i % jobs),
                    nodeid: format!("node-{}", i % NODES),
                    userid: format!("user-{}", i % 50),
                    start_time: start,
                    end_time: start + chrono::Duration::seconds(30),
                    last_updated: start + chrono::Duration::seconds(30),
                    blob_url: format!("https://blob.invalid/runs/run-{i:08}"),
                    status: "complete".into(),
                    status_message: "ok".into(),
                }
            })
            .collect();
        store.insert_runs(&batch).await.context("insert_runs")?;
    }
    Ok(())
}

/// Orchestrator CPU time (user + system) so far, from /proc (clock ticks of 1/100 s, the
/// Linux default USER_HZ).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The jobs of the busy and the quiet node.
fn node_jobs(now: DateTime<Utc>) -> Vec<Job> {
    let mut jobs: Vec<Job> = (0..BUSY_JOBS)
        .map(|i| cron_job(format!("busy-{i}"), BUSY_NODE, "bench-priv", i, now))
        .collect();
    jobs.push(cron_job("quiet-0".into(), QUIET_NODE, "bench-priv", 0, now));
    jobs
}

/// A store with `runs` runs, a busy node and a quiet node, served by the real binary; also
/// how long loading the runs took.
async fn prepared(
    s: &Settings,
    backend: &Backend,
    runs: usize,
    now: DateTime<Utc>,
) -> Result<(Orchestrator, Duration)> {
    match backend {
        Backend::Embedded => {
            let dir = scratch_dir()?;
            let data = data_dir(dir.path());
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&data)).await??;
            store.insert_jobs(&node_jobs(now)).await?;
            let t = std::time::Instant::now();
            bulk_runs(&store, runs).await?;
            let fill = t.elapsed();
            drop(store);
            Ok((
                Orchestrator::start_in(dir, &s.bin_dir, backend).await?,
                fill,
            ))
        }
        Backend::Mongo(uri) => {
            // The orchestrator creates the database (fresh name) and its indexes; load into
            // it through a second connection.
            let o = Orchestrator::start(&s.bin_dir, backend).await?;
            let db = o.db_name().context("the MongoDB store has a database")?;
            let store = MongoStore::connect(uri, db).await?;
            store.insert_jobs(&node_jobs(now)).await?;
            let t = std::time::Instant::now();
            bulk_runs(&store, runs).await?;
            Ok((o, t.elapsed()))
        }
    }
}

/// The get_runs queries, each returning `LIMIT` rows (one row for the runid lookup).
fn queries(runs: usize) -> Vec<(&'static str, MessageGetRuns)> {
    let mid = epoch() + chrono::Duration::minutes(runs as i64 / 2);
    // Filters are set only when used, as the original client sends them.
    let q = |limit: i32| MessageGetRuns {
        limit: (limit > 0).then_some(limit),
        ..Default::default()
    };
    vec![
        (
            "runid point lookup",
            MessageGetRuns {
                runid: Some(format!("run-{:08}", runs / 2)),
                ..q(0)
            },
        ),
        (
            "first 100 of a node",
            MessageGetRuns {
                nodeid: Some("node-3".into()),
                ..q(LIMIT)
            },
        ),
        (
            "first 100 of a job",
            MessageGetRuns {
                jobid: Some("job-0".into()),
                ..q(LIMIT)
            },
        ),
        (
            "first 100 in a 24 h window",
            MessageGetRuns {
                time_range: Some(MessageTimeRange {
                    start: iso(mid - chrono::Duration::hours(12)),
                    end: iso(mid + chrono::Duration::hours(12)),
                }),
                ..q(LIMIT)
            },
        ),
        ("first 100 overall", q(LIMIT)),
    ]
}

/// Checks an RPC works before timing it; `Ok(false)` when the server does not implement it.
async fn available(c: &AuthedClient, q: &MessageGetRuns) -> Result<bool> {
    match c.clone().get_runs(q.clone()).await {
        Ok(r) if !r.get_ref().runs.is_empty() => Ok(true),
        Ok(_) => bail!("get_runs {q:?} returned no runs"),
        Err(e) if e.code() == tonic::Code::Unimplemented => Ok(false),
        Err(e) => Err(e).context("get_runs"),
    }
}

/// Closed-loop load of one RPC; a call counts as a success when `ok` accepts its reply.
async fn time_rpc<Q, F, Fut>(
    clients: &[AuthedClient],
    q: Q,
    workers: usize,
    d: Duration,
    call: F,
) -> crate::load::LoadResult
where
    Q: Clone + Send + Sync + 'static,
    F: Fn(AuthedClient, Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let clients = clients.to_vec();
    closed_loop(workers, d, move |w| {
        call(clients[w % clients.len()].clone(), q.clone())
    })
    .await
}

async fn time_get_runs(
    clients: &[AuthedClient],
    q: MessageGetRuns,
    workers: usize,
    d: Duration,
) -> crate::load::LoadResult {
    time_rpc(clients, q, workers, d, |mut c, q| async move {
        c.get_runs(q)
            .await
            .is_ok_and(|r| !r.get_ref().runs.is_empty())
    })
    .await
}

async fn time_scheduled(
    clients: &[AuthedClient],
    q: MessageGetScheduledRuns,
    workers: usize,
    d: Duration,
) -> crate::load::LoadResult {
    time_rpc(clients, q, workers, d, |mut c, q| async move {
        c.get_scheduled_runs(q)
            .await
            .is_ok_and(|r| !r.get_ref().events.is_empty())
    })
    .await
}

/// The `runs` subcommand: the embedded store, then MongoDB-wire when `mongo_uri` is given.
pub async fn run(s: &Settings, mongo_uri: Option<&str>) -> Result<String> {
    let mut out = run_on(s, &Backend::Embedded).await?;
    match mongo_uri {
        Some(uri) => out.push_str(&run_on(s, &Backend::Mongo(uri.to_string())).await?),
        None => out.push_str(
            "\n(get_runs / get_scheduled_runs on MongoDB-wire skipped: LEOTEST_TEST_MONGO_URI \
             is not set)\n",
        ),
    }
    Ok(out)
}

async fn run_on(s: &Settings, backend: &Backend) -> Result<String> {
    let big_n = if s.smoke { 20_000 } else { 1_000_000 };
    let small_n = 1_000;
    let now = Utc::now();
    let (big, fill) = prepared(s, backend, big_n, now).await?;
    let (small, _) = prepared(s, backend, small_n, now).await?;
    // As the admin: the runs are on ten nodes, and a node may read only its own (issue 15).
    let big_c = big.admin_clients(s.conns).await?;
    let small_c = small.admin_clients(s.conns).await?;
    let workers = 16;
    let d = s.duration / 2;

    let qs = queries(big_n);
    if !available(&big_c[0], &qs[0].1).await? {
        return Ok(
            "\n### get_runs / get_scheduled_runs\n\nnot available: the orchestrator \
                   answers UNIMPLEMENTED for get_runs\n"
                .to_string(),
        );
    }
    let mut rows = Vec::new();
    let mut ratios = String::new();
    // The same query shapes sized for each table (its middle run, a window around its middle).
    for ((name, q), (_, small_q)) in qs.into_iter().zip(queries(small_n)) {
        let mut base = time_get_runs(&small_c, small_q, workers, d).await;
        let mut ours = time_get_runs(&big_c, q, workers, d).await;
        let (br, or) = (base.rps(), ours.rps());
        let b = Row::new(
            format!("{name}: {small_n} runs (baseline)"),
            &mut base.samples,
            Some(br),
        );
        let o = Row::new(format!("{name}: {big_n} runs"), &mut ours.samples, Some(or));
        ratios.push_str(&ratio_line(
            &format!("{name}: p50 at {big_n} runs / p50 at {small_n} runs"),
            o.p50.as_secs_f64() * 1e3,
            b.p50.as_secs_f64() * 1e3,
            "ms",
        ));
        ratios.push('\n');
        if base.errors + ours.errors > 0 {
            ratios.push_str(&format!(
                "warning: {name}: {} failed calls\n",
                base.errors + ours.errors
            ));
        }
        rows.push(b);
        rows.push(o);
    }
    let mut out = table(
        &format!(
            "get_runs ({} store, TLS, {workers} concurrent streams, limit {LIMIT}; \
             {big_n} runs bulk-loaded in {:.1} s)",
            backend.label(),
            fill.as_secs_f64()
        ),
        &rows,
    );
    out.push_str(&ratios);

    let window = |nodeid: &str| MessageGetScheduledRuns {
        nodeid: nodeid.to_string(),
        start: iso(now),
        end: iso(now + chrono::Duration::days(WINDOW_DAYS)),
    };
    match big_c[0].clone().get_scheduled_runs(window(BUSY_NODE)).await {
        Err(e) if e.code() == tonic::Code::Unimplemented => {
            out.push_str("\nget_scheduled_runs: not available (UNIMPLEMENTED)\n");
        }
        Err(e) => return Err(e).context("get_scheduled_runs"),
        Ok(busy) => {
            let busy_events = busy.get_ref().events.len();
            let quiet_events = big_c[0]
                .clone()
                .get_scheduled_runs(window(QUIET_NODE))
                .await?
                .get_ref()
                .events
                .len();
            let pid = big.pid()?;
            let cpu0 = cpu_secs(pid);
            let mut q = time_scheduled(&big_c, window(QUIET_NODE), workers, d).await;
            let cpu1 = cpu_secs(pid);
            let mut b = time_scheduled(&big_c, window(BUSY_NODE), workers, d).await;
            let cpu2 = cpu_secs(pid);
            // Orchestrator CPU per call: what the server spends, apart from the benchmark
            // client's decoding, which shares this machine's cores.
            let per_call = |a: Option<f64>, z: Option<f64>, calls: u64| match (a, z) {
                (Some(a), Some(z)) if calls > 0 => {
                    format!("{:.2} ms", (z - a) * 1e3 / calls as f64)
                }
                _ => "n/a".to_string(),
            };
            let cpu_line = format!(
                "orchestrator CPU per call: quiet {}, busy {}\n",
                per_call(cpu0, cpu1, q.ok),
                per_call(cpu1, cpu2, b.ok)
            );
            let (qr, br) = (q.rps(), b.rps());
            let rows = vec![
                Row::new(
                    format!("quiet node: 1 cron job, {quiet_events} events (baseline)"),
                    &mut q.samples,
                    Some(qr),
                ),
                Row::new(
                    format!("busy node: {BUSY_JOBS} cron jobs, {busy_events} events"),
                    &mut b.samples,
                    Some(br),
                ),
            ];
            out.push_str(&table(
                &format!(
                    "get_scheduled_runs over a {WINDOW_DAYS}-day window ({} store, {workers} \
                     concurrent streams)",
                    backend.label()
                ),
                &rows,
            ));
            out.push_str(&ratio_line(
                "busy p50 / quiet p50",
                rows[1].p50.as_secs_f64() * 1e3,
                rows[0].p50.as_secs_f64() * 1e3,
                "ms",
            ));
            out.push('\n');
            out.push_str(&cpu_line);
        }
    }
    Ok(out)
}
