//! `leotest-sites-probe`: kernel decisions at a steady rate from inside an experiment container
//! of a multi-site testbed (scripts/e2e-sites.sh). Each decision is one `cca.check` to the
//! site's kernel service; one line per decision goes to stdout —
//! `d <start, ms since the epoch> <latency ms> granted|denied|error` — so that the driver can
//! line the decisions up with the link cut and the revocation it made, then one summary line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use leotest_client::kernel::{KernelClient, KernelCommand};
use tokio::time::MissedTickBehavior;

/// Steady kernel decisions from this container.
#[derive(Debug, Parser)]
#[command(name = "leotest-sites-probe", version, about)]
pub struct Args {
    /// The site's kernel service (host:port).
    #[arg(long, default_value = "kernel:9000")]
    pub kernel: String,
    /// Seconds of load.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Rounds per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Connections opened at once in each round (1: one container connecting; 50: a burst).
    #[arg(long, default_value_t = 1)]
    pub concurrent: usize,
    /// Answer deadline of one decision, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub deadline: f64,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

async fn decide(kernel: &KernelClient) -> &'static str {
    match kernel.request(&KernelCommand::CcaCheck).await {
        Ok((reply, _)) if reply.access_denied => "denied",
        Ok((_, text)) if text.contains("net.ipv4.tcp_congestion_control = ") => "granted",
        _ => "error",
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (host, port) = args
        .kernel
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--kernel must be host:port"))?;
    let deadline = Duration::from_secs_f64(args.deadline.clamp(0.1, 120.0));
    let kernel = Arc::new(KernelClient::new(&host, port, deadline));
    let until = Instant::now() + Duration::from_secs_f64(args.duration.clamp(0.1, 3600.0));
    let mut tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.clamp(0.1, 1000.0)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    let concurrent = args.concurrent.clamp(1, 1000);
    while Instant::now() < until {
        tick.tick().await;
        for _ in 0..concurrent {
            let kernel = Arc::clone(&kernel);
            tasks.spawn(async move {
                let (at, t0) = (now_ms(), Instant::now());
                let outcome = decide(&kernel).await;
                println!(
                    "d {at} {:.1} {outcome}",
                    t0.elapsed().as_secs_f64() * 1000.0
                );
            });
        }
        // bounded: at most a few seconds' worth of decisions in flight
        while tasks.len() > concurrent * 64 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    println!("# done {}", now_ms());
    Ok(())
}

/// Entry point of the `leotest-sites-probe` binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("leotest-sites-probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leotest-sites-probe: {e:#}");
            ExitCode::FAILURE
        }
    }
}
