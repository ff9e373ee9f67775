//! Who is calling: peer IP → container → `userid` label, kept current from Docker events.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{ContainerInspectResponse, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures::StreamExt;
use thiserror::Error;

use crate::netns::{NetnsCache, NetnsRef};

/// The container behind a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub container_id: String,
    /// From the `userid` label only; `None` when unlabeled.
    pub userid: Option<String>,
    /// Host PID of the container's init (for its network namespace).
    pub pid: u32,
    /// Handles in the container's network namespace, checked to be the namespace `pid` is in
    /// at resolve time (`None`: commands enter the namespace by `pid` themselves).
    pub netns: Option<NetnsRef>,
}

/// Why a peer could not be resolved; every variant means deny.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("no running container owns {0}")]
    Unknown(IpAddr),
    #[error("connection not found in the container's network namespace")]
    SocketMismatch,
    #[error("docker: {0}")]
    Docker(String),
}

/// Resolves a connection to its container.
#[async_trait]
pub trait IdentitySource: Send + Sync {
    /// `peer` is the client's address, `local` ours, as seen on the accepted socket.
    async fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Result<Caller, IdentityError>;
    /// Changes whenever any container state changes (invalidates cached grants).
    fn generation(&self) -> u64;
}

/// One map entry: keyed by IP, owned by a container id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub container_id: String,
    pub userid: Option<String>,
    pub pid: u32,
}

/// IP → container map where only the owning id can remove an entry.
#[derive(Debug, Default)]
pub struct ContainerMap {
    by_ip: HashMap<IpAddr, Entry>,
}

impl ContainerMap {
    /// Replaces everything known about `entry.container_id` with the given addresses.
    pub fn upsert(&mut self, ips: &[IpAddr], entry: Entry) {
        self.remove(&entry.container_id);
        for ip in ips {
            self.by_ip.insert(*ip, entry.clone());
        }
    }
    /// Drops the entries of `container_id` only; an IP since taken by another container stays.
    pub fn remove(&mut self, container_id: &str) {
        self.by_ip.retain(|_, e| e.container_id != container_id);
    }
    pub fn get(&self, ip: &IpAddr) -> Option<&Entry> {
        self.by_ip.get(ip)
    }
    pub fn clear(&mut self) {
        self.by_ip.clear();
    }
}

/// The Docker-backed identity source.
pub struct DockerIdentity {
    docker: Docker,
    network: String,
    map: RwLock<ContainerMap>,
    generation: AtomicU64,
    netns: Arc<NetnsCache>,
}

fn docker_err(e: bollard::errors::Error) -> IdentityError {
    IdentityError::Docker(e.to_string())
}

impl DockerIdentity {
    /// Connects to the local engine, loads the map and starts following events.
    ///
    /// `netns` keeps per-container namespace handles; entries of containers that stop are
    /// dropped here as the events arrive.
    pub async fn start(
        network: String,
        netns: Arc<NetnsCache>,
    ) -> Result<Arc<Self>, IdentityError> {
        let docker = Docker::connect_with_local_defaults().map_err(docker_err)?;
        let me = Arc::new(DockerIdentity {
            docker,
            network,
            map: RwLock::new(ContainerMap::default()),
            generation: AtomicU64::new(0),
            netns,
        });
        me.resync().await?;
        let follower = Arc::clone(&me);
        tokio::spawn(async move { follower.follow_events().await });
        Ok(me)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Rebuilds the whole map from the container list of the network.
    async fn resync(&self) -> Result<(), IdentityError> {
        let ids = self.network_container_ids().await?;
        let mut fresh = ContainerMap::default();
        for id in ids {
            if let Ok(info) = self.docker.inspect_container(&id, None).await {
                if let Some((ips, e)) = self.entry_from(&info) {
                    fresh.upsert(&ips, e);
                }
            }
        }
        if let Ok(mut m) = self.map.write() {
            *m = fresh;
        }
        self.bump();
        Ok(())
    }

    async fn network_container_ids(&self) -> Result<Vec<String>, IdentityError> {
        let filters = HashMap::from([("network".to_string(), vec![self.network.clone()])]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(docker_err)?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// The map entry for a running container attached to our network, if any.
    fn entry_from(&self, info: &ContainerInspectResponse) -> Option<(Vec<IpAddr>, Entry)> {
        let id = info.id.clone()?;
        let state = info.state.as_ref()?;
        if state.running != Some(true) {
            return None;
        }
        let pid = u32::try_from(state.pid?).ok().filter(|p| *p > 0)?;
        let ep = info
            .network_settings
            .as_ref()?
            .networks
            .as_ref()?
            .get(&self.network)?;
        let mut ips = Vec::new();
        for a in [&ep.ip_address, &ep.global_ipv6_address]
            .into_iter()
            .flatten()
        {
            if let Ok(ip) = a.parse::<IpAddr>() {
                ips.push(ip);
            }
        }
        let userid = info
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get("userid"))
            .cloned();
        Some((
            ips,
            Entry {
                container_id: id,
                userid,
                pid,
            },
        ))
    }

    /// Re-reads one container and updates (or drops) its entries.
    async fn refresh(&self, id: &str) {
        let entry = match self.docker.inspect_container(id, None).await {
            Ok(info) => self.entry_from(&info),
            Err(_) => None,
        };
        if let Ok(mut m) = self.map.write() {
            match entry {
                Some((ips, e)) => m.upsert(&ips, e),
                None => {
                    m.remove(id);
                    self.netns.forget(id);
                }
            }
        }
        self.bump();
    }

    fn event_container(ev: &EventMessage) -> Option<String> {
        let actor = ev.actor.as_ref()?;
        match ev.typ {
            Some(EventMessageTypeEnum::CONTAINER) => actor.id.clone(),
            Some(EventMessageTypeEnum::NETWORK) => {
                actor.attributes.as_ref()?.get("container").cloned()
            }
            _ => None,
        }
    }

    async fn follow_events(self: Arc<Self>) {
        loop {
            let filters = HashMap::from([
                (
                    "type".to_string(),
                    vec!["container".into(), "network".into()],
                ),
                (
                    "event".to_string(),
                    [
                        "start",
                        "die",
                        "destroy",
                        "stop",
                        "kill",
                        "pause",
                        "unpause",
                        "connect",
                        "disconnect",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ),
            ]);
            let mut events = self.docker.events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }));
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) => {
                        if let Some(id) = Self::event_container(&ev) {
                            self.refresh(&id).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "docker event stream failed");
                        break;
                    }
                }
            }
            // Events may have been missed while disconnected: forget everything, then reload.
            if let Ok(mut m) = self.map.write() {
                m.clear();
            }
            self.netns.clear();
            self.bump();
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = self.resync().await {
                tracing::warn!(error = %e, "docker resync failed");
            }
        }
    }

    fn lookup(&self, ip: &IpAddr) -> Option<Entry> {
        self.map.read().ok().and_then(|m| m.get(ip).cloned())
    }
}

#[async_trait]
impl IdentitySource for DockerIdentity {
    async fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Result<Caller, IdentityError> {
        let ip = peer.ip().to_canonical();
        let entry = match self.lookup(&ip) {
            Some(e) => e,
            None => {
                // A container may have started before its event arrived: one list, one inspect.
                let ids = self.network_container_ids().await?;
                for id in ids {
                    let known = self
                        .map
                        .read()
                        .map(|m| m.by_ip.values().any(|e| e.container_id == id))
                        .unwrap_or(true);
                    if !known {
                        self.refresh(&id).await;
                    }
                }
                self.lookup(&ip).ok_or(IdentityError::Unknown(ip))?
            }
        };
        let pid = entry.pid;
        // Fast path: the container's own sock_diag socket, opened once (see `crate::netns`),
        // queried from this worker without a thread hop.
        let handles = match self.netns.get(&entry.container_id, pid).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::debug!(error = %e, "netns handles unavailable");
                None
            }
        };
        // Seen from inside the container the 4-tuple is reversed: its local end is our peer.
        let fast = handles.as_ref().map(|h| h.live_connection(peer, local));
        let ok = match fast {
            Some(Ok(found)) => found,
            // No handles, or no immediate answer: a one-off lookup from inside the namespace
            // (and the /proc table walk only if netlink is unusable there).
            other => {
                if let Some(Err(e)) = other {
                    tracing::debug!(error = %e, "cached sock_diag lookup failed");
                }
                tokio::task::spawn_blocking(move || {
                    crate::sockdiag::live_connection_in(pid, peer, local)
                })
                .await
                .unwrap_or(false)
            }
        };
        if !ok {
            return Err(IdentityError::SocketMismatch);
        }
        Ok(Caller {
            container_id: entry.container_id,
            userid: entry.userid,
            pid,
            netns: handles.map(NetnsRef),
        })
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, user: &str) -> Entry {
        Entry {
            container_id: id.into(),
            userid: Some(user.into()),
            pid: 1,
        }
    }

    #[test]
    fn ip_reuse_never_returns_the_old_owner() {
        let ip: IpAddr = "172.30.0.5".parse().unwrap();
        let mut m = ContainerMap::default();
        m.upsert(&[ip], e("old", "alice"));
        // New container takes the IP before the old one's destroy event is processed.
        m.upsert(&[ip], e("new", "bob"));
        m.remove("old");
        assert_eq!(m.get(&ip).unwrap().userid.as_deref(), Some("bob"));
        m.remove("new");
        assert!(m.get(&ip).is_none());
    }
}
