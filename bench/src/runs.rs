//! `get_runs` over a large runs table (vs the same queries on a 1 000-run table) and
//! `get_scheduled_runs` for a busy node (vs a node with one job), on the embedded store.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::{CronSchedule, Job, JobKind, JobParams, Store};
use leotest_proto::unary::{MessageGetRuns, MessageGetScheduledRuns, MessageTimeRange};

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

/// Writes `n` runs straight into the embedded store's SQLite file in one transaction (the
/// RPC path would take an fsync per run), after the store itself created the schema.
fn bulk_runs(data: &Path, n: usize) -> Result<()> {
    let path = data.join(leotest_orchestrator::store::embedded::DB_FILE);
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO runs (runid, jobid, nodeid, userid, start_time, end_time, \
             last_updated, blob_url, status, status_message) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let jobs = n.div_ceil(RUNS_PER_JOB).max(1);
        let base = epoch().timestamp_micros();
        for i in 0..n {
            let start = base + i as i64 * 60_000_000;
            st.execute(rusqlite::params![
                format!("run-{i:08}"),
                format!("job-{}", i % jobs),
                format!("node-{}", i % NODES),
                format!("user-{}", i % 50),
                start,
                start + 30_000_000,
                start + 30_000_000,
                format!("https://blob.invalid/runs/run-{i:08}"),
                "complete",
                "ok",
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn cron_job(id: String, nodeid: &str, minute: usize, now: DateTime<Utc>) -> Job {
    let end = now + chrono::Duration::days(30);
    Job {
        id,
        nodeid: nodeid.to_string(),
        userid: "bench-priv".to_string(),
        kind: JobKind::Cron,
        params: JobParams {
            mode: "local".into(),
            deploy: "deploy".into(),
            execute: "execute".into(),
            finish: "finish".into(),
        },
        schedule: Some(CronSchedule {
            minute: minute.to_string(),
            hour: "*".into(),
            day_of_month: "*".into(),
            month: "*".into(),
            day_of_week: "*".into(),
        }),
        start_date: iso(now - chrono::Duration::days(1)),
        end_date: iso(end),
        length_secs: 30,
        overhead: false,
        server: None,
        trigger: None,
        config: None,
        expire_at: Some(end),
    }
}

/// A store with `runs` runs, a busy node and a quiet node, served by the real binary.
async fn prepared(s: &Settings, runs: usize, now: DateTime<Utc>) -> Result<Orchestrator> {
    let dir = scratch_dir()?;
    let data = data_dir(dir.path());
    let d = data.clone();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&d)).await??;
    for i in 0..BUSY_JOBS {
        store
            .add_job(&cron_job(format!("busy-{i}"), BUSY_NODE, i, now))
            .await?;
    }
    store
        .add_job(&cron_job("quiet-0".into(), QUIET_NODE, 0, now))
        .await?;
    drop(store);
    let d = data.clone();
    tokio::task::spawn_blocking(move || bulk_runs(&d, runs)).await??;
    Orchestrator::start_in(dir, &s.bin_dir, &Backend::Embedded).await
}

/// The get_runs queries, each returning `LIMIT` rows (one row for the runid lookup).
fn queries(runs: usize) -> Vec<(&'static str, MessageGetRuns)> {
    let mid = epoch() + chrono::Duration::minutes(runs as i64 / 2);
    let q = |limit| MessageGetRuns {
        limit,
        ..Default::default()
    };
    vec![
        (
            "runid point lookup",
            MessageGetRuns {
                runid: format!("run-{:08}", runs / 2),
                ..q(0)
            },
        ),
        (
            "newest 100 of a node",
            MessageGetRuns {
                nodeid: "node-3".into(),
                ..q(LIMIT)
            },
        ),
        (
            "newest 100 of a job",
            MessageGetRuns {
                jobid: "job-0".into(),
                ..q(LIMIT)
            },
        ),
        (
            "newest 100 in a 24 h window",
            MessageGetRuns {
                time_range: Some(MessageTimeRange {
                    start: iso(mid - chrono::Duration::hours(12)),
                    end: iso(mid + chrono::Duration::hours(12)),
                }),
                ..q(LIMIT)
            },
        ),
        ("newest 100 overall", q(LIMIT)),
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

async fn time_get_runs(
    clients: &[AuthedClient],
    q: MessageGetRuns,
    workers: usize,
    d: Duration,
) -> crate::load::LoadResult {
    let clients = clients.to_vec();
    closed_loop(workers, d, move |w| {
        let c = clients[w % clients.len()].clone();
        let q = q.clone();
        async move {
            c.clone()
                .get_runs(q)
                .await
                .is_ok_and(|r| !r.get_ref().runs.is_empty())
        }
    })
    .await
}

async fn time_scheduled(
    clients: &[AuthedClient],
    q: MessageGetScheduledRuns,
    workers: usize,
    d: Duration,
) -> crate::load::LoadResult {
    let clients = clients.to_vec();
    closed_loop(workers, d, move |w| {
        let c = clients[w % clients.len()].clone();
        let q = q.clone();
        async move {
            c.clone()
                .get_scheduled_runs(q)
                .await
                .is_ok_and(|r| !r.get_ref().events.is_empty())
        }
    })
    .await
}

/// The `runs` subcommand.
pub async fn run(s: &Settings) -> Result<String> {
    let big_n = if s.smoke { 20_000 } else { 1_000_000 };
    let small_n = 1_000;
    let now = Utc::now();
    let t0 = std::time::Instant::now();
    let big = prepared(s, big_n, now).await?;
    let fill = t0.elapsed();
    let small = prepared(s, small_n, now).await?;
    let big_c = big.node_clients(s.conns).await?;
    let small_c = small.node_clients(s.conns).await?;
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
            "get_runs (embedded store, TLS, {workers} concurrent streams, limit {LIMIT}; \
             {big_n} runs bulk-loaded in {:.1} s)",
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
            let mut q = time_scheduled(&big_c, window(QUIET_NODE), workers, d).await;
            let mut b = time_scheduled(&big_c, window(BUSY_NODE), workers, d).await;
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
                    "get_scheduled_runs over a {WINDOW_DAYS}-day window ({workers} concurrent streams)"
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
        }
    }
    Ok(out)
}
