//! Docker scene for the kernel benchmark: a local busybox image, a network, labeled containers.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

/// Tag of the image built locally (no registry is reachable).
pub const IMAGE: &str = "leotest-bench-busybox:latest";
/// Where busybox-static installs its binary.
const BUSYBOX: &str = "/bin/busybox";

/// One started container.
#[derive(Debug, Clone)]
pub struct Container {
    /// Docker container id.
    pub id: String,
    /// Address on the bench network.
    pub ip: Ipv4Addr,
    /// Host PID of the container's init process (for entering its namespaces).
    pub pid: u32,
}

/// Network plus containers; [`Scene::cleanup`] removes everything it created.
pub struct Scene {
    /// Client of the local Docker daemon.
    pub docker: Docker,
    /// Name of the bench network.
    pub network: String,
    /// Gateway of the bench network (the host's side), unspecified until it is created.
    pub gateway: Ipv4Addr,
    /// Containers started so far, in start order.
    pub containers: Vec<Container>,
}

/// Docker client with the API version negotiated against the local engine.
pub async fn connect() -> Result<Docker> {
    let d = Docker::connect_with_local_defaults().context("connect to the Docker engine")?;
    d.negotiate_version()
        .await
        .context("negotiate the Docker API version")
}

/// A two-file build context (Dockerfile + busybox) as an uncompressed tar archive.
fn context_tar(busybox: &[u8]) -> Vec<u8> {
    let dockerfile = b"FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n";
    let mut tar = Vec::with_capacity(busybox.len() + 4096);
    for (name, mode, data) in [
        ("Dockerfile", 0o644u32, &dockerfile[..]),
        ("busybox", 0o755, busybox),
    ] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, mode as u64);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 0);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field read as spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        tar.extend(std::iter::repeat_n(0u8, pad));
    }
    tar.extend(std::iter::repeat_n(0u8, 1024));
    tar
}

/// Builds [`IMAGE`] from the host's busybox-static unless it already exists.
pub async fn ensure_image(d: &Docker) -> Result<()> {
    if d.inspect_image(IMAGE).await.is_ok() {
        return Ok(());
    }
    let busybox = std::fs::read(BUSYBOX)
        .with_context(|| format!("read {BUSYBOX} (apt-get install -y busybox-static)"))?;
    let opts = BuildImageOptionsBuilder::new()
        .t(IMAGE)
        .rm(true)
        .pull("false")
        .build();
    let mut build = d.build_image(
        opts,
        None,
        Some(bollard::body_full(context_tar(&busybox).into())),
    );
    while let Some(step) = build.next().await {
        let info = step.context("docker build")?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            bail!("docker build: {e}");
        }
    }
    Ok(())
}

impl Scene {
    /// Creates a fresh bridge network and `n` running containers on it, each labeled
    /// `userid=<label>`.
    pub async fn create(d: Docker, n: usize, label: &str) -> Result<Self> {
        ensure_image(&d).await?;
        let name = format!("leotest-bench-{}", std::process::id());
        d.create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            ..Default::default()
        })
        .await
        .context("create network")?;
        let mut scene = Scene {
            docker: d,
            network: name,
            gateway: Ipv4Addr::UNSPECIFIED,
            containers: Vec::new(),
        };
        if let Err(e) = scene.populate(n, label).await {
            scene.cleanup().await;
            return Err(e);
        }
        Ok(scene)
    }

    async fn populate(&mut self, n: usize, label: &str) -> Result<()> {
        let net = self
            .docker
            .inspect_network(&self.network, None)
            .await
            .context("inspect network")?;
        self.gateway = net
            .ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().find_map(|c| c.gateway))
            .and_then(|g| g.parse().ok())
            .context("network has no IPv4 gateway")?;
        for i in 0..n {
            let cname = format!("{}-{i}", self.network);
            let body = ContainerCreateBody {
                image: Some(IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "3600".into()]),
                labels: Some(HashMap::from([("userid".to_string(), label.to_string())])),
                host_config: Some(HostConfig {
                    network_mode: Some(self.network.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let opts = CreateContainerOptionsBuilder::new().name(&cname).build();
            let created = self
                .docker
                .create_container(Some(opts), body)
                .await
                .context("create container")?;
            self.containers.push(Container {
                id: created.id.clone(),
                ip: Ipv4Addr::UNSPECIFIED,
                pid: 0,
            });
            self.docker
                .start_container(&created.id, None)
                .await
                .context("start container")?;
            let info = self
                .docker
                .inspect_container(&created.id, None)
                .await
                .context("inspect container")?;
            let ip = info
                .network_settings
                .and_then(|s| s.networks)
                .and_then(|mut n| n.remove(&self.network))
                .and_then(|e| e.ip_address)
                .and_then(|ip| ip.parse().ok())
                .context("container has no IP on the bench network")?;
            let pid = info
                .state
                .and_then(|s| s.pid)
                .filter(|p| *p > 0)
                .context("container has no PID")?;
            if let Some(c) = self.containers.last_mut() {
                c.ip = ip;
                c.pid = u32::try_from(pid)?;
            }
        }
        Ok(())
    }

    /// Removes the containers and the network (errors are ignored: best effort).
    pub async fn cleanup(&mut self) {
        let opts = RemoveContainerOptionsBuilder::new().force(true).build();
        for c in self.containers.drain(..) {
            let _ = self
                .docker
                .remove_container(&c.id, Some(opts.clone()))
                .await;
        }
        let _ = self.docker.remove_network(&self.network).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_well_formed() {
        let t = context_tar(b"abc");
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[257..262], b"ustar");
        let name_end = t[512 * 2..].iter().position(|&b| b == 0).unwrap_or(0);
        assert_eq!(&t[1024..1024 + name_end], b"busybox");
        let stored: u32 = u32::from_str_radix(std::str::from_utf8(&t[148..154]).expect("ascii"), 8)
            .expect("octal");
        let mut h = t[..512].to_vec();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|&b| b as u32).sum::<u32>());
    }
}
