//! `cargo xtask e2e-sites`: the end-to-end test of the multi-site testbed (issue 22; formerly
//! scripts/e2e-sites.sh, same checks under the same names, same lines): two sites, each behind
//! an emulated `$LINK` uplink. It brings the testbed up (`scripts/testbed.sh up --nodes 2
//! --link $LINK`), checks that each site's experiments reach their own kernel service's port
//! 9000 and nothing else (not the other site, not the cloud), grants and denials from each
//! site, then runs leotest-sites-probe (bench/src/sites) in both sites' USER_PRIV containers
//! while it cuts site 1's uplink and later revokes the user ([`load`]), prints one summary
//! line ([`summary`]) and checks its figures ([`verdict`]). Every check runs; the exit code
//! says whether any failed. `scripts/testbed.sh down` runs on any early exit too (error,
//! Ctrl-C, SIGTERM).
//!
//! Environment: `COMPOSE_PROJECT_NAME` (leotest-rs-e2e-sites), `LEOTEST_NETWORK`
//! ($COMPOSE_PROJECT_NAME-net), `LEOTEST_HOST_PORT` and `LEOTEST_ORCH_METRICS_PORT` (a free
//! port each), `COMPOSE`, `LINK` (leo|wan|lan), `LOAD_SECONDS` (90), `CUT_AT` (20),
//! `CUT_SECONDS` (10), `REVOKE_AT` (75), `RATE` (10/s), `CONCURRENT` (1),
//! `LEOTEST_STALE_GRANT_WINDOW` (0s: off; on, the fail-closed checks are skipped and the
//! figures measure the policy), `E2E_SITES_OUT` (a directory that keeps the probes' raw lines,
//! the marks and the kernel services' logs), and whatever docker-compose.yml and
//! scripts/testbed.sh read (image tag, host ports).

mod load;
mod summary;
mod verdict;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use crate::checks::Checks;
use crate::compose::Compose;
use crate::scratch::Scratch;
use crate::settings::{env_or, port_or_free};
use crate::testbed;
use crate::{docker, segmentation};

/// The answer prefix of `cca.check` (sysctl's output).
const CCA_ANSWER: &str = "net.ipv4.tcp_congestion_control = ";
/// The sites of the testbed; the first one's uplink is cut.
const SITES: [usize; 2] = [1, 2];

/// The settings of one run, from the environment.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    project: String,
    network: String,
    host_port: u16,
    orch_metrics_port: u16,
    link: String,
    load: load::Plan,
    /// `LEOTEST_STALE_GRANT_WINDOW`, `0s` when unset.
    stale_window: String,
    out: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let project = env_or("COMPOSE_PROJECT_NAME", "leotest-rs-e2e-sites");
        Ok(Self {
            network: env_or("LEOTEST_NETWORK", &format!("{project}-net")),
            project,
            host_port: port_or_free("LEOTEST_HOST_PORT")?,
            orch_metrics_port: port_or_free("LEOTEST_ORCH_METRICS_PORT")?,
            link: env_or("LINK", "leo"),
            load: load::Plan::from_env()?,
            stale_window: env_or("LEOTEST_STALE_GRANT_WINDOW", "0s"),
            out: std::env::var_os("E2E_SITES_OUT")
                .filter(|o| !o.is_empty())
                .map(PathBuf::from),
        })
    }

    /// What every compose command and scripts/testbed.sh of the run get on top of the
    /// caller's environment: the project, its ports, and the multi-site override (made by
    /// `up`, removed by `down`) read by every compose command.
    fn compose_env(&self) -> Vec<(String, String)> {
        vec![
            ("COMPOSE_PROJECT_NAME".into(), self.project.clone()),
            ("LEOTEST_NETWORK".into(), self.network.clone()),
            ("LEOTEST_HOST_PORT".into(), self.host_port.to_string()),
            (
                "LEOTEST_ORCH_METRICS_PORT".into(),
                self.orch_metrics_port.to_string(),
            ),
            (
                "COMPOSE_FILE".into(),
                format!(
                    "docker-compose.yml:target/testbed-sites/{}.yml",
                    self.project
                ),
            ),
        ]
    }
}

/// The whole run; `Ok(false)` when a check failed.
pub(crate) async fn e2e() -> Result<bool> {
    let settings = Settings::from_env()?;
    let compose = Compose::new(settings.compose_env());
    let engine = docker::connect()?;
    let start = Instant::now();
    let mut checks = Checks::new("e2e-sites");
    let tmp = Scratch::new("leotest-e2e-sites")?;
    testbed::checked(
        &compose,
        checks_on_the_testbed(&settings, &compose, &engine, tmp.path(), &mut checks),
    )
    .await?;
    let left = docker::leftovers(&engine, &settings.project, &settings.network).await?;
    checks.check_empty("down -v leaves nothing behind", &left);

    checks.log(&format!(
        "sites end to end ({}): {} s",
        settings.link,
        start.elapsed().as_secs()
    ));
    println!("{}", checks.summary());
    Ok(checks.all_passed())
}

/// `echo cca.check | nc kernel 9000` from `service`: its kernel service's answer (`kernel`
/// is the site's kernel service on its experiment network).
async fn cca_check(compose: &Compose, service: &str) -> String {
    compose
        .exec(service, "echo cca.check | nc -w 10 kernel 9000")
        .await
}

async fn checks_on_the_testbed(
    s: &Settings,
    compose: &Compose,
    engine: &bollard::Docker,
    tmp: &Path,
    checks: &mut Checks,
) -> Result<()> {
    checks.log("building the probe (static, like the testbed's binaries)");
    let probe = crate::testbed::bench_binary(load::PROBE, tmp).await?;

    let nodes = SITES.len().to_string();
    testbed::invoke(compose, &["up", "--nodes", &nodes, "--link", &s.link]).await?;

    for k in SITES {
        segmentation::run(
            compose,
            engine,
            &format!("experiment-user-{k}"),
            &format!("{}-site-{k}", s.network),
            &format!("kernel-service-{k}"),
        )
        .await?
        .record(checks);
        checks.check(
            &format!("site {k}: USER_PRIV granted over the {} link", s.link),
            CCA_ANSWER,
            &cca_check(compose, &format!("experiment-priv-{k}")).await,
        );
        checks.check(
            &format!("site {k}: USER denied"),
            "access_denied",
            &cca_check(compose, &format!("experiment-user-{k}")).await,
        );
    }

    let ca = tmp.join("server.crt");
    load::copy_from(
        compose,
        "orchestrator",
        "/var/lib/leotest/certs/server.crt",
        &ca,
    )
    .await?;
    for k in SITES {
        load::copy_into(
            compose,
            &probe,
            &format!("experiment-priv-{k}"),
            "/usr/local/bin/leotest-sites-probe",
        )
        .await?;
    }

    let marks = load::run(s, compose, &SITES, tmp, &ca, checks).await?;
    let outputs = load::keep(s, compose, &SITES, tmp, &marks).await?;

    let sites: Vec<summary::Site> = SITES
        .iter()
        .zip(&outputs)
        .map(|(&k, out)| summary::Site::compute(k, &summary::parse(out), marks.marks, k == 1))
        .collect();
    println!("{}", summary::line(&s.link, &sites));
    verdict::record(&sites, &s.stale_window, checks);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_reads_the_sites_override_with_its_own_names() {
        let s = Settings {
            project: "lt-sites".into(),
            network: "lt-sites-net".into(),
            host_port: 23201,
            orch_metrics_port: 23202,
            link: "leo".into(),
            load: load::Plan::default(),
            stale_window: "0s".into(),
            out: None,
        };
        let env = s.compose_env();
        for (k, v) in [
            ("COMPOSE_PROJECT_NAME", "lt-sites"),
            ("LEOTEST_NETWORK", "lt-sites-net"),
            ("LEOTEST_HOST_PORT", "23201"),
            ("LEOTEST_ORCH_METRICS_PORT", "23202"),
            (
                "COMPOSE_FILE",
                "docker-compose.yml:target/testbed-sites/lt-sites.yml",
            ),
        ] {
            assert!(env.contains(&(k.into(), v.into())), "{k}={v} in {env:?}");
        }
    }
}
