//! Binary entry point: parse flags, wire identity + oracle + sandbox, serve until a signal.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use leotest_kernel_service::config::{Cli, Sub};
use leotest_kernel_service::identity::DockerIdentity;
use leotest_kernel_service::metrics::{self, Metrics};
use leotest_kernel_service::netns::NetnsCache;
use leotest_kernel_service::oracle::{ClientOracle, GrantCache};
use leotest_kernel_service::sandbox::{JobManager, SandboxConfig};
use leotest_kernel_service::server::{self, Service, ServiceConfig};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let a = cli.args;
    if let Some(Sub::Healthcheck) = cli.command {
        std::process::exit(if metrics::healthcheck(a.metrics_listen).await {
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
    let token = a.node_token().context("reading --access-token-file")?;
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
    let netns = Arc::new(NetnsCache::new());
    let identity = DockerIdentity::start(a.leotest_net.clone(), netns)
        .await
        .context("docker")?;
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
    let metrics = Arc::new(Metrics::default());
    let svc = Arc::new(Service {
        identity,
        oracle: Arc::new(oracle),
        cache: GrantCache::new(a.grant_cache_ttl),
        jobs,
        cfg: ServiceConfig {
            read_timeout: a.read_timeout,
            decision_deadline: a.decision_deadline,
            cca_scope: a.cca_scope,
            bbr2_param_dir: a.bbr2_param_dir.clone(),
            max_connections: a.max_connections,
        },
        metrics: Arc::clone(&metrics),
    });
    let mlisten = tokio::net::TcpListener::bind(a.metrics_listen)
        .await
        .with_context(|| format!("binding {}", a.metrics_listen))?;
    tokio::spawn(metrics::serve(mlisten, metrics));
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    tracing::info!(listen = %a.listen, network = %a.leotest_net, "kernel service ready");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("shutting down");
    };
    server::run(listener, svc, shutdown).await;
    Ok(())
}
