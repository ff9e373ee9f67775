//! Who is calling: peer IP → container → `userid` label, kept current from Docker events, and
//! (when the service can enter the container's network namespace) checked against that
//! namespace's own sockets.

mod docker;
pub mod process;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use async_trait::async_trait;
use thiserror::Error;

use crate::caps::CapSet;
pub use crate::conncheck::ConnCheck;
use crate::netns::NetnsRef;

pub use docker::{DockerIdentity, IdentityOptions};

/// How a connection is tied to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    /// Source IP → container, then the connection's 4-tuple must be a live socket inside that
    /// container's network namespace (needs the host's PID namespace and CAP_SYS_ADMIN).
    Netns,
    /// Source IP → container only, as the original did: a neighbour that can forge its source
    /// address can act as any container on the network.
    SourceIp,
    /// Identity cannot be verified here and the operator chose to fail closed: deny everyone.
    DenyAll,
}

/// The container behind a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Docker id of the container.
    pub container_id: String,
    /// From the `userid` label only; `None` when unlabeled.
    pub userid: Option<String>,
    /// Host PID of the container's init (for its network namespace).
    pub pid: u32,
    /// Handles in the container's network namespace, checked to be the namespace `pid` is in
    /// at resolve time (`None`: commands enter the namespace by `pid` themselves).
    pub netns: Option<NetnsRef>,
    /// Capabilities the container may hold (from Docker's view of it).
    pub caps: CapSet,
    /// What the accepted connection must be checked against before a command runs (see
    /// [`crate::conncheck`]).
    pub conn: ConnCheck,
}

/// Why a peer could not be resolved; every variant means deny.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// No running container on the network has this address.
    #[error("no running container owns {0}")]
    Unknown(IpAddr),
    /// The address is outside the network's subnets.
    #[error("{0} is not on the network's subnets")]
    OffNetwork(IpAddr),
    /// Too many lookups for unknown addresses; denied without asking Docker.
    #[error("lookup rate for unknown addresses exceeded")]
    RateLimited,
    /// The connection is not a live socket in the container's network namespace.
    #[error("connection not found in the container's network namespace")]
    SocketMismatch,
    /// A Docker API request failed.
    #[error("docker: {0}")]
    Docker(String),
    /// Identity cannot be verified and the operator chose to deny.
    #[error("callers cannot be verified here (--identity-fallback=deny)")]
    Unverifiable,
    /// The unix-socket peer process is not in a container.
    #[error("the connecting process is not in a container")]
    NotAContainer,
    /// The unix-socket peer's container is not on the network.
    #[error("the connecting process's container is not on the network")]
    UnknownContainer,
    /// The unix-socket peer process exited before it was identified.
    #[error("the connecting process is gone")]
    ProcessGone,
}

impl IdentityError {
    /// Short reason for the audit line.
    pub fn reason(&self) -> &'static str {
        match self {
            IdentityError::Unknown(_) => "unknown peer",
            IdentityError::OffNetwork(_) => "peer not on the network",
            IdentityError::RateLimited => "lookup rate limited",
            IdentityError::SocketMismatch => "connection not in the container's namespace",
            IdentityError::Docker(_) => "docker error",
            IdentityError::Unverifiable => "identity unverifiable (--identity-fallback=deny)",
            IdentityError::NotAContainer => "process not in a container",
            IdentityError::UnknownContainer => "container not on the network",
            IdentityError::ProcessGone => "connecting process gone",
        }
    }
}

/// Resolves a connection to its container.
#[async_trait]
pub trait IdentitySource: Send + Sync {
    /// `peer` is the client's address, `local` ours, as seen on the accepted socket.
    async fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Result<Caller, IdentityError>;
    /// A unix-socket caller: `pid` from `SO_PEERCRED`, `pidfd` from `SO_PEERPIDFD` of the same
    /// connection (re-checked after the lookup: the process still alive means `pid` was not
    /// reused meanwhile). Sources that cannot tell deny.
    async fn resolve_process(&self, pid: u32, pidfd: &OwnedFd) -> Result<Caller, IdentityError> {
        let _ = (pid, pidfd);
        Err(IdentityError::Unverifiable)
    }
    /// Changes whenever any container state changes (invalidates cached grants).
    fn generation(&self) -> u64;
}

/// One map entry: keyed by IP, owned by a container id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Docker id of the container.
    pub container_id: String,
    /// The container's `userid` label; `None` when unlabeled.
    pub userid: Option<String>,
    /// Host PID of the container's init.
    pub pid: u32,
    /// Capabilities the container may hold.
    pub caps: CapSet,
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
    /// The entry for `ip`.
    pub fn get(&self, ip: &IpAddr) -> Option<&Entry> {
        self.by_ip.get(ip)
    }
    /// The entry of a container, by its full id.
    pub fn by_container(&self, container_id: &str) -> Option<&Entry> {
        self.by_ip.values().find(|e| e.container_id == container_id)
    }
    /// True when `container_id` has an entry.
    pub fn contains_container(&self, container_id: &str) -> bool {
        self.by_ip.values().any(|e| e.container_id == container_id)
    }
    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.by_ip.clear();
    }
    /// Every container in the map, once.
    pub fn entries(&self) -> Vec<&Entry> {
        let mut seen = std::collections::HashSet::new();
        self.by_ip
            .values()
            .filter(|e| seen.insert(e.container_id.as_str()))
            .collect()
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
            caps: CapSet::docker_default(),
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
        assert!(m.contains_container("new") && !m.contains_container("old"));
        assert_eq!(m.entries().len(), 1);
        m.remove("new");
        assert!(m.get(&ip).is_none());
    }
}
