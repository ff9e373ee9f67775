//! `cargo xtask test [fast|integration|e2e|all]`: every test of leotest-rs in tiers (formerly
//! the body of scripts/test-all.sh, which CI and the README now run through this). The plan is
//! a list of steps worked out from a few facts about the machine ([`Facts`]) by a pure
//! function, so what each tier runs is testable without running it; the runner then starts
//! each step in order, prints its header with the time since the start, and stops at the
//! first that fails (as `set -e` did). A MongoDB-wire server is started for the integration
//! and e2e tiers when `LEOTEST_TEST_MONGO_URI` is unset, and stopped when the run ends, also
//! on Ctrl-C or SIGTERM (a CI time-out).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use tokio::signal::unix::{signal, SignalKind};

use crate::child_env;
use crate::mongo_wire::MongoWire;

/// Which tests a run covers (README "Tests" gives each one's time here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Tier {
    /// Unit tests and every RPC handler in process (`cargo fast`): no binary, TLS, Docker,
    /// MongoDB or root.
    Fast,
    /// `cargo test --workspace` (and the MongoDB suite through the fault proxy), the scale
    /// test, the README/newcomer/operations walk-throughs, the Python compatibility suites.
    Integration,
    /// The Docker tiers (compose testbeds, ha, sites, drop-in) and the benchmark smoke runs.
    E2e,
    /// Integration, then e2e (what CI runs).
    All,
}

/// What the plan depends on, read once from the environment and the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// `LEOTEST_SKIP_DOCKER_TESTS=1`: leave out everything that needs the Docker engine.
    pub(crate) skip_docker: bool,
    /// The original's reference copy (`LEOTEST_UPSTREAM`, else ../shared/upstream/global-testbed)
    /// when it holds the original's kernel service.
    pub(crate) upstream: Option<PathBuf>,
    /// Where the reference copy was looked for (named when it is missing).
    pub(crate) upstream_looked_at: PathBuf,
    /// `CI=true`: a missing reference copy is a failure, not a skip.
    pub(crate) ci: bool,
    /// The image tag the testbeds built, for the drop-in test (`LEOTEST_IMAGE_TAG`, dev).
    pub(crate) image_tag: String,
}

impl Facts {
    pub(crate) fn from_env() -> Self {
        let looked_at = std::env::var_os("LEOTEST_UPSTREAM")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new("../shared/upstream/global-testbed").to_path_buf());
        let looked_at = std::path::absolute(&looked_at).unwrap_or(looked_at);
        Self {
            skip_docker: std::env::var("LEOTEST_SKIP_DOCKER_TESTS").as_deref() == Ok("1"),
            upstream: looked_at
                .join("services/kernel/__main__.py")
                .is_file()
                .then(|| looked_at.clone()),
            upstream_looked_at: looked_at,
            ci: std::env::var("CI").as_deref() == Ok("true"),
            image_tag: crate::settings::env_or("LEOTEST_IMAGE_TAG", "dev"),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A header, then `argv` with `env` added; the run stops when it fails.
    Run {
        header: &'static str,
        argv: Vec<String>,
        env: Vec<(&'static str, String)>,
    },
    /// A command under the previous header (no header of its own).
    Also { argv: Vec<String> },
    /// A line saying what was left out and why.
    Skip(String),
    /// The run cannot be complete here: it fails with this reason.
    Fail(String),
}

/// A command line of fixed words (none has a space), split as the shell would.
fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn run(header: &'static str, line: &str) -> Step {
    run_with(header, line, Vec::new())
}

fn run_with(header: &'static str, line: &str, env: Vec<(&'static str, String)>) -> Step {
    Step::Run {
        header,
        argv: argv(line),
        env,
    }
}

/// What `tier` runs on a machine described by `facts`, in order.
pub(crate) fn plan(tier: Tier, facts: &Facts) -> Vec<Step> {
    match tier {
        Tier::Fast => vec![run(
            "unit tests (workspace: --lib --bins) and the in-process handler tests (--test handlers)",
            // The alias of .cargo/config.toml: `cargo fast` by hand runs exactly this tier.
            "cargo fast",
        )],
        Tier::Integration => integration(),
        Tier::E2e => e2e(facts),
        Tier::All => integration().into_iter().chain(e2e(facts)).collect(),
    }
}

fn integration() -> Vec<Step> {
    vec![
        run("Rust tests (workspace)", "cargo test --workspace --locked"),
        run_with(
            "MongoDB suite again, through the pass-through fault-injecting wire proxy (test-support mongo_proxy)",
            "cargo test --locked -p leotest-orchestrator --test store_conformance --test mongo_compat --test mongo_faults --test booking_race --test node_identity --test replicas",
            vec![("LEOTEST_TEST_MONGO_PROXY", "1".into())],
        ),
        run(
            "scale test: 10 000 jobs and 1 000 000 runs in each store (release build)",
            "cargo test --release --locked -p leotest-orchestrator --test scale_jobs -- --ignored --nocapture --test-threads 1",
        ),
        run("README examples, as written", "scripts/readme-examples.sh"),
        run(
            "newcomer walk-through: login, users, nodes, jobs, every exit code (from outside the repository)",
            "scripts/newcomer.sh",
        ),
        run(
            "docs/operations.md's checked blocks (certificate, registration, online backup and restore, SIGHUP, promtool)",
            "scripts/operations-examples.sh",
        ),
        run(
            "Python grpcio compatibility suite (our client, the original's client) and the harness around the original's code",
            "compat-tests/run.sh",
        ),
    ]
}

fn e2e(facts: &Facts) -> Vec<Step> {
    let mut steps = Vec::new();
    if facts.skip_docker {
        steps.push(Step::Skip(
            "docker-compose testbed: skipped (LEOTEST_SKIP_DOCKER_TESTS=1)".into(),
        ));
    } else {
        steps.extend([
            run("docker-compose testbed end to end (embedded store)", "scripts/e2e-testbed.sh"),
            run(
                "docker-compose testbed end to end (mongo profile)",
                "scripts/e2e-testbed.sh --mongo",
            ),
            run(
                "docker-compose testbed end to end (ha: two replicas behind HAProxy, one killed under load)",
                "scripts/e2e-ha.sh",
            ),
            run(
                "multi-site testbed end to end (2 sites behind emulated leo links: isolation, link cut, revocation)",
                "scripts/e2e-sites.sh",
            ),
            // The images the runs above built (same tag); publishes host ports 50051 and 27017.
            run_with(
                "drop-in: the original's docker-compose files, certificates and client against our images",
                "scripts/dropin-test.sh",
                vec![
                    ("DROPIN_SKIP_BUILD", "1".into()),
                    ("LEOTEST_IMAGE_TAG", facts.image_tag.clone()),
                ],
            ),
        ]);
    }
    steps.push(run(
        "benchmark smoke run",
        "scripts/bench.sh --smoke orchestrator",
    ));
    for what in ["sandbox", "runs"] {
        steps.push(Step::Also {
            argv: argv(&format!("scripts/bench.sh --smoke {what}")),
        });
    }
    let looked_at = facts.upstream_looked_at.display();
    match &facts.upstream {
        _ if facts.skip_docker => steps.push(Step::Skip(
            "compare-original smoke run: skipped (LEOTEST_SKIP_DOCKER_TESTS=1)".into(),
        )),
        Some(dir) => {
            // `before DIR after`: the directory stays one word whatever it contains.
            let orig = |before: &str, after: &str| {
                let mut argv = argv(before);
                argv.push(dir.display().to_string());
                argv.extend(self::argv(after));
                Step::Also { argv }
            };
            steps.push(orig("scripts/bench.sh --smoke --orig", ""));
            // One profile, one burst size (about a minute): the full run is in BENCHMARKS.md.
            steps.push(orig(
                "scripts/bench.sh --smoke sites --orig",
                "--profiles leo+obstruction --containers 1",
            ));
        }
        None if facts.ci => steps.push(Step::Fail(format!(
            "compare-original: the original's reference copy is missing at {looked_at} (CI=true)"
        ))),
        None => steps.push(Step::Skip(format!(
            "compare-original smoke run: SKIPPED, no reference copy of the original at {looked_at}"
        ))),
    }
    steps
}

/// `==> [+12m05s] header`: each header carries the time since the start, so a log shows where
/// the time goes.
fn header_line(elapsed_secs: u64, header: &str) -> String {
    format!(
        "\n==> [+{}m{:02}s] {header}",
        elapsed_secs / 60,
        elapsed_secs % 60
    )
}

/// Runs `tier`; `Ok(false)` when a step failed (its output says why).
pub(crate) async fn run_tier(tier: Tier) -> Result<bool> {
    let facts = Facts::from_env();
    let steps = plan(tier, &facts);
    let start = Instant::now();
    // Registered before anything starts, so the server below is stopped on an interrupt too.
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mongo = match tier {
        Tier::Fast => None,
        _ => {
            println!(
                "{}",
                header_line(
                    start.elapsed().as_secs(),
                    "starting a MongoDB-wire server for the MongoDB backend tests"
                )
            );
            let m = MongoWire::from_env_or_start()?;
            println!("MongoDB backend tests use {}", m.uri());
            Some(m)
        }
    };
    let mongo_env = mongo
        .as_ref()
        .map(|m| ("LEOTEST_TEST_MONGO_URI", m.uri().to_string()));
    for step in steps {
        let (argv, env) = match step {
            Step::Run { header, argv, env } => {
                println!("{}", header_line(start.elapsed().as_secs(), header));
                (argv, env)
            }
            Step::Also { argv } => (argv, Vec::new()),
            Step::Skip(line) => {
                println!("{line}");
                continue;
            }
            Step::Fail(reason) => bail!("{reason}"),
        };
        let ok = tokio::select! {
            r = run_command(&argv, env.into_iter().chain(mongo_env.clone())) => r?,
            _ = interrupt.recv() => bail!("interrupted"),
            _ = terminate.recv() => bail!("terminated"),
        };
        if !ok {
            eprintln!("test: `{}` failed", argv.join(" "));
            return Ok(false);
        }
    }
    println!(
        "{}",
        header_line(start.elapsed().as_secs(), "every step passed")
    );
    Ok(true)
}

/// `argv` (`cargo` is the cargo running this task) with `env` added; whether it succeeded.
/// The child is killed if the run is interrupted.
async fn run_command(
    argv: &[String],
    env: impl Iterator<Item = (&'static str, String)>,
) -> Result<bool> {
    let Some((program, args)) = argv.split_first() else {
        bail!("an empty step");
    };
    let cmd = if program == "cargo" {
        child_env::cargo()
    } else {
        child_env::command(program)
    };
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.args(args).envs(env).kill_on_drop(true);
    let status = cmd
        .status()
        .await
        .with_context(|| format!("starting {program}"))?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            skip_docker: false,
            upstream: Some(PathBuf::from("/up")),
            upstream_looked_at: PathBuf::from("/up"),
            ci: true,
            image_tag: "dev".into(),
        }
    }

    fn programs(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Run { argv, .. } | Step::Also { argv } => Some(argv.join(" ")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn all_is_integration_then_e2e() {
        let f = facts();
        let mut both = plan(Tier::Integration, &f);
        both.extend(plan(Tier::E2e, &f));
        assert_eq!(plan(Tier::All, &f), both);
    }

    #[test]
    fn the_fast_tier_is_the_cargo_alias_alone() {
        assert_eq!(programs(&plan(Tier::Fast, &facts())), ["cargo fast"]);
    }

    #[test]
    fn every_docker_step_is_left_out_when_asked() {
        let f = Facts {
            skip_docker: true,
            ..facts()
        };
        let ran = programs(&plan(Tier::All, &f));
        for docker in ["e2e-", "dropin", "--orig"] {
            assert!(!ran.iter().any(|p| p.contains(docker)), "{docker}: {ran:?}");
        }
        assert!(ran.iter().any(|p| p == "scripts/bench.sh --smoke runs"));
        let skips = plan(Tier::E2e, &f)
            .into_iter()
            .filter(|s| matches!(s, Step::Skip(_)))
            .count();
        assert_eq!(skips, 2);
    }

    #[test]
    fn a_missing_original_fails_under_ci_and_is_skipped_elsewhere() {
        let missing = Facts {
            upstream: None,
            upstream_looked_at: PathBuf::from("/nowhere"),
            ..facts()
        };
        let last = plan(Tier::E2e, &missing).pop();
        assert!(
            matches!(&last, Some(Step::Fail(r)) if r.contains("/nowhere") && r.contains("CI=true")),
            "{last:?}"
        );
        let local = Facts {
            ci: false,
            ..missing
        };
        let last = plan(Tier::E2e, &local).pop();
        assert!(
            matches!(&last, Some(Step::Skip(r)) if r.contains("SKIPPED")),
            "{last:?}"
        );
    }

    #[test]
    fn the_original_is_compared_from_where_it_was_found() {
        let ran = programs(&plan(Tier::E2e, &facts()));
        assert!(
            ran.contains(&"scripts/bench.sh --smoke --orig /up".to_string()),
            "{ran:?}"
        );
    }

    #[test]
    fn the_drop_in_test_reuses_the_testbeds_images() {
        let f = Facts {
            image_tag: "t1".into(),
            ..facts()
        };
        let dropin = plan(Tier::E2e, &f).into_iter().find_map(|s| match s {
            Step::Run { argv, env, .. } if argv[0] == "scripts/dropin-test.sh" => Some(env),
            _ => None,
        });
        assert_eq!(
            dropin,
            Some(vec![
                ("DROPIN_SKIP_BUILD", "1".to_string()),
                ("LEOTEST_IMAGE_TAG", "t1".to_string())
            ])
        );
    }

    #[test]
    fn headers_carry_the_time_since_the_start() {
        assert_eq!(header_line(725, "x"), "\n==> [+12m05s] x");
        assert_eq!(header_line(0, "y"), "\n==> [+0m00s] y");
    }

    #[test]
    fn every_script_a_step_names_exists() {
        // Run from the crate directory: the scripts are one level up.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for p in programs(&plan(Tier::All, &facts())) {
            let program = p.split(' ').next().unwrap_or_default();
            if program != "cargo" {
                assert!(root.join(program).is_file(), "{program}");
            }
        }
    }
}
