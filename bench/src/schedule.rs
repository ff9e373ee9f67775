//! `schedule` benchmark (issue 16): what atomic bookings cost.
//!
//! `schedule_job` of ATQ overhead jobs, each in its own window (all accepted, every one runs
//! the full conflict check and books its node), on one node and spread over many nodes; with
//! one orchestrator process and with two replicas on one MongoDB database (calls alternate
//! between them). The same calls go to a baseline binary built before bookings were atomic
//! (`--baseline-bin`), in the same run, so the ratios come from one run. A last table fires
//! 40 overlapping bookings of one window at once and counts how many were accepted (1 is
//! right; the baseline accepts several).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::{Datelike, TimeZone, Utc};
use leotest_proto::unary::*;

use crate::orch::{AuthedClient, Backend, Orchestrator};
use crate::procs::binary;
use crate::stats::{ms, ratio_line, Samples};
use crate::Settings;

/// Nodes of the "many nodes" case.
const NODES: usize = 256;

/// Concurrent callers.
const WORKERS: usize = 16;

/// Overlapping bookings of the contention check.
const BURST: usize = 40;

/// One measured case.
#[derive(Debug, Clone, Copy)]
enum Spread {
    OneNode,
    ManyNodes,
}

impl Spread {
    fn label(self) -> &'static str {
        match self {
            Spread::OneNode => "one node",
            Spread::ManyNodes => "many nodes",
        }
    }
}

struct Outcome {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

fn job(id: String, nodeid: String, k: usize) -> MessageScheduleJob {
    // Windows 11 minutes apart: a 10-minute run each, never overlapping; from 1 January of
    // the year after next, so no job has expired (they are stored until their end date).
    let start = Utc
        .with_ymd_and_hms(Utc::now().year() + 2, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::minutes(11 * k as i64);
    let end = start + chrono::Duration::minutes(10);
    MessageScheduleJob {
        id,
        nodeid,
        r#type: JobType::Atq as i32,
        params: Some(JobParams {
            mode: "docker".into(),
            deploy: "d".into(),
            execute: "e".into(),
            finish: "f".into(),
        }),
        start_date: start.format("%Y-%m-%d %H:%M:%S").to_string(),
        end_date: end.format("%Y-%m-%d %H:%M:%S").to_string(),
        length_secs: 600,
        overhead: true,
        ..Default::default()
    }
}

async fn admin_clients(procs: &[Orchestrator]) -> Result<Vec<AuthedClient>> {
    let mut out = Vec::new();
    for o in procs {
        for _ in 0..2 {
            out.push(o.client(&o.channel().await?, "admin", o.admin_token())?);
        }
    }
    Ok(out)
}

/// `calls` bookings by [`WORKERS`] callers back to back, over the clients in turn.
async fn measure(clients: &[AuthedClient], spread: Spread, calls: usize, tag: &str) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let next = next.clone();
        let clients = clients.to_vec();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::with_capacity(calls / WORKERS + 1);
            let mut errors = 0;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= calls {
                    break;
                }
                let nodeid = match spread {
                    Spread::OneNode => format!("{tag}-node"),
                    Spread::ManyNodes => format!("{tag}-node{}", k % NODES),
                };
                let slot = match spread {
                    Spread::OneNode => k,
                    Spread::ManyNodes => k / NODES,
                };
                let mut c = clients[(w + k) % clients.len()].clone();
                let t0 = Instant::now();
                let r = c
                    .schedule_job(job(format!("{tag}-j{k}"), nodeid, slot))
                    .await;
                samples.push(t0.elapsed());
                if !r.is_ok_and(|r| r.get_ref().state == ResponseState::Success as i32) {
                    errors += 1;
                }
            }
            (samples, errors)
        }));
    }
    let mut all = Samples::with_capacity(calls);
    let mut errors = 0;
    for t in tasks {
        if let Ok((s, e)) = t.await {
            all.extend(s);
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Outcome {
        rps: if secs > 0.0 { calls as f64 / secs } else { 0.0 },
        p50: all.percentile(50.0),
        p99: all.percentile(99.0),
        errors,
    }
}

/// Accepted bookings out of [`BURST`] overlapping ones fired at once.
async fn contention(clients: &[AuthedClient], tag: &str) -> usize {
    let calls = (0..BURST).map(|i| {
        let mut c = clients[i % clients.len()].clone();
        let msg = job(format!("{tag}-burst{i}"), format!("{tag}-burst-node"), 0);
        tokio::spawn(async move {
            c.schedule_job(msg)
                .await
                .is_ok_and(|r| r.get_ref().state == ResponseState::Success as i32)
        })
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count()
}

/// One deployment (backend, 1 or 2 processes) of one binary: both spreads and the burst.
async fn deployment(
    bin: &Path,
    backend: &Backend,
    replicas: usize,
    calls: usize,
) -> Result<Vec<(Outcome, Outcome, usize)>> {
    let first = Orchestrator::start_bin(bin, backend).await?;
    let mut procs = vec![first];
    for _ in 1..replicas {
        let r = procs[0].replica(bin).await?;
        procs.push(r);
    }
    let clients = admin_clients(&procs).await?;
    // Warm-up: connections, TLS, the user cache.
    let _ = measure(&clients, Spread::ManyNodes, WORKERS * 4, "warm").await;
    let one = measure(&clients, Spread::OneNode, calls, "one").await;
    let many = measure(&clients, Spread::ManyNodes, calls, "many").await;
    let burst = contention(&clients, "c").await;
    Ok(vec![(one, many, burst)])
}

/// The `schedule` subcommand.
pub async fn run(s: &Settings, mongo_uri: Option<&str>, baseline: Option<&Path>) -> Result<String> {
    let ours = binary(&s.bin_dir, "leotest-orchestrator")?;
    let baseline: Option<PathBuf> = match baseline {
        Some(p) if p.is_file() => Some(p.to_path_buf()),
        Some(p) => bail!("--baseline-bin {}: not a file", p.display()),
        None => None,
    };
    let calls = if s.smoke { 100 } else { s.samples.max(200) * 2 };
    let mut setups: Vec<(String, Backend, usize)> =
        vec![("embedded, 1 process".into(), Backend::Embedded, 1)];
    if let Some(uri) = mongo_uri {
        setups.push((
            "mongodb-wire, 1 process".into(),
            Backend::Mongo(uri.into()),
            1,
        ));
        setups.push((
            "mongodb-wire, 2 replicas".into(),
            Backend::Mongo(uri.into()),
            2,
        ));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### schedule_job: atomic bookings ({calls} calls by {WORKERS} callers per case; \
         many nodes = {NODES})\n"
    );
    let _ = writeln!(
        out,
        "| setup | binary | case | req/s | p50 | p99 | errors | accepted of {BURST} overlapping |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for (label, backend, replicas) in &setups {
        let mine = deployment(&ours, backend, *replicas, calls).await?;
        let base = match &baseline {
            Some(b) => Some(deployment(b, backend, *replicas, calls).await?),
            None => None,
        };
        let mut rows = vec![("ours", mine)];
        if let Some(b) = base {
            rows.push(("baseline", b));
        }
        for (who, res) in &rows {
            for (one, many, burst) in res {
                for (spread, o) in [(Spread::OneNode, one), (Spread::ManyNodes, many)] {
                    let _ = writeln!(
                        out,
                        "| {label} | {who} | {} | {:.0} | {} | {} | {} | {} |",
                        spread.label(),
                        o.rps,
                        ms(o.p50),
                        ms(o.p99),
                        o.errors,
                        if matches!(spread, Spread::OneNode) {
                            burst.to_string()
                        } else {
                            "-".into()
                        }
                    );
                }
            }
        }
        if let [(_, mine), (_, base)] = rows.as_slice() {
            let ((m1, mm, _), (b1, bm, _)) = (&mine[0], &base[0]);
            for (case, m, b) in [("one node", m1, b1), ("many nodes", mm, bm)] {
                ratios.push(ratio_line(
                    &format!("schedule_job req/s ours/baseline, {label}, {case}"),
                    m.rps,
                    b.rps,
                    "req/s",
                ));
                ratios.push(ratio_line(
                    &format!("schedule_job p99 ours/baseline, {label}, {case}"),
                    m.p99.as_secs_f64() * 1e3,
                    b.p99.as_secs_f64() * 1e3,
                    "ms",
                ));
            }
        }
    }
    if baseline.is_none() {
        let _ = writeln!(
            out,
            "\n(no --baseline-bin: build the orchestrator from the commit before atomic \
             bookings and pass its path for the before/after ratios)"
        );
    }
    if mongo_uri.is_none() {
        let _ = writeln!(
            out,
            "\n(MongoDB-wire setups skipped: LEOTEST_TEST_MONGO_URI is not set)"
        );
    }
    out.push('\n');
    for r in ratios {
        let _ = writeln!(out, "{r}");
    }
    Ok(out)
}
