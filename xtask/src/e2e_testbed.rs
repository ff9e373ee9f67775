//! `cargo xtask e2e-testbed [--mongo]`: the end-to-end check of the docker-compose testbed on
//! the real Docker engine (formerly scripts/e2e-testbed.sh, same checks under the same
//! names): bring it up as `cargo xtask testbed up` does (in process), talk to the kernel
//! service from inside the sample experiment containers, scrape both metrics endpoints, bring
//! it down and check nothing is left behind. Every check runs; the exit code says whether any
//! failed. The testbed is brought down on any early exit too (error, Ctrl-C).
//!
//! Environment: `COMPOSE_PROJECT_NAME` (leotest-rs-e2e), `LEOTEST_NETWORK` (leotest-net),
//! `LEOTEST_KERNEL_METRICS_PORT` (19100), `LEOTEST_ORCH_METRICS_PORT` (9101), `COMPOSE`, and
//! whatever docker-compose.yml and `cargo xtask testbed up` read (image tag, host ports).

use std::time::Instant;

use anyhow::Result;

use crate::checks::Checks;
use crate::compose::Compose;
use crate::settings::{env_or, port_env};
use crate::testbed;
use crate::{docker, scrape, segmentation};

/// The congestion control sysctl, read in the containers and on the node.
const CCA: &str = "/proc/sys/net/ipv4/tcp_congestion_control";
/// The answer prefix of `cca.check` / `cca.change` (sysctl's output).
const CCA_ANSWER: &str = "net.ipv4.tcp_congestion_control = ";

/// The settings of one run, from the command line and the environment.
#[derive(Debug, Clone)]
struct Settings {
    project: String,
    network: String,
    kernel_metrics_port: u16,
    orch_metrics_port: u16,
    mongo: bool,
}

impl Settings {
    fn from_env(mongo: bool) -> Result<Self> {
        Ok(Self {
            project: env_or("COMPOSE_PROJECT_NAME", "leotest-rs-e2e"),
            network: env_or("LEOTEST_NETWORK", "leotest-net"),
            kernel_metrics_port: port_env("LEOTEST_KERNEL_METRICS_PORT", 19100)?,
            orch_metrics_port: port_env("LEOTEST_ORCH_METRICS_PORT", 9101)?,
            mongo,
        })
    }

    /// What every compose command and the testbed's `up` of the run get on top of the
    /// caller's environment.
    fn compose_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("COMPOSE_PROJECT_NAME".to_string(), self.project.clone()),
            ("LEOTEST_NETWORK".to_string(), self.network.clone()),
        ];
        if self.mongo {
            env.push(("COMPOSE_PROFILES".into(), "mongo".into()));
            env.push(("LEOTEST_STORE".into(), "mongo".into()));
        }
        env
    }

    fn store(&self) -> String {
        if self.mongo {
            "mongo".into()
        } else {
            env_or("LEOTEST_STORE", "embedded")
        }
    }
}

/// The whole run; `Ok(false)` when a check failed.
pub(crate) async fn e2e(mongo: bool) -> Result<bool> {
    let settings = Settings::from_env(mongo)?;
    let compose = Compose::new(settings.compose_env());
    let engine = docker::connect()?;
    let start = Instant::now();
    let mut checks = Checks::new("e2e");
    testbed::checked(
        &compose,
        checks_on_the_testbed(&settings, &compose, &engine, &mut checks),
    )
    .await?;
    let left = docker::leftovers(&engine, &settings.project, &settings.network).await?;
    checks.check_empty("down -v leaves nothing behind", &left);

    checks.log(&format!(
        "testbed end to end (store: {}): {} s",
        settings.store(),
        start.elapsed().as_secs()
    ));
    println!("{}", checks.summary());
    Ok(checks.all_passed())
}

/// `echo MESSAGE | nc kernel 9000` from `service`: the kernel service's answer.
/// `kernel`: the kernel service's alias on the experiment network (the original's name).
async fn kernel(compose: &Compose, service: &str, message: &str) -> String {
    compose
        .exec(service, &format!("echo '{message}' | nc -w 5 kernel 9000"))
        .await
}

fn node_cca() -> String {
    std::fs::read_to_string(CCA)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|e| format!("{CCA}: {e}"))
}

/// A congestion control of `available` (the sysctl's space-separated list) other than `current`.
fn other_cca<'a>(available: &'a str, current: &str) -> Option<&'a str> {
    available.split_whitespace().find(|a| *a != current)
}

async fn checks_on_the_testbed(
    s: &Settings,
    compose: &Compose,
    engine: &bollard::Docker,
    checks: &mut Checks,
) -> Result<()> {
    testbed::invoke(compose, &["up"]).await?;
    let node_before = node_cca();

    checks.check(
        "USER_PRIV gets the congestion control",
        CCA_ANSWER,
        &kernel(compose, "experiment-priv", "cca.check").await,
    );
    checks.check(
        "USER is denied",
        "access_denied",
        &kernel(compose, "experiment-user", "cca.check").await,
    );
    checks.check(
        "the compose service name answers too",
        CCA_ANSWER,
        &compose
            .exec(
                "experiment-priv",
                "echo cca.check | nc -w 5 kernel-service 9000",
            )
            .await,
    );
    // Experiments reach the kernel service's port 9000 and nothing else (issue 21 item 6).
    segmentation::run(
        compose,
        engine,
        "experiment-user",
        &s.network,
        "kernel-service",
    )
    .await?
    .record(checks);

    let cat_cca = format!("cat {CCA}");
    let before_user = compose.exec("experiment-user", &cat_cca).await;
    let current = compose.exec("experiment-priv", &cat_cca).await;
    let avail = compose
        .exec(
            "experiment-priv",
            "cat /proc/sys/net/ipv4/tcp_available_congestion_control",
        )
        .await;
    if let Some(target) = other_cca(&avail, &current) {
        checks.check(
            "cca.change answers like sysctl -w",
            &format!("{CCA_ANSWER}{target}"),
            &kernel(compose, "experiment-priv", &format!("cca.change {target}")).await,
        );
        checks.check(
            "the caller's namespace changed",
            target,
            &compose.exec("experiment-priv", &cat_cca).await,
        );
        checks.check(
            "another container's namespace did not",
            &before_user,
            &compose.exec("experiment-user", &cat_cca).await,
        );
        checks.check(
            "the node's own namespace did not",
            &node_before,
            &node_cca(),
        );
    } else {
        checks.log(&format!(
            "only one congestion control available ({avail}): cca.change not exercised"
        ));
    }
    let refused = kernel(compose, "experiment-priv", "cca.change no-such-alg").await;
    checks.check_empty(
        "cca.change refuses an unknown algorithm",
        &scrape::lines_with(&refused, &["= no-such-alg"]),
    );
    checks.check(
        "a sandbox job runs",
        "hello-from-sandbox",
        &kernel(compose, "experiment-priv", "echo hello-from-sandbox").await,
    );
    checks.check(
        "sandbox hostname",
        "sandbox",
        &kernel(compose, "experiment-priv", "hostname").await,
    );
    // CAP_NET_RAW is bit 13 of the bounding set: without it a container cannot forge a
    // neighbour's IP.
    for c in ["experiment-priv", "experiment-user"] {
        checks.check(
            &format!("{c} has no CAP_NET_RAW"),
            "net_raw=0",
            &compose.exec(
                c,
                "b=$(grep CapBnd /proc/self/status | cut -f2); echo net_raw=$(( (0x$b >> 13) & 1 ))",
            ).await,
        );
    }

    // Both metrics endpoints, published on the host's loopback (README, "Metrics").
    let kmetrics = scrape::get(s.kernel_metrics_port, "/metrics").await;
    checks.check(
        "kernel service metrics: decisions counted",
        "counted",
        &scrape::nonzero(
            &kmetrics,
            "leotest_kernel_decisions_total{outcome=\"granted\"}",
        ),
    );
    checks.check(
        "kernel service metrics: sandbox start timed",
        "leotest_kernel_sandbox_start_seconds_count",
        &kmetrics,
    );
    let ometrics = scrape::get(s.orch_metrics_port, "/metrics").await;
    checks.check(
        "orchestrator metrics: kernel_access counted",
        "counted",
        &scrape::nonzero(
            &ometrics,
            "leotest_orchestrator_rpc_requests_total{method=\"kernel_access\",code=\"OK\",result=\"ok\"}",
        ),
    );
    checks.check(
        "orchestrator metrics: store timed",
        "leotest_orchestrator_store_operation_seconds_count{op=\"get_user\"}",
        &ometrics,
    );
    checks.check_empty(
        "orchestrator metrics carry no user id",
        &scrape::lines_with(
            &format!("{ometrics}\n{kmetrics}"),
            &["alice", "bob", "node-1"],
        ),
    );
    checks.check(
        "orchestrator /healthz",
        "ok",
        &scrape::get(s.orch_metrics_port, "/healthz").await,
    );

    if s.mongo {
        // The database is on the control network only (not published): ask it from inside.
        let users = compose.exec(
            "mongo",
            "python3 -c \"import pymongo; c = pymongo.MongoClient('mongodb://127.0.0.1:27017'); \
             print(sorted(u['id'] for u in c.leotest.users.find() if u['id'] in ('alice', 'bob', 'node-1')))\"",
        ).await;
        checks.check(
            "the orchestrator keeps its users in MongoDB",
            "['alice', 'bob', 'node-1']",
            &users,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_congestion_control_is_picked() {
        assert_eq!(other_cca("reno bbr cubic", "cubic"), Some("reno"));
        assert_eq!(other_cca("reno bbr cubic", "reno"), Some("bbr"));
        assert_eq!(other_cca("cubic", "cubic"), None);
        assert_eq!(other_cca("", "cubic"), None);
    }

    #[test]
    fn mongo_runs_set_the_profile_and_the_store() {
        let s = Settings {
            project: "p".into(),
            network: "n".into(),
            kernel_metrics_port: 1,
            orch_metrics_port: 2,
            mongo: true,
        };
        let env = s.compose_env();
        assert!(env.contains(&("COMPOSE_PROFILES".into(), "mongo".into())));
        assert!(env.contains(&("LEOTEST_STORE".into(), "mongo".into())));
        assert!(env.contains(&("COMPOSE_PROJECT_NAME".into(), "p".into())));
        assert_eq!(s.store(), "mongo");
    }
}
