//! Waiting for `up`: every long-running service of the chosen profiles and sites healthy (or
//! running, for one without a health check) within a deadline; on failure the compose logs
//! (`--tail=50`) say why.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::Docker;

use super::{log, Testbed};

/// The services `up` waits for, in order: with a profile the database first; with `ha` the
/// replicas and the balancer; with sites each site's kernel service instead of the single one.
pub(crate) fn services(profiles: bool, ha: bool, nodes: Option<u8>) -> Vec<String> {
    let mut s: Vec<String> = if ha {
        vec![
            "mongo",
            "orchestrator",
            "orchestrator-2",
            "orchestrator-lb",
            "kernel-service",
        ]
    } else if profiles {
        vec!["mongo", "orchestrator", "kernel-service"]
    } else {
        vec!["orchestrator", "kernel-service"]
    }
    .into_iter()
    .map(str::to_string)
    .collect();
    if let Some(n) = nodes {
        s.retain(|svc| svc != "kernel-service");
        s.extend((1..=n).map(|k| format!("kernel-service-{k}")));
    }
    s
}

/// A container's health (`healthy`, `starting`, ...), or its state (`running`, `exited`, ...)
/// when it has no health check; `starting` when it cannot be inspected.
async fn state(docker: &Docker, id: &str) -> String {
    let Ok(c) = docker.inspect_container(id, None).await else {
        return "starting".into();
    };
    let state = c.state.unwrap_or_default();
    match state.health {
        Some(h) => h.status.map(|s| s.to_string()).unwrap_or_default(),
        None => state.status.map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// Waits until each of [`services`] is healthy, `timeout` in all.
pub(crate) async fn wait_healthy(tb: &Testbed, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let docker = crate::docker::connect()?;
    let nodes = tb.sites.map(|s| s.nodes);
    for svc in services(tb.var("COMPOSE_PROFILES").is_some(), tb.ha(), nodes) {
        loop {
            let id = tb.service_id(&svc).await.unwrap_or_default();
            let state = if id.is_empty() {
                "starting".to_string()
            } else {
                state(&docker, &id).await
            };
            if state == "healthy" {
                break;
            }
            if Instant::now() >= deadline {
                log(format!("{svc} is not healthy ({state})"));
                let logs = tb.compose.command(["logs", "--tail=50"]);
                // The logs are the diagnosis; the error below is the outcome either way.
                let _ = super::run(logs, "compose logs").await;
                bail!(
                    "{svc} is not healthy ({state}) after {} s",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        log(format!("{svc} healthy"));
    }
    Ok(())
}

/// The id of `service`'s container (`compose ps -q`), if it has one.
pub(crate) async fn service_id(tb: &Testbed, service: &str) -> Result<String> {
    let out = tokio::process::Command::from(tb.compose.command(["ps", "-q", service]))
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .context("running compose ps")?;
    if !out.status.success() {
        bail!("compose ps -q {service}: {}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout.lines().next().unwrap_or_default().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_follow_profiles_and_sites() {
        assert_eq!(
            services(false, false, None),
            ["orchestrator", "kernel-service"]
        );
        assert_eq!(
            services(true, false, None),
            ["mongo", "orchestrator", "kernel-service"]
        );
        assert_eq!(
            services(true, true, None),
            [
                "mongo",
                "orchestrator",
                "orchestrator-2",
                "orchestrator-lb",
                "kernel-service"
            ]
        );
        assert_eq!(
            services(false, false, Some(3)),
            [
                "orchestrator",
                "kernel-service-1",
                "kernel-service-2",
                "kernel-service-3"
            ]
        );
        assert_eq!(
            services(true, true, Some(2)),
            [
                "mongo",
                "orchestrator",
                "orchestrator-2",
                "orchestrator-lb",
                "kernel-service-1",
                "kernel-service-2"
            ]
        );
    }
}
