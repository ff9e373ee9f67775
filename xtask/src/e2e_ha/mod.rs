//! `cargo xtask e2e-ha`: the failover end-to-end test of the `ha` compose testbed (two
//! orchestrator replicas on the MongoDB-wire database behind HAProxy), formerly
//! scripts/e2e-ha.sh, with the same checks under the same names. It brings the testbed up
//! with `scripts/testbed.sh up --ha`, runs a steady load of kernel decisions (from the
//! labeled experiment container) and update_run/get_runs (through the balancer), `docker
//! kill`s the replica that serves the kernel service in the middle, then checks that every
//! acknowledged write is readable, that nothing failed beyond the requests in flight at the
//! kill, that every stream kept answering within the deadline, that the replica rejoins when
//! it is back, and that `down -v` leaves nothing behind. The testbed is brought down on any
//! early exit too (error, Ctrl-C, SIGTERM).
//!
//! Environment: `COMPOSE_PROJECT_NAME` (leotest-rs-e2e-ha), `LEOTEST_NETWORK`
//! ($COMPOSE_PROJECT_NAME-net), `LEOTEST_HOST_PORT`, `LEOTEST_LB_PORT`,
//! `LEOTEST_ORCH_METRICS_PORT`, `LEOTEST_KERNEL_METRICS_PORT` (each a free port when unset,
//! so that it can run next to another testbed), `LOAD_SECONDS` (30), `KILL_AFTER` (10),
//! `LEOTEST_TRUSTED_PROXIES`, `COMPOSE`, and whatever docker-compose.yml and
//! scripts/testbed.sh read (image tag).

mod balancer;
mod flow;
mod load;

use std::time::Instant;

use anyhow::Result;

use crate::checks::Checks;
use crate::compose::Compose;
use crate::docker;
use crate::settings::{env_or, port_env, port_or_free};
use crate::testbed;

/// The answer deadline of one request of the load, and the bound on its gaps and latencies.
const DEADLINE_MS: u64 = 3000;

/// The settings of one run, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    project: String,
    /// The experiment network.
    network: String,
    host_port: u16,
    lb_port: u16,
    orch_metrics_port: u16,
    kernel_metrics_port: u16,
    load_seconds: u64,
    kill_after: u64,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let project = env_or("COMPOSE_PROJECT_NAME", "leotest-rs-e2e-ha");
        Ok(Self {
            network: env_or("LEOTEST_NETWORK", &format!("{project}-net")),
            project,
            host_port: port_or_free("LEOTEST_HOST_PORT")?,
            lb_port: port_or_free("LEOTEST_LB_PORT")?,
            orch_metrics_port: port_or_free("LEOTEST_ORCH_METRICS_PORT")?,
            kernel_metrics_port: port_or_free("LEOTEST_KERNEL_METRICS_PORT")?,
            load_seconds: port_env("LOAD_SECONDS", 30)?,
            kill_after: port_env("KILL_AFTER", 10)?,
        })
    }

    /// The control network (orchestrators, balancer, database), which experiments cannot
    /// reach: compose's name for the project's `control` network.
    fn control_net(&self) -> String {
        format!("{}_control", self.project)
    }

    /// What every compose command and scripts/testbed.sh of the run get on top of the
    /// caller's environment: the names and ports, and what `testbed.sh --ha` sets.
    fn compose_env(&self) -> Vec<(String, String)> {
        [
            ("COMPOSE_PROJECT_NAME", self.project.clone()),
            ("LEOTEST_NETWORK", self.network.clone()),
            ("LEOTEST_HOST_PORT", self.host_port.to_string()),
            ("LEOTEST_LB_PORT", self.lb_port.to_string()),
            (
                "LEOTEST_ORCH_METRICS_PORT",
                self.orch_metrics_port.to_string(),
            ),
            (
                "LEOTEST_KERNEL_METRICS_PORT",
                self.kernel_metrics_port.to_string(),
            ),
            ("COMPOSE_PROFILES", "mongo,ha".to_string()),
            ("LEOTEST_STORE", "mongo".to_string()),
            ("LEOTEST_ORCHESTRATOR_HOST", "orchestrator-lb".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The whole run; `Ok(false)` when a check failed.
pub(crate) async fn e2e() -> Result<bool> {
    let settings = Settings::from_env()?;
    let compose = Compose::new(settings.compose_env());
    let engine = docker::connect()?;
    let start = Instant::now();
    let mut checks = Checks::new("e2e-ha");
    testbed::checked(
        &compose,
        flow::run(&settings, &compose, &engine, &mut checks),
    )
    .await?;
    let mut left = docker::leftovers(&engine, &settings.project, &settings.network).await?;
    for id in docker::network_ids(&engine, &settings.control_net()).await? {
        left.push('\n');
        left.push_str(&id);
    }
    checks.check_empty("down -v leaves nothing behind", left.trim_start());

    checks.log(&format!(
        "ha testbed end to end: {} s",
        start.elapsed().as_secs()
    ));
    println!("{}", checks.summary());
    Ok(checks.all_passed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            project: "lt-ha".into(),
            network: "lt-ha-net".into(),
            host_port: 23101,
            lb_port: 23102,
            orch_metrics_port: 23103,
            kernel_metrics_port: 23104,
            load_seconds: 30,
            kill_after: 10,
        }
    }

    #[test]
    fn runs_are_ha_testbeds_on_their_own_names_and_ports() {
        let env = settings().compose_env();
        for (k, v) in [
            ("COMPOSE_PROJECT_NAME", "lt-ha"),
            ("LEOTEST_NETWORK", "lt-ha-net"),
            ("LEOTEST_LB_PORT", "23102"),
            ("LEOTEST_KERNEL_METRICS_PORT", "23104"),
            ("COMPOSE_PROFILES", "mongo,ha"),
            ("LEOTEST_STORE", "mongo"),
            ("LEOTEST_ORCHESTRATOR_HOST", "orchestrator-lb"),
        ] {
            assert!(env.contains(&(k.into(), v.into())), "{k}={v} in {env:?}");
        }
        assert_eq!(settings().control_net(), "lt-ha_control");
    }

    #[test]
    fn an_unset_port_is_a_free_one_and_a_set_one_is_kept() {
        let free = port_or_free("LEOTEST_XTASK_E2E_HA_UNSET_PORT").unwrap();
        std::net::TcpListener::bind(("127.0.0.1", free)).unwrap();
        std::env::set_var("LEOTEST_XTASK_E2E_HA_SET_PORT", "23199");
        assert_eq!(
            port_or_free("LEOTEST_XTASK_E2E_HA_SET_PORT").unwrap(),
            23199
        );
        std::env::set_var("LEOTEST_XTASK_E2E_HA_BAD_PORT", "http");
        assert!(port_or_free("LEOTEST_XTASK_E2E_HA_BAD_PORT").is_err());
    }
}
