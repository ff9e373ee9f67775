//! Binary entry point: parse flags, look at the environment, wire identity + oracle + sandbox,
//! serve until a signal.

#![forbid(unsafe_code)]

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use leotest_kernel_service::config::{token_on_command_line, Cli, LogFormat, Sub};
use leotest_kernel_service::identity::{DockerIdentity, IdentityOptions};
use leotest_kernel_service::metrics::Metrics;
use leotest_kernel_service::netns::NetnsCache;
use leotest_kernel_service::oracle::{AccessOracle, ClientOracle, DecisionCache, OracleOptions};
use leotest_kernel_service::sandbox::{JobManager, SandboxConfig};
use leotest_kernel_service::server::{self, Service, ServiceConfig};
use leotest_kernel_service::stale::StaleGrantOracle;
use leotest_kernel_service::{preflight, sys};
use leotest_metrics::Sampled;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> anyhow::Result<()> {
    // Before any thread exists (capability sets and no_new_privs are per thread, inherited by
    // threads created later): keep only the capabilities the service uses (issue 23).
    sys::privs::no_new_privs().context("no_new_privs")?;
    sys::privs::keep_only(sys::privs::daemon_mask()).context("dropping capabilities")?;
    leotest_kernel_service::hardening::install().context("the daemon's seccomp filter")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("async runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let a = cli.args;
    match cli.command {
        Some(Sub::Healthcheck) => {
            let healthy = match a.metrics_addr().await {
                Ok(addr) => leotest_metrics::healthcheck(addr).await,
                Err(_) => false,
            };
            std::process::exit(if healthy { 0 } else { 1 });
        }
        Some(Sub::Ask { socket, line }) => return ask(&socket, &line).await,
        None => {}
    }
    init_logging(a.log_format);
    anyhow::ensure!(!a.nodeid.is_empty(), "--nodeid is required");
    if token_on_command_line(std::env::args()) {
        tracing::warn!(
            "the node token was given with --access-token on the command line, where every \
             local user can read it (ps, /proc/PID/cmdline); prefer --access-token-file or \
             LEOTEST_ACCESS_TOKEN"
        );
    }
    let token = a.node_token().context("reading --access-token-file")?;
    anyhow::ensure!(
        a.ca_cert.exists(),
        "no orchestrator CA certificate at {} (the original baked certs/server.crt into its \
         image; with this image mount it, e.g. `./certs:/leotest/certs:ro`, or pass --ca-cert)",
        a.ca_cert.display()
    );
    match sys::raise_nofile() {
        Ok(n) if n < u64::from(a.max_connections) + 64 => tracing::warn!(
            open_files = n,
            max_connections = a.max_connections,
            "the open-file limit is below --max-connections: accept will fail before the limit"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // With stale grants on, the call gives up a little before the decision deadline, so that
    // an unreachable orchestrator is known in time for the policy to answer.
    let oracle_deadline = if a.stale_grant_window.is_zero() {
        a.decision_deadline
    } else {
        a.decision_deadline.mul_f64(0.9)
    };
    let oracle = ClientOracle::connect_with(OracleOptions {
        endpoint: format!("{}:{}", a.grpc_hostname, a.grpc_port),
        ca_cert: a.ca_cert.clone(),
        domain: a.tls_domain.clone(),
        nodeid: a.nodeid.clone(),
        token,
        deadline: oracle_deadline,
        attempt_timeout: a.orchestrator_attempt_timeout,
        keepalive: a.orchestrator_keepalive,
    })
    .await
    .context("orchestrator client")?;
    let oracle = Arc::new(oracle);
    let stale = Arc::new(StaleGrantOracle::new(
        Arc::clone(&oracle) as Arc<dyn AccessOracle>,
        a.stale_grant_window,
    ));
    if !a.stale_grant_window.is_zero() {
        tracing::warn!(
            window_ms = a.stale_grant_window.as_millis() as u64,
            "stale grants on: while the orchestrator is unreachable, a user granted within the \
             window keeps access (a revocation made meanwhile waits for the link)"
        );
    }
    let docker = bollard::Docker::connect_with_local_defaults().ok();
    let env = preflight::inspect(docker.as_ref()).await;
    let plan = preflight::plan(&env, a.identity_fallback, a.cca_scope);
    let metrics = Arc::new(Metrics::default());
    let netns = Arc::new(NetnsCache::new());
    let identity = DockerIdentity::start(
        IdentityOptions {
            network: a.leotest_net.clone(),
            mode: plan.mode,
            lookups_per_source: a.lookups_per_source,
            lookups_total: a.lookups_total,
        },
        netns,
        Arc::clone(&metrics),
    )
    .await
    .context("docker")?;
    let forging = forging_neighbours(&identity, env.container_id.as_deref());
    let subnets: Vec<String> = identity.subnets().iter().map(|s| s.to_string()).collect();
    preflight::report(&plan, &env, &subnets, &forging);
    let jobs = match JobManager::new(a.sandbox.apply(SandboxConfig {
        prewarm: a.sandbox_prewarm.into(),
        ..SandboxConfig::default()
    })) {
        Ok(j) => Some(j),
        Err(e) => {
            tracing::warn!(error = %e, "sandbox unavailable: non-whitelisted commands get `unknown command`");
            None
        }
    };
    let mut registry = metrics.registry();
    let client = Arc::clone(&oracle);
    registry.register_collector(Sampled::counter(
        "leotest_kernel_orchestrator_retries",
        "Orchestrator calls retried after a transient error (attempts after the first)",
        move || client.retries(),
    ));
    let reused = Arc::clone(&stale);
    registry.register_collector(Sampled::counter(
        "leotest_kernel_stale_grants",
        "Decisions granted from a recent grant because the orchestrator was unreachable (--stale-grant-window)",
        move || reused.reused(),
    ));
    let running = jobs.clone();
    registry.register_collector(Sampled::gauge(
        "leotest_kernel_jobs_active",
        "Sandboxed jobs running now",
        move || running.as_ref().map_or(0, |j| j.running() as u64),
    ));
    let (max_per_source, max_per_user) = a.connection_limits();
    let svc = Arc::new(Service::new(
        identity,
        stale,
        DecisionCache::new(a.grant_cache_ttl, a.deny_cache_ttl),
        jobs,
        ServiceConfig {
            read_timeout: a.read_timeout,
            decision_deadline: a.decision_deadline,
            cca_scope: plan.cca_scope,
            bbr2_param_dir: a.bbr2_param_dir.clone(),
            max_connections: a.max_connections as usize,
            max_per_source,
            max_per_user,
            refuse_caps: a.refuse_caps,
        },
        Arc::clone(&metrics),
    ));
    let maddr = a.metrics_addr().await.context("resolving --metrics-host")?;
    // The error is one line naming the address (and, for a taken port, what to do).
    let mlisten = leotest_metrics::bind(maddr)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::spawn(leotest_metrics::serve(
        mlisten,
        registry,
        leotest_metrics::always_healthy(),
    ));
    let listener = server::listen(a.listen, a.listen_backlog)
        .with_context(|| format!("binding {}", a.listen))?;
    tracing::info!(listen = %a.listen, network = %a.leotest_net,
        max_connections = a.max_connections, max_per_source, max_per_user,
        "kernel service ready");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("shutting down");
    };
    let unix = match &a.unix_socket {
        Some(path) => {
            let l = server::unix::listen_unix(path)
                .with_context(|| format!("binding the unix socket {}", path.display()))?;
            tracing::info!(unix_socket = %path.display(), "also serving on the unix socket");
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(server::unix::run_unix(l, Arc::clone(&svc), async {
                let _ = stop_rx.await;
            }));
            Some((stop_tx, task))
        }
        None => None,
    };
    server::run(listener, svc, shutdown).await;
    if let Some((stop, task)) = unix {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(())
}

/// `ask`: one command over the unix socket, the reply to stdout (bounded by a time-out).
async fn ask(socket: &std::path::Path, line: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(socket).await?;
        // A refusal may come (and the service close) before the command is written: read it.
        match s.write_all(format!("{line}\n").as_bytes()).await {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
        let (mut out, mut buf) = (Vec::new(), [0u8; 8192]);
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // A refusal closes without reading the command: the reset comes after the reply.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => {
                    break
                }
                Err(e) => return Err(e),
            }
        }
        Ok::<_, std::io::Error>(out)
    };
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
        .await
        .context("no reply within 30 s")?
        .with_context(|| format!("talking to {}", socket.display()))?;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(&out).await?;
    stdout.flush().await?;
    Ok(())
}

/// Logs to stdout in `format`; colour codes only when stdout is a terminal (not in `docker
/// logs`, journald or a file).
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Containers on the network, other than this service's own, that can forge a source address
/// (CAP_NET_RAW or more).
fn forging_neighbours(identity: &DockerIdentity, own: Option<&str>) -> Vec<(String, String)> {
    let raw = leotest_kernel_service::caps::CapSet::parse_list("NET_RAW,NET_ADMIN,SYS_ADMIN")
        .unwrap_or_default();
    identity
        .containers()
        .into_iter()
        .filter(|e| Some(e.container_id.as_str()) != own && !e.caps.intersect(raw).is_empty())
        .map(|e| {
            let id = e
                .container_id
                .get(..12)
                .unwrap_or(&e.container_id)
                .to_string();
            (id, e.caps.intersect(raw).to_string())
        })
        .collect()
}
