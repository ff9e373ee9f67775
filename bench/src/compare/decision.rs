//! Kernel decision, connect → `cca.check` reply, from inside a labeled container with 8 more
//! containers on its network: our kernel service next to the original's (`services.kernel`,
//! which inspects the network and every container on it for each connection). Both get the
//! same bytes from the same container-netns client (`crate::kernel::in_netns`): `cca.check`
//! without a newline and a half-close, which the original needs (it compares the whole first
//! `recv` with "cca.check") and ours accepts.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::harness::{log_tail, start_original_kernel, Harness};
use super::sysstat::{cpu_seconds, dockerd_pid};
use crate::docker_env::Scene;
use crate::kernel::{in_netns, start_kernel_service};
use crate::orch::Orchestrator;
use crate::procs::{free_port, Memory, Proc};
use crate::stats::Samples;
use crate::Settings;

/// The measured container plus the 8 others on the network.
pub(super) const CONTAINERS: usize = 9;
const REQUEST: &[u8] = b"cca.check";
const REPLY_PREFIX: &[u8] = b"net.ipv4.tcp_congestion_control";
/// Interleaved rounds, so both services see the same machine state.
pub(super) const ROUNDS: usize = 10;

/// One exchange as a container's client makes it.
fn exchange(addr: SocketAddr) -> Result<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.set_nodelay(true)?;
    s.write_all(REQUEST)?;
    s.shutdown(Shutdown::Write)?;
    let mut reply = Vec::with_capacity(64);
    s.read_to_end(&mut reply)?;
    let took = t0.elapsed();
    if !reply.starts_with(REPLY_PREFIX) {
        bail!(
            "{addr} replied {:?} instead of the CCA",
            String::from_utf8_lossy(&reply)
        );
    }
    Ok(took)
}

/// `n` sequential exchanges from the network namespace of container process `pid`.
fn sequential(pid: u32, addr: SocketAddr, n: usize) -> Result<Samples> {
    in_netns(pid, move || {
        let mut s = Samples::with_capacity(n);
        for _ in 0..n {
            s.push(exchange(addr)?);
        }
        Ok(s)
    })
}

async fn sequential_async(pid: u32, addr: SocketAddr, n: usize) -> Result<Samples> {
    tokio::task::spawn_blocking(move || sequential(pid, addr, n)).await?
}

/// Waits until a service answers from the container (the original needs a few seconds to
/// import its stack; ours fills its identity cache).
async fn wait_ready(pid: u32, addr: SocketAddr, proc: &mut Proc, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Err(e) = proc.check_alive() {
            bail!("{e:#}; log:\n{}", log_tail(log));
        }
        match sequential_async(pid, addr, 1).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "{} not answering: {e:#}; log:\n{}",
                    proc.name,
                    log_tail(log)
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// What one kernel service showed.
#[derive(Debug, Default)]
pub(super) struct ServiceFigures {
    pub samples: Samples,
    /// Its own CPU and its reaped children's (the original's `sysctl`), per sample set.
    pub cpu: f64,
    /// The Docker engine's CPU during its samples (shared engine: noisy under other load).
    pub dockerd_cpu: Option<f64>,
    pub idle: Memory,
    pub loaded: Memory,
}

/// Both services' figures.
#[derive(Debug, Default)]
pub(super) struct Figures {
    pub ours: ServiceFigures,
    pub original: ServiceFigures,
}

/// The original orchestrator the original kernel service asks, as it needs it.
pub(super) struct OriginalSide<'a> {
    pub harness: &'a Harness,
    pub addr: SocketAddr,
    pub cert: &'a Path,
    pub node_id: &'a str,
    pub node_token: &'a str,
}

/// Runs the comparison: a fresh scene, both services, `samples` exchanges each.
pub(super) async fn run(
    s: &Settings,
    work: &Path,
    ours: &Orchestrator,
    orig: &OriginalSide<'_>,
    samples: usize,
) -> Result<Figures> {
    crate::kernel::raise_nofile();
    let docker = crate::docker_env::connect().await?;
    let mut scene = Scene::create(docker, CONTAINERS, &ours.priv_id).await?;
    let r = measure(s, work, ours, orig, &scene, samples).await;
    scene.cleanup().await;
    r
}

async fn measure(
    s: &Settings,
    work: &Path,
    ours: &Orchestrator,
    orig: &OriginalSide<'_>,
    scene: &Scene,
    samples: usize,
) -> Result<Figures> {
    let pid = scene.containers[0].pid;
    let ours_port = free_port()?;
    let ours_addr = SocketAddr::new(scene.gateway.into(), ours_port);
    let ours_log = work.join("kernel-service.log");
    let mut ours_proc =
        start_kernel_service(&s.bin_dir, ours, &scene.network, ours_port, &ours_log)?;
    // The original answers `cca.check` by running `sysctl`; without it, it never replies.
    let sysctl = std::process::Command::new("sysctl")
        .arg("net.ipv4.tcp_congestion_control")
        .output();
    if !sysctl.is_ok_and(|o| o.status.success()) {
        bail!(
            "the original kernel service runs `sysctl`, which is missing (apt-get install procps)"
        );
    }
    let orig_port = free_port()?;
    let orig_addr = SocketAddr::new(scene.gateway.into(), orig_port);
    let (mut orig_proc, orig_log) = start_original_kernel(
        orig.harness,
        work,
        orig.cert,
        orig.addr,
        (orig.node_id, orig.node_token),
        &scene.network,
        SocketAddr::from(([0, 0, 0, 0], orig_port)),
    )
    .context("start the original kernel service")?;
    wait_ready(pid, ours_addr, &mut ours_proc, &ours_log).await?;
    wait_ready(pid, orig_addr, &mut orig_proc, &orig_log).await?;
    // Warm-up: the first connections fill caches and channels on both sides.
    sequential_async(pid, ours_addr, 5).await?;
    sequential_async(pid, orig_addr, 5).await?;

    let mut f = Figures::default();
    f.ours.idle = ours_proc.memory()?;
    f.original.idle = orig_proc.memory()?;
    let dockerd = dockerd_pid();
    let engine = || dockerd.map(cpu_seconds).transpose();
    let chunk = samples.div_ceil(ROUNDS).max(1);
    let (mut ours_engine, mut orig_engine) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        for (side, addr, proc, engine_sum) in [
            (&mut f.ours, ours_addr, &ours_proc, &mut ours_engine),
            (&mut f.original, orig_addr, &orig_proc, &mut orig_engine),
        ] {
            let (c0, e0) = (cpu_seconds(proc.pid())?, engine()?);
            side.samples
                .extend(sequential_async(pid, addr, chunk).await?);
            side.cpu += cpu_seconds(proc.pid())? - c0;
            if let (Some(a), Some(b)) = (engine()?, e0) {
                *engine_sum += a - b;
            }
        }
    }
    if dockerd.is_some() {
        f.ours.dockerd_cpu = Some(ours_engine);
        f.original.dockerd_cpu = Some(orig_engine);
    }
    f.ours.loaded = ours_proc.memory()?;
    f.original.loaded = orig_proc.memory()?;
    Ok(f)
}
