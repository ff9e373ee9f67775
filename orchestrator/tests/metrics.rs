//! `--metrics-listen`: the real binary over TLS, RPCs that pass and RPCs that are refused, then
//! a scrape of `/metrics` over HTTP, as Prometheus does it: the counters and histograms moved
//! under the right labels, and no token or user id is in the exposition.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::net::SocketAddr;

use leotest_proto::unary::*;
use leotest_test_support::calls::user;
use leotest_test_support::scrape::{sample, scrape, value};
use leotest_test_support::{orchestrator_bin, req, Creds, Orchestrator, ADMIN_TOKEN};

const JWT_SECRET: &str = "metrics-test-jwt-secret-0c4e";

/// The metrics address the server logged (it was started on port 0).
fn metrics_addr(s: &Orchestrator) -> SocketAddr {
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("metrics endpoint listening"))
        .unwrap_or_else(|| panic!("no metrics listener in the log:\n{log}"));
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr in {line:?}"));
    addr.parse()
        .unwrap_or_else(|_| panic!("bad addr in {line:?}"))
}

fn get_user(id: &str) -> MessageGetUser {
    MessageGetUser { userid: id.into() }
}

#[tokio::test]
async fn rpcs_and_refusals_are_counted_without_secrets() {
    let s = Orchestrator::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--jwt-algo",
        "HS256",
        "--jwt-secret",
        JWT_SECRET,
    ])
    .await;
    let addr = metrics_addr(&s);
    let health = leotest_metrics::get(addr, "/healthz")
        .await
        .expect("healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let alice = user(&s, "alice-metrics", UserRoles::User).await;
    let Creds::Token(_, alice_token) = &alice else {
        panic!("static credentials expected")
    };
    let mut c = s.client().await;
    for _ in 0..3 {
        let r = c
            .get_user(req(get_user("alice-metrics"), &alice))
            .await
            .expect("get_user")
            .into_inner();
        assert!(r.exists, "{r:?}");
    }
    let refused = [
        Creds::None,
        Creds::token("alice-metrics", "wrong-token-7f3a"),
        Creds::token("nobody-metrics", "wrong-token-7f3a"),
        Creds::Jwt("not.a.jwt".into()),
    ];
    for creds in &refused {
        let e = c
            .get_user(req(get_user("alice-metrics"), creds))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{creds:?}");
    }

    let m = scrape(addr).await;
    let rpc = |method: &str, code: &str, result: &str| {
        value(
            &m,
            &format!(
                "leotest_orchestrator_rpc_requests_total{{method=\"{method}\",code=\"{code}\",\
                 result=\"{result}\"}}"
            ),
        )
    };
    assert_eq!(rpc("get_user", "OK", "ok"), 3.0);
    assert_eq!(rpc("get_user", "Unauthenticated", "refused"), 4.0);
    assert_eq!(rpc("register_user", "OK", "ok"), 1.0);
    assert_eq!(
        value(
            &m,
            "leotest_orchestrator_rpc_duration_seconds_count{method=\"get_user\"}"
        ),
        7.0
    );
    let inf = "leotest_orchestrator_rpc_duration_seconds_bucket{le=\"+Inf\",method=\"get_user\"}";
    let inf_alt =
        "leotest_orchestrator_rpc_duration_seconds_bucket{method=\"get_user\",le=\"+Inf\"}";
    let buckets = sample(&m, inf).or_else(|| sample(&m, inf_alt));
    assert_eq!(buckets, Some(7.0), "+Inf bucket of get_user:\n{m}");
    for reason in ["no_credentials", "bad_token", "unknown_user", "jwt_invalid"] {
        assert_eq!(
            value(
                &m,
                &format!("leotest_orchestrator_auth_failures_total{{reason=\"{reason}\"}}")
            ),
            1.0,
            "{reason}"
        );
    }
    // Authentication looks the user up: the store wrapper timed it.
    assert!(
        value(
            &m,
            "leotest_orchestrator_store_operation_seconds_count{op=\"get_user\"}"
        ) >= 7.0
    );
    assert!(
        value(
            &m,
            "leotest_orchestrator_store_operation_seconds_count{op=\"add_user\"}"
        ) >= 1.0
    );
    // This test's channel is open while it scrapes.
    assert!(value(&m, "leotest_orchestrator_connections_active") >= 1.0);
    assert!(value(&m, "leotest_orchestrator_connections_total") >= 1.0);

    // Every series the dashboard queries is in this real scrape (store errors: none here).
    let dashboard = include_str!("../../docs/grafana-dashboard.json");
    let used = leotest_metrics::names::names_with_prefix(dashboard, "leotest_orchestrator_");
    let exposed = leotest_metrics::names::sample_names(&m);
    let missing: Vec<_> = used
        .difference(&exposed)
        .filter(|n| *n != "leotest_orchestrator_store_errors_total")
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard names not scraped: {missing:?}"
    );
    for secret in [
        ADMIN_TOKEN,
        alice_token.as_str(),
        "wrong-token-7f3a",
        JWT_SECRET,
        "not.a.jwt",
    ] {
        assert!(!m.contains(secret), "{secret:?} in /metrics");
    }
    for id in ["alice-metrics", "nobody-metrics", "\"admin\""] {
        assert!(!m.contains(id), "user id {id:?} in /metrics");
    }

    // Closing the channel closes the connection: the gauge comes back down.
    drop(c);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = scrape(addr).await;
        if value(&m, "leotest_orchestrator_connections_active") == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connection still counted:\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    drop(c);
    assert!(
        !s.log().contains("metrics endpoint listening"),
        "a metrics listener without --metrics-listen:\n{}",
        s.log()
    );
}

#[tokio::test]
async fn a_taken_metrics_port_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(orchestrator_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &addr.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--admin-access-token", ADMIN_TOKEN])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for metrics on {addr}")),
        "{err}"
    );
}
