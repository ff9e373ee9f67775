//! The Docker-backed identity source: an IP → container map kept current from Docker events,
//! the network's subnets, rate-limited lookups for unknown addresses and, in
//! [`IdentityMode::Netns`], the 4-tuple check inside the container's network namespace.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::models::{ContainerInspectResponse, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures::StreamExt;

use super::{Caller, ConnCheck, ContainerMap, Entry, IdentityError, IdentityMode, IdentitySource};
use crate::caps::CapSet;
use crate::logsafe::untrusted;
use crate::metrics::Metrics;
use crate::misses::{MissLimiter, Subnet};
use crate::netns::{NetnsCache, NetnsRef};

/// How the Docker identity source works.
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// Docker network of the experiment containers.
    pub network: String,
    /// How a peer is tied to a container.
    pub mode: IdentityMode,
    /// Docker lookups per second for unknown addresses, per source and in total.
    pub lookups_per_source: f64,
    /// Docker lookups per second for unknown addresses, over all sources.
    pub lookups_total: f64,
}

/// The Docker-backed identity source.
pub struct DockerIdentity {
    docker: Docker,
    opts: IdentityOptions,
    map: RwLock<ContainerMap>,
    subnets: RwLock<Vec<Subnet>>,
    misses: MissLimiter,
    generation: AtomicU64,
    netns: Arc<NetnsCache>,
    metrics: Arc<Metrics>,
}

fn docker_err(e: bollard::errors::Error) -> IdentityError {
    IdentityError::Docker(e.to_string())
}

/// Capabilities that let a container forge its identity on the bridge (see [`crate::caps`]).
fn forging_caps() -> CapSet {
    ["NET_ADMIN", "SYS_ADMIN"]
        .iter()
        .filter_map(|n| CapSet::bit(n))
        .fold(CapSet::EMPTY, CapSet::union)
}

impl DockerIdentity {
    /// Connects to the local engine, loads the map and starts following events.
    ///
    /// `netns` keeps per-container namespace handles; entries of containers that stop are
    /// dropped here as the events arrive.
    pub async fn start(
        opts: IdentityOptions,
        netns: Arc<NetnsCache>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, IdentityError> {
        let docker = Docker::connect_with_local_defaults().map_err(docker_err)?;
        let me = Arc::new(DockerIdentity {
            docker,
            misses: MissLimiter::new(opts.lookups_per_source, opts.lookups_total),
            opts,
            map: RwLock::new(ContainerMap::default()),
            subnets: RwLock::new(Vec::new()),
            generation: AtomicU64::new(0),
            netns,
            metrics,
        });
        me.resync().await?;
        let follower = Arc::clone(&me);
        tokio::spawn(async move { follower.follow_events().await });
        Ok(me)
    }

    /// The network's subnets as last read (empty: the network does not exist (yet)).
    pub fn subnets(&self) -> Vec<Subnet> {
        self.subnets.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Containers on the network now, with what they may hold (for the start-up report).
    pub fn containers(&self) -> Vec<Entry> {
        self.map
            .read()
            .map(|m| m.entries().into_iter().cloned().collect())
            .unwrap_or_default()
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Re-reads the network's subnets (IPAM config); none when the network is missing.
    async fn refresh_subnets(&self) {
        let t0 = Instant::now();
        let network = self.docker.inspect_network(&self.opts.network, None).await;
        self.metrics.docker_lookup("inspect_network", t0);
        let subnets = match network {
            Ok(n) => n
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet?.parse::<Subnet>().ok())
                .collect(),
            Err(e) => {
                tracing::warn!(network = %self.opts.network, error = %e,
                    "docker network not found: every connection is denied until it exists");
                Vec::new()
            }
        };
        if let Ok(mut s) = self.subnets.write() {
            *s = subnets;
        }
    }

    /// Rebuilds the whole map from the container list of the network.
    async fn resync(&self) -> Result<(), IdentityError> {
        self.refresh_subnets().await;
        let ids = self.network_container_ids().await?;
        let mut fresh = ContainerMap::default();
        for id in ids {
            let t0 = Instant::now();
            let info = self.docker.inspect_container(&id, None).await;
            self.metrics.docker_lookup("inspect_container", t0);
            if let Ok(info) = info {
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
        let filters = HashMap::from([("network".to_string(), vec![self.opts.network.clone()])]);
        let t0 = Instant::now();
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await;
        self.metrics.docker_lookup("list_containers", t0);
        let list = list.map_err(docker_err)?;
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
            .get(&self.opts.network)?;
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
        let hc = info.host_config.as_ref();
        let caps = CapSet::of_container(
            hc.and_then(|h| h.privileged).unwrap_or(false),
            hc.and_then(|h| h.cap_add.as_deref()).unwrap_or_default(),
            hc.and_then(|h| h.cap_drop.as_deref()).unwrap_or_default(),
        );
        let forging = caps.intersect(forging_caps());
        if !forging.is_empty() {
            tracing::warn!(
                container = %untrusted(id.get(..12).unwrap_or(&id)),
                caps = %forging,
                "a container on the network holds capabilities that can forge another's \
                 network identity; callers holding them are refused by default (--refuse-caps)"
            );
        }
        Some((
            ips,
            Entry {
                container_id: id,
                userid,
                pid,
                caps,
            },
        ))
    }

    /// Re-reads one container and updates (or drops) its entries.
    async fn refresh(&self, id: &str) {
        let t0 = Instant::now();
        let info = self.docker.inspect_container(id, None).await;
        self.metrics.docker_lookup("inspect_container", t0);
        let entry = match info {
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

    /// The container an event is about, or `None` (after handling network-level events).
    async fn event_container(&self, ev: &EventMessage) -> Option<String> {
        let actor = ev.actor.as_ref()?;
        match ev.typ {
            Some(EventMessageTypeEnum::CONTAINER) => actor.id.clone(),
            Some(EventMessageTypeEnum::NETWORK) => {
                let attrs = actor.attributes.as_ref()?;
                if attrs.get("name") == Some(&self.opts.network) {
                    // Created, destroyed or (re)connected: its subnets may have changed.
                    self.refresh_subnets().await;
                }
                attrs.get("container").cloned()
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
                        "create",
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
                        if let Some(id) = self.event_container(&ev).await {
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

    /// An address the map does not know: ask Docker, unless it cannot be on the network or its
    /// source (or everyone) has asked too often.
    async fn lookup_miss(&self, ip: IpAddr) -> Result<Entry, IdentityError> {
        let on_network = self
            .subnets
            .read()
            .map(|s| s.iter().any(|n| n.contains(ip)))
            .unwrap_or(false);
        if !on_network {
            self.metrics.lookups_refused.inc();
            return Err(IdentityError::OffNetwork(ip));
        }
        if !self.misses.allow(ip) {
            self.metrics.lookups_refused.inc();
            return Err(IdentityError::RateLimited);
        }
        // A container may have started before its event arrived: one list, one inspect.
        self.metrics.unknown_peer_lookups.inc();
        let ids = self.network_container_ids().await?;
        for id in ids {
            let known = self
                .map
                .read()
                .map(|m| m.contains_container(&id))
                .unwrap_or(true);
            if !known {
                self.refresh(&id).await;
            }
        }
        self.lookup(&ip).ok_or(IdentityError::Unknown(ip))
    }

    /// Whether `peer` → `local` is a live socket inside the container's network namespace;
    /// returns the namespace handles to reuse for the command.
    async fn check_socket(
        &self,
        entry: &Entry,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<Option<NetnsRef>, IdentityError> {
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
        Ok(handles.map(NetnsRef))
    }
}

#[async_trait]
impl IdentitySource for DockerIdentity {
    async fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Result<Caller, IdentityError> {
        if self.opts.mode == IdentityMode::DenyAll {
            return Err(IdentityError::Unverifiable);
        }
        let ip = peer.ip().to_canonical();
        let entry = match self.lookup(&ip) {
            Some(e) => e,
            None => self.lookup_miss(ip).await?,
        };
        let (netns, conn) = match self.opts.mode {
            IdentityMode::Netns => {
                let netns = self.check_socket(&entry, peer, local).await?;
                // Seen from inside the container its socket is `peer` → `local`.
                let conn = match &netns {
                    Some(n) => ConnCheck::Counters {
                        netns: n.clone(),
                        client: peer,
                        server: local,
                    },
                    None => ConnCheck::Unavailable,
                };
                (netns, conn)
            }
            IdentityMode::SourceIp | IdentityMode::DenyAll => (None, ConnCheck::NotApplicable),
        };
        Ok(Caller {
            container_id: entry.container_id,
            userid: entry.userid,
            pid: entry.pid,
            netns,
            caps: entry.caps,
            conn,
        })
    }

    async fn resolve_process(&self, pid: u32, pidfd: &OwnedFd) -> Result<Caller, IdentityError> {
        // 0: the process is not visible in our PID namespace (no host PID namespace).
        if pid == 0 {
            return Err(IdentityError::NotAContainer);
        }
        let id = super::process::container_of(pid)
            .map_err(|_| IdentityError::ProcessGone)?
            .ok_or(IdentityError::NotAContainer)?;
        let entry = self
            .map
            .read()
            .ok()
            .and_then(|m| m.by_container(&id).cloned())
            .ok_or(IdentityError::UnknownContainer)?;
        // The cgroup was read by pid: it was the caller's only if the caller still lives now
        // (a pid is reused only after its process is gone).
        if !crate::sys::peercred::pidfd_alive(pidfd.as_fd()).unwrap_or(false) {
            return Err(IdentityError::ProcessGone);
        }
        // Commands act on the container's namespace through handles checked here.
        let netns = self
            .netns
            .get(&entry.container_id, entry.pid)
            .await
            .ok()
            .map(NetnsRef);
        Ok(Caller {
            container_id: entry.container_id,
            userid: entry.userid,
            pid: entry.pid,
            netns,
            caps: entry.caps,
            conn: ConnCheck::NotApplicable,
        })
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}
