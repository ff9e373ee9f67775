//! The kernel service's `/metrics`, scraped over HTTP from the real binary after real
//! connections from labeled containers on a Docker network: decisions by outcome and reason,
//! the latency histograms (decision, Docker lookup, orchestrator round trip, sandbox start),
//! commands by kind, active connections and jobs; and no user id or token in the exposition.
//!
//! Docker is required: without it these tests FAIL. Set `LEOTEST_SKIP_DOCKER_TESTS=1` to skip
//! them locally on a machine without Docker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use leotest_test_support::scrape::{sample, value};
use support::{docker_available, Env, KernelOpts, Roles};

const CCA: &str = "net.ipv4.tcp_congestion_control = ";

fn scrape(port: u16) -> String {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(leotest_test_support::scrape::scrape(addr))
}

/// Scrapes until `series` has `want` (bounded: the connection or job may still be closing).
fn wait_for(port: u16, series: &str, want: f64) -> String {
    let t = Instant::now();
    loop {
        let m = scrape(port);
        if sample(&m, series) == Some(want) {
            return m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{series} never became {want}:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn decisions_latencies_and_jobs_are_exposed() {
    if !docker_available() {
        return;
    }
    let mut env = Env::new("metrics");
    let orch = env.start_orchestrator();
    env.register(orch, "alice-m", Roles::UserPriv);
    env.register(orch, "bob-m", Roles::User);
    let k = env.start_kernel_with(orch, KernelOpts::default());
    let alice = env.container("alice", Some("alice-m"));
    let bob = env.container("bob", Some("bob-m"));
    let nolabel = env.container("nolabel", None);

    assert!(env.ask(&alice, k.port, "cca.check").starts_with(CCA));
    assert_eq!(env.ask(&bob, k.port, "cca.check"), "access_denied");
    assert_eq!(env.ask(&nolabel, k.port, "cca.check"), "access_denied");
    let job = env.ask(&alice, k.port, "job.start sleep 60");
    let job = job.trim();
    assert!(
        !job.is_empty() && !job.starts_with("error"),
        "job.start: {job:?}"
    );

    let m = wait_for(k.metrics_port, "leotest_kernel_jobs_active", 1.0);
    let v = |series: &str| value(&m, series);
    assert_eq!(
        v("leotest_kernel_decisions_total{outcome=\"granted\"}"),
        2.0
    );
    // bob, the unlabeled container, and the harness's own probe of the port from the host.
    assert_eq!(v("leotest_kernel_decisions_total{outcome=\"denied\"}"), 3.0);
    assert_eq!(
        v("leotest_kernel_denials_total{reason=\"peer_not_on_the_network\"}"),
        1.0
    );
    assert_eq!(
        v("leotest_kernel_decision_seconds_count{outcome=\"granted\"}"),
        2.0
    );
    assert_eq!(
        v("leotest_kernel_denials_total{reason=\"not_permitted\"}"),
        1.0
    );
    assert_eq!(
        v("leotest_kernel_denials_total{reason=\"no_userid_label\"}"),
        1.0
    );
    assert_eq!(
        v("leotest_kernel_commands_total{command=\"cca.check\"}"),
        1.0
    );
    assert_eq!(
        v("leotest_kernel_commands_total{command=\"job.start\"}"),
        1.0
    );
    assert_eq!(v("leotest_kernel_sandbox_start_seconds_count"), 1.0);
    assert_eq!(v("leotest_kernel_connections_total"), 5.0);
    // Every grant asks the orchestrator (no grant cache by default); bob's denial once.
    assert!(v("leotest_kernel_orchestrator_calls_total") >= 3.0);
    assert!(v("leotest_kernel_orchestrator_seconds_count{result=\"granted\"}") >= 2.0);
    assert_eq!(
        v("leotest_kernel_orchestrator_seconds_count{result=\"denied\"}"),
        1.0
    );
    assert_eq!(v("leotest_kernel_orchestrator_retries_total"), 0.0);
    assert!(v("leotest_kernel_docker_lookups_total") >= 1.0);
    assert!(v("leotest_kernel_docker_lookup_seconds_count{op=\"list_containers\"}") >= 1.0);
    // Every series the dashboard queries is in this real scrape (no connection limit was hit).
    let dashboard = include_str!("../../docs/grafana-dashboard.json");
    let used = leotest_metrics::names::names_with_prefix(dashboard, "leotest_kernel_");
    let exposed = leotest_metrics::names::sample_names(&m);
    let missing: Vec<_> = used
        .difference(&exposed)
        .filter(|n| *n != "leotest_kernel_over_limit_total")
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard names not scraped: {missing:?}"
    );
    for secret in ["alice-m", "bob-m", env.admin_token.as_str(), job] {
        assert!(!m.contains(secret), "{secret:?} in /metrics:\n{m}");
    }
    let m = wait_for(k.metrics_port, "leotest_kernel_connections_active", 0.0);
    assert!(m.ends_with("# EOF\n"));
    // A scraper that does not ask for OpenMetrics gets the text format promtool accepts.
    let text = {
        let addr: SocketAddr = ([127, 0, 0, 1], k.metrics_port).into();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(leotest_metrics::get_text(addr, "/metrics"))
            .unwrap()
    };
    assert!(text.content_type.starts_with("text/plain; version=0.0.4"));
    if leotest_test_support::scrape::promtool_available() {
        leotest_test_support::scrape::promtool_check(&text.body)
            .unwrap_or_else(|e| panic!("promtool: {e}\n{}", text.body));
    }

    let stopped = env.ask(&alice, k.port, &format!("job.stop {job}"));
    assert!(!stopped.starts_with("error"), "job.stop: {stopped:?}");
    wait_for(k.metrics_port, "leotest_kernel_jobs_active", 0.0);
}
