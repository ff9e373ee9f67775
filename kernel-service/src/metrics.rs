//! The kernel service's metrics: `prometheus-client` families, served by `leotest-metrics` on
//! `--metrics-listen` (`/metrics`, `/healthz`).
//!
//! Every label value is a `&'static str` from this crate's own fixed sets (decision outcomes,
//! denial reasons, limit names, command kinds, Docker operations), so no caller-supplied value
//! (a `userid` label, a command's arguments, an address) can become a label or grow the
//! number of series. Names are `leotest_kernel_*`; counters end in `_total`, durations are
//! histograms in seconds (`leotest_metrics::latency_buckets`). The families with a fixed
//! label set (outcomes, limits, command kinds, call results) start with zero series, so
//! dashboards and alerts see 0 rather than "No data"; denial reasons appear with their first
//! denial. Label values are identifiers without spaces ([`label_value`]). `process_*` and
//! `leotest_kernel_build_info` come with the registry.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use leotest_metrics::{histogram, histograms, Histograms};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// `outcome` of an access decision or of a connection: `granted`, `denied`, `limited`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// The label's value.
    pub outcome: &'static str,
}

/// `reason` of a denial (the audit line's reason: a fixed string of this crate).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The label's value.
    pub reason: &'static str,
}

/// `limit` a connection was refused by: `source` or `user`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Limit {
    /// The label's value.
    pub limit: &'static str,
}

/// `command` kind run for a granted caller (`cca.check`, `job.start`, ...; `invalid`, `none`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandKind {
    /// The label's value.
    pub command: &'static str,
}

/// `op` of a Docker API request: `list_containers`, `inspect_container`, `inspect_network`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DockerOp {
    /// The label's value.
    pub op: &'static str,
}

/// `result` of an orchestrator `kernel_access` call: `granted`, `denied`, `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallResult {
    /// The label's value.
    pub result: &'static str,
}

/// Outcomes of a connection.
const OUTCOMES: [&str; 3] = ["granted", "denied", "limited"];
/// Command kinds counted (`Command::kind`, plus `help`, `invalid` and `none`).
const COMMAND_KINDS: [&str; 12] = [
    "cca.check",
    "cca.change",
    "bbr2.param.set",
    "job.start",
    "job.status",
    "job.stop",
    "job.watch",
    "job.list",
    "oneshot",
    "help",
    "invalid",
    "none",
];

/// A label value made of `[a-z0-9_.]` only: `not permitted (cached)` becomes
/// `not_permitted_cached` (spaces in label values break naive parsers and `by` clauses
/// written by hand). Reasons are `&'static str` of this crate, so the converted forms are
/// few; each is made once and kept.
pub fn label_value(reason: &'static str) -> &'static str {
    let clean = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.';
    if reason.chars().all(clean) {
        return reason;
    }
    static MADE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    made.entry(reason).or_insert_with(|| {
        let mut v = String::new();
        for c in reason.chars().map(|c| c.to_ascii_lowercase()) {
            if clean(c) {
                v.push(c);
            } else if !v.ends_with('_') {
                v.push('_');
            }
        }
        // Leaked once per distinct static reason: a bounded, fixed set.
        Box::leak(v.trim_end_matches('_').to_string().into_boxed_str())
    })
}

/// Service metrics; cheap handles (clones share their values).
#[derive(Debug)]
pub struct Metrics {
    /// Connections accepted on the command port.
    pub connections: Counter,
    /// Connections being served now.
    pub connections_active: Gauge,
    /// Connections by outcome: granted, denied, limited.
    pub decisions: Family<Outcome, Counter>,
    /// Access decision time, by outcome.
    pub decision_seconds: Histograms<Outcome>,
    /// Denied connections by reason.
    pub denials: Family<Reason, Counter>,
    /// Connections refused by the per-source or per-user limit.
    pub over_limit: Family<Limit, Counter>,
    /// Commands read from granted callers, by kind.
    pub commands: Family<CommandKind, Counter>,
    /// Commands that failed (error reply).
    pub commands_failed: Counter,
    /// Command lines that did not parse or were too long.
    pub bad_requests: Counter,
    /// Docker API requests made for identity (list, inspect).
    pub docker_lookups: Counter,
    /// Docker API request time, by operation.
    pub docker_lookup_seconds: Histograms<DockerOp>,
    /// Docker container lists made because a connection came from an unknown address.
    pub unknown_peer_lookups: Counter,
    /// Unknown addresses denied without asking Docker (off the network, or rate-limited).
    pub lookups_refused: Counter,
    /// `kernel_access` calls sent to the orchestrator (joined calls count once).
    pub oracle_calls: Counter,
    /// `kernel_access` round trip to the orchestrator (retries included), by result.
    pub oracle_seconds: Histograms<CallResult>,
    /// `job.start`: from the command to the running sandboxed job.
    pub sandbox_start_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            connections: Counter::default(),
            connections_active: Gauge::default(),
            decisions: Family::default(),
            decision_seconds: histograms(),
            denials: Family::default(),
            over_limit: Family::default(),
            commands: Family::default(),
            commands_failed: Counter::default(),
            bad_requests: Counter::default(),
            docker_lookups: Counter::default(),
            docker_lookup_seconds: histograms(),
            unknown_peer_lookups: Counter::default(),
            lookups_refused: Counter::default(),
            oracle_calls: Counter::default(),
            oracle_seconds: histograms(),
            sandbox_start_seconds: histogram(),
        };
        for outcome in OUTCOMES {
            let _ = m.decisions.get_or_create(&Outcome { outcome });
        }
        for outcome in ["granted", "denied"] {
            let _ = m.decision_seconds.get_or_create(&Outcome { outcome });
        }
        for limit in ["source", "user"] {
            let _ = m.over_limit.get_or_create(&Limit { limit });
        }
        for command in COMMAND_KINDS {
            let _ = m.commands.get_or_create(&CommandKind { command });
        }
        for result in ["granted", "denied", "error"] {
            let _ = m.oracle_seconds.get_or_create(&CallResult { result });
        }
        m
    }
}

/// Decrements `connections_active` when a connection ends, however it ends.
pub struct ActiveGuard<'a>(&'a Gauge);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Counts a connection as accepted and active until the guard drops.
    pub fn connection(&self) -> ActiveGuard<'_> {
        self.connections.inc();
        self.connections_active.inc();
        ActiveGuard(&self.connections_active)
    }

    /// Records a decision: its outcome, how long it took and, for a denial, why.
    pub fn decided(&self, outcome: &'static str, reason: Option<&'static str>, t0: Instant) {
        let o = Outcome { outcome };
        self.decisions.get_or_create(&o).inc();
        self.decision_seconds
            .get_or_create(&o)
            .observe(t0.elapsed().as_secs_f64());
        if let Some(reason) = reason {
            self.denials
                .get_or_create(&Reason {
                    reason: label_value(reason),
                })
                .inc();
        }
    }

    /// A connection granted at decision time but refused before its command ran (the
    /// connection counters check): counted as a denial with its reason.
    pub fn refused_after_decision(&self, reason: &'static str) {
        self.denials.get_or_create(&Reason { reason }).inc();
    }

    /// Records one Docker API request of kind `op` that started at `t0`.
    pub fn docker_lookup(&self, op: &'static str, t0: Instant) {
        self.docker_lookups.inc();
        self.docker_lookup_seconds
            .get_or_create(&DockerOp { op })
            .observe(t0.elapsed().as_secs_f64());
    }

    /// A registry holding every family above, for the HTTP endpoint (the caller may add
    /// scrape-time collectors before serving it).
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "leotest_kernel_connections",
            "Connections accepted on the command port",
            self.connections.clone(),
        );
        r.register(
            "leotest_kernel_connections_active",
            "Connections being served now",
            self.connections_active.clone(),
        );
        r.register(
            "leotest_kernel_decisions",
            "Connections by outcome: granted, denied (access decision), limited (connection limit)",
            self.decisions.clone(),
        );
        r.register_with_unit(
            "leotest_kernel_decision",
            "Access decision time: identity, label, orchestrator (granted, denied)",
            Unit::Seconds,
            self.decision_seconds.clone(),
        );
        r.register(
            "leotest_kernel_denials",
            "Denied connections by reason",
            self.denials.clone(),
        );
        r.register(
            "leotest_kernel_over_limit",
            "Connections refused by the per-source or per-user connection limit",
            self.over_limit.clone(),
        );
        r.register(
            "leotest_kernel_commands",
            "Commands read from granted callers, by kind",
            self.commands.clone(),
        );
        r.register(
            "leotest_kernel_command_errors",
            "Commands that failed (error reply)",
            self.commands_failed.clone(),
        );
        r.register(
            "leotest_kernel_bad_requests",
            "Command lines that did not parse or were too long",
            self.bad_requests.clone(),
        );
        r.register(
            "leotest_kernel_docker_lookups",
            "Docker API requests made for identity",
            self.docker_lookups.clone(),
        );
        r.register_with_unit(
            "leotest_kernel_docker_lookup",
            "Docker API request time, by operation",
            Unit::Seconds,
            self.docker_lookup_seconds.clone(),
        );
        r.register(
            "leotest_kernel_unknown_peer_lookups",
            "Docker container lists made for a connection from an unknown address",
            self.unknown_peer_lookups.clone(),
        );
        r.register(
            "leotest_kernel_lookups_refused",
            "Unknown addresses denied without asking Docker (off the network or rate-limited)",
            self.lookups_refused.clone(),
        );
        r.register(
            "leotest_kernel_orchestrator_calls",
            "kernel_access calls sent to the orchestrator",
            self.oracle_calls.clone(),
        );
        r.register_with_unit(
            "leotest_kernel_orchestrator",
            "kernel_access round trip to the orchestrator (retries included), by result",
            Unit::Seconds,
            self.oracle_seconds.clone(),
        );
        r.register_with_unit(
            "leotest_kernel_sandbox_start",
            "job.start: from the command to the running sandboxed job",
            Unit::Seconds,
            self.sandbox_start_seconds.clone(),
        );
        r.register_collector(Box::new(leotest_metrics::ProcessCollector));
        r.register_collector(leotest_metrics::BuildInfo::new(
            "leotest_kernel_build_info",
            "The running leotest-kernel-service's version (value 1)",
            env!("CARGO_PKG_VERSION"),
        ));
        r
    }

    /// The exposition of [`Metrics::registry`] (tests, diagnostics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_units() {
        let m = Metrics::default();
        {
            let _c = m.connection();
            assert!(m
                .render()
                .contains("\nleotest_kernel_connections_active 1\n"));
        }
        m.decided("denied", Some("unknown peer"), Instant::now());
        m.over_limit.get_or_create(&Limit { limit: "source" }).inc();
        m.docker_lookup("inspect_container", Instant::now());
        let out = m.render();
        for line in [
            "\nleotest_kernel_connections_total 1\n",
            "\nleotest_kernel_connections_active 0\n",
            "\nleotest_kernel_decisions_total{outcome=\"denied\"} 1\n",
            "\nleotest_kernel_denials_total{reason=\"unknown_peer\"} 1\n",
            "\nleotest_kernel_decisions_total{outcome=\"limited\"} 0\n",
            "\nleotest_kernel_commands_total{command=\"job.start\"} 0\n",
            "\nleotest_kernel_decision_seconds_count{outcome=\"denied\"} 1\n",
            "\nleotest_kernel_over_limit_total{limit=\"source\"} 1\n",
            "\nleotest_kernel_docker_lookups_total 1\n",
            "\nleotest_kernel_docker_lookup_seconds_count{op=\"inspect_container\"} 1\n",
            "# TYPE leotest_kernel_sandbox_start_seconds histogram\n",
            "# UNIT leotest_kernel_sandbox_start_seconds seconds\n",
        ] {
            assert!(out.contains(line), "{line:?} not in:\n{out}");
        }
    }

    #[test]
    fn label_values_have_no_spaces() {
        assert_eq!(
            label_value("not permitted (cached)"),
            "not_permitted_cached"
        );
        assert_eq!(label_value("decision deadline"), "decision_deadline");
        assert_eq!(label_value("granted"), "granted");
        let a = label_value("no userid label");
        assert!(std::ptr::eq(a, label_value("no userid label")), "made once");
    }

    /// Every family with one observation, as a busy service exposes them.
    fn busy() -> String {
        let m = Metrics::default();
        let _c = m.connection();
        m.decided("granted", None, Instant::now());
        m.decided("denied", Some("unknown peer"), Instant::now());
        m.over_limit.get_or_create(&Limit { limit: "user" }).inc();
        m.commands
            .get_or_create(&CommandKind {
                command: "cca.check",
            })
            .inc();
        m.docker_lookup("list_containers", Instant::now());
        m.oracle_seconds
            .get_or_create(&CallResult { result: "granted" })
            .observe(0.001);
        let mut r = m.registry();
        // The two scrape-time families main.rs adds.
        r.register_collector(leotest_metrics::Sampled::counter(
            "leotest_kernel_orchestrator_retries",
            "-",
            || 0,
        ));
        r.register_collector(leotest_metrics::Sampled::gauge(
            "leotest_kernel_jobs_active",
            "-",
            || 0,
        ));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).expect("encode");
        out
    }

    #[test]
    fn the_text_format_passes_promtool() {
        let text = leotest_metrics::negotiate::openmetrics_to_text004(&busy());
        assert!(
            text.contains("\nleotest_kernel_build_info{version=\""),
            "{text}"
        );
        assert!(text.contains("\nprocess_open_fds "), "{text}");
        if leotest_test_support::scrape::promtool_available() {
            leotest_test_support::scrape::promtool_check(&text)
                .unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
        }
    }

    #[test]
    fn the_dashboard_uses_only_exposed_names() {
        let dashboard = include_str!("../../docs/grafana-dashboard.json");
        let used = leotest_metrics::names::names_with_prefix(dashboard, "leotest_kernel_");
        assert!(used.len() >= 10, "{used:?}");
        let exposed = leotest_metrics::names::sample_names(&busy());
        let missing: Vec<_> = used.difference(&exposed).collect();
        assert!(missing.is_empty(), "not exposed: {missing:?}\n{exposed:?}");
    }
}
