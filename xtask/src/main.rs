//! `cargo xtask`: the project's test tasks in Rust (issue 26 item 6), run from the workspace
//! root whatever the caller's directory. scripts/test-all.sh, scripts/testbed.sh,
//! scripts/e2e-testbed.sh, scripts/e2e-ha.sh, scripts/e2e-sites.sh and
//! scripts/security-tests.sh are wrappers around it, so the README's commands run these.

mod checks;
mod child_env;
mod compose;
mod docker;
mod docker_cli;
mod e2e_ha;
mod e2e_sites;
mod e2e_testbed;
mod mongo_wire;
// The one port allocator of the tests and benchmarks (below the ephemeral range, checked free),
// compiled in here as well: xtask does not depend on test-support (it would build the MongoDB
// driver into every `cargo xtask`).
#[path = "../../test-support/src/ports.rs"]
#[allow(dead_code, unreachable_pub)]
mod ports;
mod scrape;
mod scratch;
mod security;
mod segmentation;
mod settings;
mod test_all;
mod testbed;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Project tasks: the test tiers, the docker-compose testbed, its end-to-end checks and the
/// security tests.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Up the compose testbed, check it end to end, down it, check nothing is left.
    E2eTestbed {
        /// The orchestrator on the `mongo` profile's MongoDB-wire server.
        #[arg(long)]
        mongo: bool,
    },
    /// The failover test of the `ha` testbed: up it, kill the replica serving the kernel
    /// service under load, check nothing acknowledged was lost, down it.
    E2eHa,
    /// Up a two-site testbed behind emulated links, check isolation, grants and denials per
    /// site, then probe both sites while site 1's uplink is cut and the user revoked; one
    /// summary line, down it. Settings in the environment (xtask/src/e2e_sites/mod.rs).
    E2eSites,
    /// The segmentation check alone, against a running testbed ($COMPOSE_PROJECT_NAME): only
    /// the kernel service's port 9000 may answer an experiment container; exit 1 when not.
    Segmentation {
        /// The compose service probed from (a sample experiment container).
        probe: String,
        /// The experiment network (the kernel service's address there may answer on 9000).
        network: String,
        /// The kernel service's compose service.
        #[arg(default_value = "kernel-service")]
        kernel: String,
    },
    /// Every test of leotest-rs, or one tier of them (scripts/test-all.sh, the README's test
    /// command, runs this).
    Test {
        /// fast: unit tests and every RPC handler in process; integration: cargo test
        /// --workspace, the scale test, the walk-throughs, the Python suites; e2e: the Docker
        /// testbeds and the benchmark smoke runs; all: integration then e2e (CI).
        #[arg(value_enum, default_value = "all")]
        tier: test_all::Tier,
    },
    // Its help is TestbedArgs's (a doc comment here would replace it).
    Testbed(testbed::TestbedArgs),
    /// Every `security_*` test of the workspace; fails unless each one ran and passed.
    SecurityTests {
        /// Passed to the test binaries (e.g. `--nocapture`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    // Scripts, compose files and crate directories are named relative to the root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no workspace root above xtask/")?;
    std::env::set_current_dir(root).with_context(|| format!("cd {}", root.display()))?;
    match cli.task {
        Task::E2eTestbed { mongo } => runtime()?.block_on(e2e_testbed::e2e(mongo)),
        Task::E2eHa => runtime()?.block_on(e2e_ha::e2e()),
        Task::E2eSites => runtime()?.block_on(e2e_sites::e2e()),
        Task::Segmentation {
            probe,
            network,
            kernel,
        } => runtime()?.block_on(async {
            let compose = compose::Compose::new(Vec::new());
            let engine = docker::connect()?;
            let outcome = segmentation::run(&compose, &engine, &probe, &network, &kernel).await?;
            let mut checks = checks::Checks::new("segmentation");
            outcome.record(&mut checks);
            println!("{}", checks.summary());
            Ok(checks.all_passed())
        }),
        Task::Test { tier } => runtime()?.block_on(test_all::run_tier(tier)),
        Task::SecurityTests { args } => security::run(&args),
        Task::Testbed(args) => match testbed::run_task(args)? {
            testbed::Next::Done => Ok(true),
            testbed::Next::E2eTestbed { mongo } => runtime()?.block_on(e2e_testbed::e2e(mongo)),
        },
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn extra_test_arguments_pass_through() {
        let cli = Cli::try_parse_from(["xtask", "security-tests", "--", "--nocapture"]).unwrap();
        assert!(matches!(cli.task, Task::SecurityTests { args } if args == ["--nocapture"]));
        let cli = Cli::try_parse_from(["xtask", "e2e-testbed", "--mongo"]).unwrap();
        assert!(matches!(cli.task, Task::E2eTestbed { mongo: true }));
        let cli = Cli::try_parse_from(["xtask", "test"]).unwrap();
        assert!(matches!(
            cli.task,
            Task::Test {
                tier: test_all::Tier::All
            }
        ));
        let cli = Cli::try_parse_from(["xtask", "test", "fast"]).unwrap();
        assert!(matches!(
            cli.task,
            Task::Test {
                tier: test_all::Tier::Fast
            }
        ));
        assert!(Cli::try_parse_from(["xtask", "test", "slow"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "e2e-sites"]).unwrap();
        assert!(matches!(cli.task, Task::E2eSites));
        // Its settings are in the environment: an argument is a usage error.
        assert!(Cli::try_parse_from(["xtask", "e2e-sites", "leo"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "segmentation", "p", "n"]).unwrap();
        assert!(
            matches!(cli.task, Task::Segmentation { kernel, .. } if kernel == "kernel-service")
        );
        let cli = Cli::try_parse_from(["xtask", "testbed", "up", "--nodes=3", "--link", "lan"]);
        assert!(matches!(cli.unwrap().task, Task::Testbed(_)));
        let e = Cli::try_parse_from(["xtask", "testbed", "up", "--nodes", "17"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("a number of sites from 2 to 16"),
            "{e}"
        );
        assert!(Cli::try_parse_from(["xtask", "testbed", "link", "cut", "x"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "testbed", "--mongo"]).is_err());
    }

    #[test]
    fn e2e_ha_takes_no_arguments() {
        let cli = Cli::try_parse_from(["xtask", "e2e-ha"]).unwrap();
        assert!(matches!(cli.task, Task::E2eHa));
        assert!(Cli::try_parse_from(["xtask", "e2e-ha", "extra"]).is_err());
    }
}
