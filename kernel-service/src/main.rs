//! Binary entry point: parse flags, look at the environment, wire identity + oracle + sandbox,
//! serve until a signal.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use leotest_kernel_service::config::{token_on_command_line, Cli, Sub};
use leotest_kernel_service::identity::{DockerIdentity, IdentityOptions};
use leotest_kernel_service::metrics::Metrics;
use leotest_kernel_service::netns::NetnsCache;
use leotest_kernel_service::oracle::{ClientOracle, DecisionCache};
use leotest_kernel_service::sandbox::{JobManager, SandboxConfig};
use leotest_kernel_service::server::{self, Service, ServiceConfig};
use leotest_kernel_service::{preflight, sys};
use leotest_metrics::Sampled;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let a = cli.args;
    if let Some(Sub::Healthcheck) = cli.command {
        std::process::exit(if leotest_metrics::healthcheck(a.metrics_listen).await {
            0
        } else {
            1
        });
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
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
    let oracle = ClientOracle::connect(
        format!("{}:{}", a.grpc_hostname, a.grpc_port),
        a.ca_cert.clone(),
        a.tls_domain.clone(),
        a.nodeid.clone(),
        token,
        a.decision_deadline,
    )
    .await
    .context("orchestrator client")?;
    let oracle = Arc::new(oracle);
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
    let running = jobs.clone();
    registry.register_collector(Sampled::gauge(
        "leotest_kernel_jobs_active",
        "Sandboxed jobs running now",
        move || running.as_ref().map_or(0, |j| j.running() as u64),
    ));
    let (max_per_source, max_per_user) = a.connection_limits();
    let svc = Arc::new(Service::new(
        identity,
        oracle,
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
    // The error is one line naming the address (and, for a taken port, what to do).
    let mlisten = leotest_metrics::bind(a.metrics_listen)
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
    server::run(listener, svc, shutdown).await;
    Ok(())
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
