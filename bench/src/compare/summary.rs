//! Turns the measured phases into the comparison's figures (the summary table's rows, in
//! `report`) and the per-phase detail tables.

use std::time::Duration;

use super::decision;
use super::report::{Figure, Unit};
use super::sysstat;
use super::target::{Phase, Rpc};
use crate::procs::Memory;
use crate::stats::{table as detail_table, Row};

/// One RPC's phases on every target (same order as `Servers::targets`).
pub(super) struct RpcResult {
    pub rpc: Rpc,
    pub streams: usize,
    pub rate: f64,
    pub closed: Vec<Phase>,
    pub open: Vec<Phase>,
}

/// Which column a target's values go in.
/// Targets are ordered original, ours embedded, ours MongoDB-wire (when there are three).
fn by_target<T: Clone>(n: usize, f: impl Fn(usize) -> Option<T>) -> [Option<T>; 3] {
    let mongo = if n > 2 { f(2) } else { None };
    [f(1), mongo, f(0)]
}

fn figure(name: String, unit: Unit, v: [Option<Vec<f64>>; 3]) -> Figure {
    let [embedded, mongo, original] = v;
    Figure {
        name,
        unit,
        embedded,
        mongo,
        original,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(m: &Memory) -> (f64, f64) {
    (m.rss_kib as f64 / 1024.0, m.hwm_kib as f64 / 1024.0)
}

/// The summary figures of the orchestrator part.
pub(super) fn rpc_figures(n: usize, results: &mut [RpcResult], sizes: &[String]) -> Vec<Figure> {
    let mut figs = Vec::new();
    for (r, size) in results.iter_mut().zip(sizes) {
        let name = r.rpc.label();
        figs.push(figure(
            format!("`{name}`{size} req/s, {} streams", r.streams),
            Unit::ReqPerSec,
            by_target(n, |i| r.closed.get(i).map(|p| vec![p.load.rps()])),
        ));
        let lat: Vec<Option<Vec<f64>>> = r
            .open
            .iter_mut()
            .map(|p| {
                Some(vec![
                    ms(p.load.samples.percentile(50.0)),
                    ms(p.load.samples.percentile(99.0)),
                ])
            })
            .collect();
        figs.push(figure(
            format!("`{name}` p50 / p99 at {:.1} calls/s (open loop)", r.rate),
            Unit::Millis,
            by_target(n, |i| lat.get(i).cloned().flatten()),
        ));
    }
    for r in results.iter() {
        let per = |p: &Phase, with_db: bool| {
            let cpu = p.cpu.server
                + if with_db {
                    p.cpu.database.unwrap_or(0.0)
                } else {
                    0.0
                };
            sysstat::per_10k(cpu, p.load.ok).map(|v| vec![v])
        };
        figs.push(figure(
            format!("CPU s per 10 000 `{}`: server", r.rpc.label()),
            Unit::Seconds,
            by_target(n, |i| r.closed.get(i).and_then(|p| per(p, false))),
        ));
        figs.push(figure(
            format!(
                "CPU s per 10 000 `{}`: server + its database",
                r.rpc.label()
            ),
            Unit::Seconds,
            by_target(n, |i| r.closed.get(i).and_then(|p| per(p, true))),
        ));
    }
    figs
}

/// Orchestrator memory: VmRSS idle, VmHWM after the RPC phases.
pub(super) fn memory_figure(n: usize, idle: &[Memory], loaded: &[Memory]) -> Figure {
    figure(
        "orchestrator VmRSS idle / VmHWM after load".into(),
        Unit::MiB,
        by_target(n, |i| {
            Some(vec![mib(idle.get(i)?).0, mib(loaded.get(i)?).1])
        }),
    )
}

/// The kernel decision rows (ours asks the embedded orchestrator: no MongoDB-wire column).
pub(super) fn kernel_figures(k: &mut decision::Figures) -> Vec<Figure> {
    let lat = |f: &mut decision::ServiceFigures| {
        Some(vec![
            ms(f.samples.percentile(50.0)),
            ms(f.samples.percentile(99.0)),
        ])
    };
    let per = |cpu: Option<f64>, f: &decision::ServiceFigures| {
        cpu.and_then(|c| sysstat::per_10k(c, f.samples.len() as u64))
            .map(|v| vec![v])
    };
    let mem = |f: &decision::ServiceFigures| Some(vec![mib(&f.idle).0, mib(&f.loaded).1]);
    let row = |name: String, unit, embedded, original| Figure {
        name,
        unit,
        embedded,
        mongo: None,
        original,
    };
    vec![
        row(
            format!(
                "kernel decision connect → `cca.check` p50 / p99 ({} containers on the network)",
                decision::CONTAINERS
            ),
            Unit::Millis,
            lat(&mut k.ours),
            lat(&mut k.original),
        ),
        row(
            "CPU s per 10 000 kernel decisions: kernel service, children included".into(),
            Unit::Seconds,
            per(Some(k.ours.cpu), &k.ours),
            per(Some(k.original.cpu), &k.original),
        ),
        row(
            "CPU s per 10 000 kernel decisions: Docker engine (shared)".into(),
            Unit::Seconds,
            per(k.ours.dockerd_cpu, &k.ours),
            per(k.original.dockerd_cpu, &k.original),
        ),
        row(
            "kernel service VmRSS idle / VmHWM after the decisions".into(),
            Unit::MiB,
            mem(&k.ours),
            mem(&k.original),
        ),
    ]
}

/// Per-target tables with every phase (the summary's sources).
pub(super) fn details(names: &[&str], results: &mut [RpcResult]) -> String {
    let mut out = String::new();
    for r in results.iter_mut() {
        let mut rows = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let c = &mut r.closed[i];
            let rps = c.load.rps();
            rows.push(Row::new(
                format!(
                    "{}: {} streams, closed loop ({} failed)",
                    name, r.streams, c.load.errors
                ),
                &mut c.load.samples,
                Some(rps),
            ));
            let p = &mut r.open[i];
            let rps = p.load.rps();
            rows.push(Row::new(
                format!(
                    "{}: {:.1}/s open loop ({} failed)",
                    name, r.rate, p.load.errors
                ),
                &mut p.load.samples,
                Some(rps),
            ));
        }
        out.push_str(&detail_table(
            &format!("compare-original: {}", r.rpc.label()),
            &rows,
        ));
    }
    out
}

/// The kernel decision's detail table.
pub(super) fn kernel_details(k: &mut decision::Figures) -> String {
    let rows = [
        Row::new(
            "leotest-kernel-service (event-driven identity cache)",
            &mut k.ours.samples,
            None,
        ),
        Row::new(
            "Python original: services.kernel (network scan per connection)",
            &mut k.original.samples,
            None,
        ),
    ];
    detail_table(
        &format!(
            "compare-original: kernel decision from a container, {} containers on the network",
            decision::CONTAINERS
        ),
        &rows,
    )
}
