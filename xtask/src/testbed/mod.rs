//! `cargo xtask testbed <build|up|down|e2e|link>` (formerly all of scripts/testbed.sh, which
//! now calls it): the one-machine docker-compose testbed, built and run entirely from local
//! sources: static binaries -> target/testbed/ -> FROM-scratch images (no registry is needed).
//!
//! Every command runs from the workspace root with the caller's environment plus what the
//! options set (as the script exported it): `COMPOSE_PROJECT_NAME` (default leotest-rs) and,
//! for `--mongo`/`--ha`, `COMPOSE_PROFILES`, `LEOTEST_STORE`, `LEOTEST_ORCHESTRATOR_HOST` and
//! `LEOTEST_TRUSTED_PROXIES`. A multi-site testbed is docker-compose.yml plus a generated
//! override, target/testbed-sites/<project>.yml, kept until `down`; every compose command
//! (and those of the e2e scripts) then reads both through `COMPOSE_FILE`.

mod apt;
mod build;
mod health;
mod images;
mod project;
mod secrets;
mod sites;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use crate::child_env::run;
use crate::compose::Compose;
pub(crate) use build::bench_binary;
use project::{has_profile, Profile, Testbed};

/// The staging directory of the images' build contexts.
const STAGE: &str = "target/testbed";
/// How long `up` waits for the services to be healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(180);
/// How sites are numbered, and how many a machine is expected to carry.
const NODES_MESSAGE: &str = "a number of sites from 2 to 16";

/// The one-machine docker-compose testbed (scripts/testbed.sh): build it, run it, check it.
///
/// Static binaries -> target/testbed/ -> FROM-scratch images; no registry is needed.
///
/// --mongo adds the `mongo` profile (a MongoDB-wire server, nx-27017) and runs the
/// orchestrator on it (LEOTEST_STORE=mongo). Its image needs a Python base, made once with
/// debootstrap from the Debian mirror apt uses here (or DEBIAN_MIRROR) and `docker import`
/// (leotest-rs/python-base:bookworm; kept between runs). --ha is --mongo plus the `ha`
/// profile: a second orchestrator replica and HAProxy in front of both
/// (127.0.0.1:$LEOTEST_LB_PORT, default 50052), which the kernel service and init use; its
/// image is made the same way (leotest-rs/haproxy-base:bookworm). --nodes N [--link
/// lan|wan|leo] runs a cloud and N sites, each behind an emulated link (README, "Sites and
/// links"; LEOTEST_NODES and LEOTEST_LINK are the defaults).
///
/// Without a subcommand: `up`.
#[derive(Debug, Args)]
pub(crate) struct TestbedArgs {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the binaries and the images.
    Build(Opts),
    /// Build, then start the testbed and wait until it is healthy (the default).
    Up(Opts),
    /// Stop it and remove its containers, networks and volumes (images stay), its admin
    /// token and its sites file.
    Down(Opts),
    /// Up, run the end-to-end checks, down (used by CI): `cargo xtask e2e-testbed`, or
    /// scripts/e2e-ha.sh with --ha.
    E2e(Opts),
    /// Cut (SIGUSR1) or restore (SIGUSR2) site SITE's emulated uplink (multi-site testbed).
    Link {
        /// What to do to the link.
        action: LinkAction,
        /// The site's number (1..N).
        #[arg(value_parser = site_number)]
        site: String,
    },
}

/// The options of build, up, down and e2e.
#[derive(Debug, Default, Args)]
struct Opts {
    /// The `mongo` profile: the orchestrator on a MongoDB-wire server (nx-27017).
    #[arg(long)]
    mongo: bool,
    /// --mongo plus the `ha` profile: two orchestrator replicas behind HAProxy.
    #[arg(long)]
    ha: bool,
    /// A cloud and N sites (2 to 16), each with its kernel service behind an emulated link
    /// [default: $LEOTEST_NODES].
    #[arg(long, value_name = "N", value_parser = parse_nodes)]
    nodes: Option<u8>,
    /// The sites' link profile [default: $LEOTEST_LINK, else leo].
    #[arg(long, value_name = "PROFILE", value_enum)]
    link: Option<LinkProfile>,
}

/// The emulated uplink of every site (leotest-link's `--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LinkProfile {
    /// A local network (0.25 ms one way).
    Lan,
    /// A wide-area network (20 ms one way, 2 ms jitter).
    Wan,
    /// A Starlink-like link: 25-60 ms RTT, 1 % loss, a handover gap every 15 s.
    Leo,
}

impl LinkProfile {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lan => "lan",
            Self::Wan => "wan",
            Self::Leo => "leo",
        }
    }
}

/// What `link` does to a site's uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LinkAction {
    /// Cut it (SIGUSR1 to the link container).
    Cut,
    /// Restore it (SIGUSR2).
    Restore,
}

/// `--nodes`: digits, 2 to 16.
fn parse_nodes(s: &str) -> Result<u8, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NODES_MESSAGE.into());
    }
    match s.parse::<u8>() {
        Ok(n) if (2..=16).contains(&n) => Ok(n),
        _ => Err(NODES_MESSAGE.into()),
    }
}

/// `link`'s SITE: digits (a site number).
fn site_number(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err("a site number".into())
    }
}

/// The sites of a multi-site testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sites {
    nodes: u8,
    link: LinkProfile,
}

impl Sites {
    /// The command line's choice, else `$LEOTEST_NODES` and `$LEOTEST_LINK` (read by `var`,
    /// unset or empty meaning none); the link is checked only when there are sites. The error
    /// is the usage message.
    fn resolve(
        nodes: Option<u8>,
        link: Option<LinkProfile>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let nodes = match (nodes, var("LEOTEST_NODES")) {
            (Some(n), _) => n,
            (None, Some(env)) => parse_nodes(&env).map_err(|m| format!("--nodes: {m}"))?,
            (None, None) => return Ok(None),
        };
        let link = match (link, var("LEOTEST_LINK")) {
            (Some(l), _) => l,
            (None, Some(env)) => LinkProfile::from_str(&env, false)
                .map_err(|_| "--link: lan, wan or leo".to_string())?,
            (None, None) => LinkProfile::Leo,
        };
        Ok(Some(Self { nodes, link }))
    }
}
/// What the caller still has to do when the testbed's part of a task is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing: the task is done.
    Done,
    /// `testbed e2e`: the end-to-end check (`cargo xtask e2e-testbed`), whose settings are
    /// now in this process's environment. The caller runs it, so that this module does not
    /// import the check that imports it.
    E2eTestbed {
        /// On the `mongo` profile.
        mongo: bool,
    },
}

/// The `testbed` task. Usage errors exit with status 2, as the script's did.
pub(crate) fn run_task(args: TestbedArgs) -> Result<Next> {
    crate::runtime()?.block_on(run_in(Compose::new(Vec::new()), args))
}

/// `scripts/testbed.sh ARGS...` for another task, in process, with `compose`'s environment
/// (its project, ports and profiles) as the script would have seen it: one implementation of
/// up, down and link for the command line and the end-to-end tests.
pub(crate) async fn invoke(compose: &Compose, args: &[&str]) -> Result<()> {
    #[derive(Debug, clap::Parser)]
    struct Line {
        #[command(flatten)]
        args: TestbedArgs,
    }
    let line = <Line as clap::Parser>::try_parse_from(
        std::iter::once("testbed").chain(args.iter().copied()),
    )
    .with_context(|| format!("testbed {}", args.join(" ")))?;
    match Box::pin(run_in(compose.clone(), line.args)).await? {
        Next::Done => Ok(()),
        Next::E2eTestbed { .. } => bail!("testbed e2e is a task of its own, not a step"),
    }
}

/// The task with `base`'s environment under the options' exports.
async fn run_in(base: Compose, args: TestbedArgs) -> Result<Next> {
    let (task, opts) = match args.cmd.unwrap_or(Cmd::Up(Opts::default())) {
        Cmd::Link { action, site } => {
            let mut tb = Testbed::new(base, Profile::Caller);
            tb.link(action, &site).await?;
            return Ok(Next::Done);
        }
        Cmd::Build(o) => (Task::Build, o),
        Cmd::Up(o) => (Task::Up, o),
        Cmd::Down(o) => (Task::Down, o),
        Cmd::E2e(o) => (Task::E2e, o),
    };
    let mut tb = Testbed::new(base, Profile::of(&opts));
    tb.sites = Sites::resolve(opts.nodes, opts.link, |k| tb.var(k)).unwrap_or_else(|m| {
        clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{m}\n")).exit()
    });
    match task {
        Task::Build => build::build(&tb).await?,
        Task::Up => tb.up().await?,
        Task::Down => tb.down().await?,
        Task::E2e if tb.ha() => {
            let err = tb.cmd("scripts/e2e-ha.sh").exec();
            return Err(err).context("running scripts/e2e-ha.sh");
        }
        Task::E2e => {
            // The check reads its settings from the environment, as the script it replaced
            // did when this one exec'd it with its exports: the same exports here (the
            // runtime is current-thread, so no other thread reads the environment).
            for (k, v) in tb.compose.env() {
                std::env::set_var(k, v);
            }
            let mongo = has_profile(tb.var("COMPOSE_PROFILES").as_deref(), "mongo");
            return Ok(Next::E2eTestbed { mongo });
        }
    }
    Ok(Next::Done)
}

/// Runs `checks` on the testbed of `compose`, then brings it down. On any early exit (an
/// error, Ctrl-C, or SIGTERM: a CI time-out) the run is dropped, which kills the command in
/// flight, and a [`DownOnDrop`] brings the testbed down instead. The signal handlers are
/// registered before `checks` is first polled, so before anything starts.
pub(crate) async fn checked(
    compose: &Compose,
    checks: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut guard = DownOnDrop::new(compose);
    tokio::select! {
        r = checks => r?,
        _ = interrupt.recv() => bail!("interrupted"),
        _ = terminate.recv() => bail!("terminated"),
    }
    guard.disarm();
    invoke(compose, &["down"]).await
}

/// Brings the testbed of a task's `compose` down (`testbed down`: every profile, its sites
/// file and secrets) when dropped unless disarmed: a run that fails, errors or is
/// interrupted leaves no testbed behind (the bash harness's `trap cleanup EXIT`).
#[derive(Debug)]
struct DownOnDrop {
    compose: Option<Compose>,
}

impl DownOnDrop {
    /// Armed for `compose`'s testbed.
    fn new(compose: &Compose) -> Self {
        Self {
            compose: Some(compose.clone()),
        }
    }

    /// The run brings the testbed down itself.
    fn disarm(&mut self) {
        self.compose = None;
    }
}

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let Some(compose) = self.compose.take() else {
            return;
        };
        // Dropped inside the task's runtime, which cannot be blocked on: the down runs on a
        // thread of its own with a runtime of its own. Best effort, as `|| true` was: the
        // leftover check reports what stayed.
        let _ = std::thread::spawn(move || {
            let rt = crate::runtime()?;
            rt.block_on(invoke(&compose, &["down"]))
        })
        .join();
    }
}

/// The subcommands that take [`Opts`].
#[derive(Debug, Clone, Copy)]
enum Task {
    Build,
    Up,
    Down,
    E2e,
}

/// Whether `cmd` runs and succeeds.
async fn succeeds(cmd: Command) -> bool {
    tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// `[testbed] MESSAGE` on stderr.
fn log(message: impl std::fmt::Display) {
    eprintln!("[testbed] {message}");
}
#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    /// The task's command line on its own.
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: TestbedArgs,
    }

    fn parse(args: &[&str]) -> Result<Option<Cmd>, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("testbed").chain(args.iter().copied()))
            .map(|c| c.args.cmd)
    }

    #[test]
    fn the_command_line_takes_the_scripts_options() {
        assert!(parse(&[]).unwrap().is_none());
        let Some(Cmd::Up(o)) = parse(&["up", "--ha", "--nodes=3", "--link", "wan"]).unwrap() else {
            panic!("not up");
        };
        assert!(o.ha && !o.mongo);
        assert_eq!((o.nodes, o.link), (Some(3), Some(LinkProfile::Wan)));
        let Some(Cmd::Build(o)) =
            parse(&["build", "--mongo", "--nodes", "2", "--link=leo"]).unwrap()
        else {
            panic!("not build");
        };
        assert_eq!(Profile::of(&o), Profile::Mongo);
        assert_eq!((o.nodes, o.link), (Some(2), Some(LinkProfile::Leo)));
        assert!(matches!(
            parse(&["link", "restore", "2"]).unwrap(),
            Some(Cmd::Link { action: LinkAction::Restore, site }) if site == "2"
        ));
        for bad in [
            &["up", "--nodes", "1"][..],
            &["up", "--link", "fast"],
            &["up", "--bogus"],
            &["start"],
            &["link", "cut"],
            &["link", "sever", "1"],
            &["link", "cut", "one"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn nodes_are_two_to_sixteen_digits() {
        assert_eq!(parse_nodes("2"), Ok(2));
        assert_eq!(parse_nodes("16"), Ok(16));
        assert_eq!(parse_nodes("007"), Ok(7));
        for bad in ["", "1", "17", "+3", "-2", "3x", "999"] {
            assert_eq!(parse_nodes(bad), Err(NODES_MESSAGE.into()), "{bad}");
        }
        assert!(site_number("12").is_ok());
        assert!(site_number("").is_err());
        assert!(site_number("a").is_err());
    }

    #[test]
    fn sites_come_from_the_options_then_the_environment() {
        assert_eq!(Sites::resolve(None, None, env(&[])), Ok(None));
        // A bad link profile matters only when there are sites.
        assert_eq!(
            Sites::resolve(None, None, env(&[("LEOTEST_LINK", "x")])),
            Ok(None)
        );
        assert_eq!(
            Sites::resolve(Some(3), None, env(&[("LEOTEST_NODES", "9")])),
            Ok(Some(Sites {
                nodes: 3,
                link: LinkProfile::Leo
            }))
        );
        assert_eq!(
            Sites::resolve(
                None,
                None,
                env(&[("LEOTEST_NODES", "4"), ("LEOTEST_LINK", "wan")])
            ),
            Ok(Some(Sites {
                nodes: 4,
                link: LinkProfile::Wan
            }))
        );
        assert_eq!(
            Sites::resolve(
                None,
                Some(LinkProfile::Lan),
                env(&[("LEOTEST_NODES", "2"), ("LEOTEST_LINK", "wan")])
            ),
            Ok(Some(Sites {
                nodes: 2,
                link: LinkProfile::Lan
            }))
        );
        assert_eq!(
            Sites::resolve(None, None, env(&[("LEOTEST_NODES", "1")])),
            Err("--nodes: a number of sites from 2 to 16".into())
        );
        assert_eq!(
            Sites::resolve(Some(2), None, env(&[("LEOTEST_LINK", "fast")])),
            Err("--link: lan, wan or leo".into())
        );
    }
}
