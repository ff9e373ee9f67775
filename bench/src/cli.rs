//! Command line: one subcommand per benchmark, `all` for the BENCHMARKS.md run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::orch::Backend;
use crate::Settings;

/// Benchmarks of leotest-rs; each prints a table and a ratio against a same-run baseline.
#[derive(Debug, Parser)]
#[command(name = "leotest-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,

    /// Short run of everything so CI notices breakage (figures are not meaningful).
    #[arg(long, global = true)]
    smoke: bool,

    /// Directory with the binaries under test (release build).
    #[arg(
        long,
        global = true,
        env = "LEOTEST_BENCH_BIN_DIR",
        default_value = "target/release"
    )]
    bin_dir: PathBuf,

    /// Seconds per measured phase (default 10, smoke 1).
    #[arg(long, global = true)]
    duration: Option<f64>,

    /// Concurrent gRPC streams.
    #[arg(long, global = true, default_value_t = 64)]
    streams: usize,

    /// HTTP/2 connections shared by the streams.
    #[arg(long, global = true, default_value_t = 4)]
    conns: usize,

    /// Sequential samples of the latency benchmarks (default 1000, smoke 50).
    #[arg(long, global = true)]
    samples: Option<usize>,

    /// MongoDB-wire server for the second orchestrator run (skipped when unset).
    #[arg(long, global = true, env = "LEOTEST_TEST_MONGO_URI")]
    mongo_uri: Option<String>,

    /// `schedule`: an orchestrator binary built before atomic bookings, measured in the same
    /// run as the baseline of the ratios (`scripts/bench.sh --baseline-rev REV` builds one).
    #[arg(long, global = true, env = "LEOTEST_BENCH_BASELINE_BIN")]
    baseline_bin: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// kernel_access / get_user over TLS vs the health check, embedded (and MongoDB-wire) store.
    Orchestrator,
    /// Kernel service connect -> cca.check reply from a container vs per-connection network scan.
    Kernel,
    /// Sandboxed job start -> first output byte vs plain fork/exec.
    Sandbox,
    /// Resident memory of the orchestrator and the kernel service, idle and under load.
    Rss,
    /// get_runs over 1 000 000 runs vs 1 000 runs; get_scheduled_runs busy vs quiet node.
    Runs,
    /// schedule_job throughput and p99, one node vs many, one process vs two replicas, vs a
    /// baseline binary (--baseline-bin); overlapping bookings accepted under contention.
    Schedule,
    /// Every benchmark in turn (what BENCHMARKS.md reports).
    All,
    /// leotest-rs next to the Python original (its orchestrator and kernel service), one run.
    CompareOriginal(crate::compare::Options),
    /// Kernel decisions over an emulated link (lan, wan, leo, leo with an obstruction),
    /// leotest-rs next to the Python original in one run.
    Sites(crate::compare::sites::Options),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Settings {
        bin_dir: cli.bin_dir.clone(),
        duration: Duration::from_secs_f64(
            cli.duration
                .unwrap_or(if cli.smoke { 1.0 } else { 10.0 })
                .clamp(0.1, 3600.0),
        ),
        streams: cli.streams.max(1),
        conns: cli.conns.max(1),
        samples: cli
            .samples
            .unwrap_or(if cli.smoke { 50 } else { 1000 })
            .max(1),
        smoke: cli.smoke,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("leotest-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(&cli, &settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leotest-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn header(s: &Settings) {
    println!(
        "# leotest-bench {} — {} CPUs, {}{}",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        if s.smoke { " (smoke run)" } else { "" }
    );
}

async fn orchestrator(cli: &Cli, s: &Settings) -> anyhow::Result<()> {
    print!("{}", crate::orch::run(s, &Backend::Embedded).await?);
    match &cli.mongo_uri {
        Some(uri) => print!(
            "{}",
            crate::orch::run(s, &Backend::Mongo(uri.clone())).await?
        ),
        None => println!("\n(MongoDB-wire backend skipped: LEOTEST_TEST_MONGO_URI is not set)"),
    }
    Ok(())
}

async fn dispatch(cli: &Cli, s: &Settings) -> anyhow::Result<()> {
    header(s);
    match &cli.command {
        Cmd::CompareOriginal(o) => {
            print!("{}", crate::compare::run(s, o).await?);
            Ok(())
        }
        Cmd::Sites(o) => {
            print!("{}", crate::compare::sites::run(s, o).await?);
            Ok(())
        }
        Cmd::Orchestrator => orchestrator(cli, s).await,
        Cmd::Kernel => {
            print!("{}", crate::kernel::run(s).await?);
            Ok(())
        }
        Cmd::Rss => {
            print!("{}", crate::orch::memory(s).await?);
            print!("{}", crate::kernel::memory(s).await?);
            Ok(())
        }
        Cmd::Runs => {
            print!("{}", crate::runs::run(s, cli.mongo_uri.as_deref()).await?);
            Ok(())
        }
        Cmd::Schedule => {
            print!("{}", schedule(cli, s).await?);
            Ok(())
        }
        Cmd::Sandbox => {
            print!("{}", crate::sandbox::run(s).await?);
            Ok(())
        }
        Cmd::All => {
            orchestrator(cli, s).await?;
            print!("{}", crate::kernel::run(s).await?);
            print!("{}", crate::sandbox::run(s).await?);
            print!("\n### memory\n\n{}", crate::orch::memory(s).await?);
            print!("{}", crate::kernel::memory(s).await?);
            print!("{}", crate::runs::run(s, cli.mongo_uri.as_deref()).await?);
            print!("{}", schedule(cli, s).await?);
            Ok(())
        }
    }
}

async fn schedule(cli: &Cli, s: &Settings) -> anyhow::Result<String> {
    crate::schedule::run(s, cli.mongo_uri.as_deref(), cli.baseline_bin.as_deref()).await
}
