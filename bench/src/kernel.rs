//! Kernel decision latency: connect → `cca.check` reply from inside a container's netns, for the
//! real kernel service (event-driven identity cache) and for a same-run baseline that, like the
//! original, inspects the Docker network and every container on it for each connection.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::Docker;
use leotest_kernel_service::sys::ns;
use leotest_proto::unary::{MessageKernelAccess, ResponseState};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::docker_env::Scene;
use crate::orch::{AuthedClient, Backend, Orchestrator};
use crate::procs::{binary, free_port, Memory, Proc};
use crate::stats::{ratio_line, table, Row, Samples};
use crate::Settings;

/// What a granted `cca.check` reply starts with.
const CCA_PREFIX: &str = "net.ipv4.tcp_congestion_control";
/// Containers on the bench network: the one measured from plus idle neighbours, as on a
/// node with a few experiments (the baseline's cost grows with this number).
pub const CONTAINERS: usize = 8;

/// Runs `f` on a thread that has joined the network namespace of process `pid`, so the
/// sockets it opens have the container's source address.
pub fn in_netns<T, F>(pid: u32, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    ns::run_in_pid(pid, f).with_context(|| format!("enter the network namespace of {pid}"))?
}

/// One connection: connect, send `cca.check`, read the reply to EOF.
fn check_once(addr: SocketAddr) -> Result<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    s.write_all(b"cca.check\n")?;
    let mut reply = Vec::with_capacity(64);
    s.read_to_end(&mut reply)?;
    let took = t0.elapsed();
    if !reply.starts_with(CCA_PREFIX.as_bytes()) {
        bail!(
            "{addr} replied {:?} instead of the CCA",
            String::from_utf8_lossy(&reply)
        );
    }
    Ok(took)
}

/// `n` sequential connections from the container's netns.
pub fn sequential(pid: u32, addr: SocketAddr, n: usize) -> Result<Samples> {
    in_netns(pid, move || {
        let mut s = Samples::with_capacity(n);
        for _ in 0..n {
            s.push(check_once(addr)?);
        }
        Ok(s)
    })
}

/// `n` connections opened at once from the container's netns; returns latencies of the
/// answered ones and the number answered.
///
/// The burst is split over one thread per CPU, each in the container's namespace with its own
/// runtime, released together: on a veth pair the sending thread also runs the receiving
/// side's TCP stack, so a single generator thread was itself the ceiling of a 1 000-burst.
pub fn concurrent(pid: u32, addr: SocketAddr, n: usize) -> Result<(Samples, usize)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, 8)
        .min(n.max(1));
    let start = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let share = n / threads + usize::from(i < n % threads);
            let start = start.clone();
            std::thread::spawn(move || in_netns(pid, move || burst(addr, share, &start)))
        })
        .collect();
    let mut all = Samples::with_capacity(n);
    let mut answered = 0;
    for w in workers {
        let (s, ok) = w
            .join()
            .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
        all.extend(s);
        answered += ok;
    }
    Ok((all, answered))
}

/// One generator thread's share of a burst: all its connections are spawned before any runs.
fn burst(addr: SocketAddr, n: usize, start: &std::sync::Barrier) -> Result<(Samples, usize)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    start.wait();
    rt.block_on(async move {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let fut = async {
                    let mut s = tokio::net::TcpStream::connect(addr).await?;
                    s.write_all(b"cca.check\n").await?;
                    let mut reply = Vec::with_capacity(64);
                    s.read_to_end(&mut reply).await?;
                    Ok::<_, std::io::Error>(reply)
                };
                match tokio::time::timeout(Duration::from_secs(60), fut).await {
                    Ok(Ok(r)) if r.starts_with(CCA_PREFIX.as_bytes()) => Some(t0.elapsed()),
                    _ => None,
                }
            }));
        }
        let mut s = Samples::with_capacity(n);
        let mut answered = 0;
        for t in tasks {
            if let Ok(Some(d)) = t.await {
                answered += 1;
                s.push(d);
            }
        }
        Ok((s, answered))
    })
}

/// Raises the open-file limit to its hard maximum (1 000 sockets at once).
pub fn raise_nofile() {
    let _ = leotest_kernel_service::sys::raise_nofile();
}

/// A listener with the kernel service's accept backlog, so the baseline and the floor queue
/// connections exactly as the service does (std's 128 would put a one-second SYN-ACK
/// retransmission into their burst figures).
fn listen(port: u16) -> Result<TcpListener> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    Ok(leotest_kernel_service::server::listen(addr, BACKLOG)?)
}

/// The kernel service's default `--listen-backlog`.
const BACKLOG: u32 = 4096;

/// The original's identity method: inspect the network, inspect every container on it (as
/// docker-py's `network.containers` does), and match the peer IP; `userid` label or None.
async fn scan_identity(d: &Docker, network: &str, peer: IpAddr) -> Result<Option<String>> {
    let net = d.inspect_network(network, None).await?;
    let mut found = None;
    let ids: Vec<String> = net.containers.unwrap_or_default().into_keys().collect();
    let mut all = Vec::with_capacity(ids.len());
    for id in ids {
        all.push(d.inspect_container(&id, None).await?);
    }
    for c in all {
        let ip = c
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address);
        if ip.as_deref() == Some(peer.to_string().as_str()) {
            found = c
                .config
                .and_then(|c| c.labels)
                .and_then(|mut l| l.remove("userid"));
            break;
        }
    }
    Ok(found)
}

async fn baseline_conn(
    mut sock: tokio::net::TcpStream,
    peer: IpAddr,
    d: Docker,
    network: String,
    orch: AuthedClient,
) -> Result<()> {
    let _ = sock.set_nodelay(true);
    let granted = match scan_identity(&d, &network, peer).await? {
        Some(userid) => orch
            .clone()
            .kernel_access(MessageKernelAccess { userid })
            .await
            .is_ok_and(|r| r.get_ref().state == ResponseState::Success as i32),
        None => false,
    };
    if !granted {
        sock.write_all(b"access_denied").await?;
        return Ok(());
    }
    let (rd, mut wr) = sock.split();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(rd.take(4096)).read_line(&mut line),
    )
    .await??;
    let reply = if line.trim() == "cca.check" {
        let cca = tokio::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").await?;
        format!("{CCA_PREFIX} = {}\n", cca.trim())
    } else {
        "unknown command\n".to_string()
    };
    wr.write_all(reply.as_bytes()).await?;
    Ok(())
}

/// Starts the baseline broker on `0.0.0.0:port`; it lives as long as the runtime.
async fn start_baseline(port: u16, d: Docker, network: String, orch: AuthedClient) -> Result<()> {
    let l = listen(port)?;
    tokio::spawn(async move {
        loop {
            let Ok((sock, peer)) = l.accept().await else {
                continue;
            };
            let (d, n, o) = (d.clone(), network.clone(), orch.clone());
            tokio::spawn(async move {
                let _ = baseline_conn(sock, peer.ip(), d, n, o).await;
            });
        }
    });
    Ok(())
}

/// A broker with no identity lookup and no orchestrator call: the floor of any design
/// (connection set-up from the container netns, one line in, one line out).
async fn start_floor(port: u16) -> Result<()> {
    let l = listen(port)?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = sock.set_nodelay(true);
                let (rd, mut wr) = sock.split();
                let mut line = String::new();
                let mut rd = BufReader::new(rd.take(4096));
                if rd.read_line(&mut line).await.is_ok() && line.trim() == "cca.check" {
                    if let Ok(cca) =
                        tokio::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").await
                    {
                        let reply = format!("{CCA_PREFIX} = {}\n", cca.trim());
                        let _ = wr.write_all(reply.as_bytes()).await;
                    }
                }
            });
        }
    });
    Ok(())
}

/// Starts the real kernel service binary for the bench network and node credentials.
pub fn start_kernel_service(
    bin_dir: &Path,
    o: &Orchestrator,
    network: &str,
    port: u16,
    log: &Path,
) -> Result<Proc> {
    start_kernel_binary(
        &binary(bin_dir, "leotest-kernel-service")?,
        o,
        network,
        port,
        log,
    )
}

/// [`start_kernel_service`] with a given binary (e.g. an earlier revision's, for a before/after
/// row in the same run).
pub fn start_kernel_binary(
    bin: &Path,
    o: &Orchestrator,
    network: &str,
    port: u16,
    log: &Path,
) -> Result<Proc> {
    start_kernel_via(bin, o, o.addr().port(), network, port, log)
}

/// [`start_kernel_binary`] asking the orchestrator through 127.0.0.1:`orch_port` (e.g. an
/// emulated link in front of it) instead of its own port.
pub fn start_kernel_via(
    bin: &Path,
    o: &Orchestrator,
    orch_port: u16,
    network: &str,
    port: u16,
    log: &Path,
) -> Result<Proc> {
    // Flag names beyond the original's are read from --help, so the harness follows the CLI.
    let help = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let has = |flag: &str| {
        help.split(|c: char| c.is_whitespace() || c == ',' || c == '=')
            .any(|w| w == flag)
    };
    let ca_flag = [
        "--ca-cert",
        "--grpc-ca-cert",
        "--tls-ca",
        "--orchestrator-ca",
        "--ca",
    ]
    .into_iter()
    .find(|f| has(f));
    let mut args: Vec<String> = vec![
        "--nodeid".into(),
        o.node_id.clone(),
        "--grpc-hostname".into(),
        "127.0.0.1".into(),
        "--grpc-port".into(),
        orch_port.to_string(),
        "--access-token".into(),
        o.node_token.clone(),
        "--leotest-net".into(),
        network.into(),
        "--listen".into(),
        format!("0.0.0.0:{port}"),
    ];
    if has("--metrics-listen") {
        args.extend([
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", free_port()?),
        ]);
    }
    if let Some(f) = ca_flag {
        args.extend([f.to_string(), o.cert().display().to_string()]);
    }
    if let Ok(extra) = std::env::var("LEOTEST_BENCH_KERNEL_ARGS") {
        args.extend(extra.split_whitespace().map(str::to_string));
    }
    Proc::spawn(bin, &args, log)
}

/// Waits until the service answers `cca.check` from the container (its cache may still be
/// filling right after start).
fn wait_ready(pid: u32, addr: SocketAddr, proc: &mut Proc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        proc.check_alive()?;
        match sequential(pid, addr, 1) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The `kernel` subcommand.
pub async fn run(s: &Settings) -> Result<String> {
    raise_nofile();
    let o = Orchestrator::start(&s.bin_dir, &Backend::Embedded).await?;
    let docker = crate::docker_env::connect().await?;
    let mut scene = Scene::create(docker.clone(), CONTAINERS, &o.priv_id).await?;
    let result = measure(s, &o, &scene).await;
    scene.cleanup().await;
    result
}

async fn measure(s: &Settings, o: &Orchestrator, scene: &Scene) -> Result<String> {
    let pid = scene.containers[0].pid;
    let n = s.samples;
    let concurrent_n = if s.smoke { 200 } else { 1000 };
    let orch = o.node_clients(1).await?.remove(0);

    let base_port = free_port()?;
    start_baseline(
        base_port,
        scene.docker.clone(),
        scene.network.clone(),
        orch.clone(),
    )
    .await?;
    let base_addr = SocketAddr::new(scene.gateway.into(), base_port);
    let floor_port = free_port()?;
    start_floor(floor_port).await?;
    let floor_addr = SocketAddr::new(scene.gateway.into(), floor_port);

    let dir = tempfile::tempdir()?;
    let log = dir.path().join("kernel-service.log");
    let ks_port = free_port()?;
    let ks_addr = SocketAddr::new(scene.gateway.into(), ks_port);
    let ours = match start_kernel_service(&s.bin_dir, o, &scene.network, ks_port, &log) {
        Ok(mut p) => match wait_ready(pid, ks_addr, &mut p) {
            Ok(()) => Ok(p),
            Err(e) => Err(anyhow::anyhow!(
                "{e:#}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default().trim()
            )),
        },
        Err(e) => Err(e),
    };

    // Optionally an earlier build of the service (LEOTEST_BENCH_KERNEL_BEFORE_BIN), measured in
    // the same interleaved rounds: the before/after cost of a change to the decision.
    let before_log = dir.path().join("kernel-service-before.log");
    let before_port = free_port()?;
    let before_addr = SocketAddr::new(scene.gateway.into(), before_port);
    let before = match std::env::var_os("LEOTEST_BENCH_KERNEL_BEFORE_BIN") {
        Some(bin) => {
            let mut p =
                start_kernel_binary(Path::new(&bin), o, &scene.network, before_port, &before_log)?;
            wait_ready(pid, before_addr, &mut p)?;
            let _ = tokio::task::spawn_blocking(move || sequential(pid, before_addr, 10)).await?;
            Some(p)
        }
        None => None,
    };
    let mut before_s = Samples::with_capacity(n);

    // Warm-up, then interleaved rounds so both see the same machine state.
    let _ = tokio::task::spawn_blocking(move || sequential(pid, base_addr, 10)).await?;
    let mut floor = Samples::with_capacity(n);
    let mut base = Samples::with_capacity(n);
    let mut mine = Samples::with_capacity(n);
    let ks_idle = match &ours {
        Ok(p) => {
            let m = p.memory()?;
            let _ = tokio::task::spawn_blocking(move || sequential(pid, ks_addr, 10)).await?;
            Some(m)
        }
        Err(_) => None,
    };
    let rounds = 10usize;
    for _ in 0..rounds {
        let chunk = n.div_ceil(rounds);
        floor.extend(
            tokio::task::spawn_blocking(move || sequential(pid, floor_addr, chunk)).await??,
        );
        base.extend(tokio::task::spawn_blocking(move || sequential(pid, base_addr, chunk)).await??);
        if ours.is_ok() {
            mine.extend(
                tokio::task::spawn_blocking(move || sequential(pid, ks_addr, chunk)).await??,
            );
        }
        if before.is_some() {
            before_s.extend(
                tokio::task::spawn_blocking(move || sequential(pid, before_addr, chunk)).await??,
            );
        }
    }

    // The generator's own ceiling: the same burst against the floor broker.
    let (mut floor_c, floor_ok) =
        tokio::task::spawn_blocking(move || concurrent(pid, floor_addr, concurrent_n)).await??;
    let (mut base_c, base_ok) =
        tokio::task::spawn_blocking(move || concurrent(pid, base_addr, concurrent_n)).await??;
    let mut rows = vec![Row::new(
        format!("baseline: scan network + inspect {CONTAINERS} containers per connection"),
        &mut base,
        None,
    )];
    if before.is_some() {
        rows.push(Row::new(
            "leotest-kernel-service, before (LEOTEST_BENCH_KERNEL_BEFORE_BIN)",
            &mut before_s,
            None,
        ));
    }
    let floor_row = Row::new(
        "floor: same TCP exchange, no identity lookup, no orchestrator call",
        &mut floor,
        None,
    );
    let mut conc_rows = vec![Row::new(
        format!("baseline: {concurrent_n} concurrent, {base_ok} answered"),
        &mut base_c,
        None,
    )];
    let floor_conc_row = Row::new(
        format!("floor (generator + TCP ceiling): {concurrent_n} concurrent, {floor_ok} answered"),
        &mut floor_c,
        None,
    );
    let mut out = String::new();
    let mut ks_loaded: Option<Memory> = None;
    match &ours {
        Ok(p) => {
            let (mut c, ok) =
                tokio::task::spawn_blocking(move || concurrent(pid, ks_addr, concurrent_n))
                    .await??;
            ks_loaded = Some(p.memory()?);
            rows.push(Row::new(
                "leotest-kernel-service: event-driven identity cache",
                &mut mine,
                None,
            ));
            conc_rows.push(Row::new(
                format!("leotest-kernel-service: {concurrent_n} concurrent, {ok} answered"),
                &mut c,
                None,
            ));
        }
        Err(e) => out.push_str(&format!(
            "\nleotest-kernel-service: not available ({e:#})\n"
        )),
    }
    let mut text = table(
        &format!(
            "kernel service: connect -> `cca.check` reply from a container netns \
             ({n} sequential, Docker engine, orchestrator kernel_access over TLS on every connection)"
        ),
        &rows.iter().cloned().chain([floor_row]).collect::<Vec<_>>(),
    );
    text.push_str(&table(
        "kernel service: concurrent connections (all opened at once)",
        &conc_rows
            .iter()
            .cloned()
            .chain([floor_conc_row])
            .collect::<Vec<_>>(),
    ));
    if rows.len() == 2 {
        text.push_str(&ratio_line(
            "event-driven p50 / scan-per-connection p50",
            rows[1].p50.as_secs_f64() * 1e3,
            rows[0].p50.as_secs_f64() * 1e3,
            "ms",
        ));
        text.push('\n');
        text.push_str(&ratio_line(
            "event-driven p99 / scan-per-connection p99",
            rows[1].p99.as_secs_f64() * 1e3,
            rows[0].p99.as_secs_f64() * 1e3,
            "ms",
        ));
        text.push('\n');
        text.push_str(&ratio_line(
            &format!("{concurrent_n} concurrent p99, event-driven / scan"),
            conc_rows[1].p99.as_secs_f64() * 1e3,
            conc_rows[0].p99.as_secs_f64() * 1e3,
            "ms",
        ));
        text.push('\n');
    }
    if let (Some(idle), Some(loaded)) = (ks_idle, ks_loaded) {
        text.push_str(&format!(
            "memory (kernel service): idle {}; after load {}\n",
            idle.describe(),
            loaded.describe()
        ));
    }
    text.push_str(&out);
    Ok(text)
}

/// Kernel service memory idle and after 1 000 concurrent connections (the `rss` subcommand).
pub async fn memory(s: &Settings) -> Result<String> {
    raise_nofile();
    let o = Orchestrator::start(&s.bin_dir, &Backend::Embedded).await?;
    let docker = crate::docker_env::connect().await?;
    let mut scene = Scene::create(docker, 1, &o.priv_id).await?;
    let result = memory_in(s, &o, &scene).await;
    scene.cleanup().await;
    result
}

async fn memory_in(s: &Settings, o: &Orchestrator, scene: &Scene) -> Result<String> {
    let pid = scene.containers[0].pid;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("kernel-service.log");
    let port = free_port()?;
    let addr = SocketAddr::new(scene.gateway.into(), port);
    let mut p = match start_kernel_service(&s.bin_dir, o, &scene.network, port, &log) {
        Ok(p) => p,
        Err(e) => return Ok(format!("kernel service memory: not available ({e:#})\n")),
    };
    if let Err(e) = wait_ready(pid, addr, &mut p) {
        return Ok(format!("kernel service memory: not available ({e:#})\n"));
    }
    let idle = p.memory()?;
    let n = if s.smoke { 200 } else { 1000 };
    let (_, ok) = tokio::task::spawn_blocking(move || concurrent(pid, addr, n)).await??;
    let loaded = p.memory()?;
    Ok(format!(
        "kernel service memory: idle {}; after {n} concurrent connections ({ok} answered) {}\n{}\n",
        idle.describe(),
        loaded.describe(),
        ratio_line(
            "kernel service VmHWM after load / idle VmRSS",
            loaded.hwm_kib as f64 / 1024.0,
            idle.rss_kib as f64 / 1024.0,
            "MiB"
        )
    ))
}
