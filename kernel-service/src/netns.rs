//! Per-container handles opened once inside the container's network namespace.
//!
//! Every connection needs two things from the caller's network namespace: a sock_diag lookup
//! of its 4-tuple and (for `cca.check`) the namespace's congestion control. Entering the
//! namespace takes a thread of its own (setns changes the calling thread for good), and two
//! short-lived threads per connection were most of the broker's latency. Both objects, however,
//! stay bound to the namespace they were created in, whichever thread uses them afterwards:
//!
//! - a `NETLINK_SOCK_DIAG` socket answers for the namespace it was opened in;
//! - `/proc/sys/net/ipv4/tcp_congestion_control` opened in a namespace reads that namespace's
//!   value on every `pread`.
//!
//! So they are opened once per container (on one short-lived thread) and then used directly
//! from the async workers, with no thread hop at all.
//!
//! Validity: the handles also keep the namespace file open, which keeps the namespace — and
//! therefore its inode number — alive and unique. Every use first `stat`s `/proc/PID/ns/net` of
//! the container's current init PID (from the Docker map, as before) and uses the handles only
//! if that is the very same namespace inode; otherwise they are reopened. A stale entry can
//! therefore never answer for another namespace, whatever happened to the PID in between. Docker
//! `die`/`destroy`/`stop` events and event-stream resyncs drop entries early (so a dead
//! container's namespace is not kept alive), and the number of entries is bounded (least
//! recently used goes first).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sys::ns;

/// Most containers whose handles are kept at once (each costs three file descriptors).
pub const MAX_ENTRIES: usize = 1024;

const CCA_FILE: &str = "/proc/sys/net/ipv4/tcp_congestion_control";

/// Identity of a namespace: nsfs device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NsId {
    dev: u64,
    ino: u64,
}

/// The current network namespace of process `pid` (follows the magic link, like setns would).
fn current_ns(pid: u32) -> io::Result<NsId> {
    let m = std::fs::metadata(ns::net_path(pid))?;
    Ok(NsId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// Handles bound to one network namespace.
#[derive(Debug)]
pub struct NetnsHandles {
    /// Holds the namespace alive, so `id` cannot be reused by another namespace meanwhile.
    _ns: File,
    id: NsId,
    /// Serialised: one request and its reply at a time on the shared socket.
    diag: Mutex<OwnedFd>,
    /// `None` if the file could not be opened there (the namespace has no such sysctl).
    cca: Option<File>,
}

impl NetnsHandles {
    /// Opens the handles inside the network namespace of `pid` (blocking: one short thread).
    pub fn open(pid: u32) -> io::Result<Self> {
        let ns = ns::open_net(pid)?;
        let m = ns.metadata()?;
        let id = NsId {
            dev: m.dev(),
            ino: m.ino(),
        };
        let (diag, cca) = ns::run_in(&ns, || -> io::Result<(OwnedFd, Option<File>)> {
            let diag = crate::sockdiag::open_socket()?;
            Ok((diag, File::open(CCA_FILE).ok()))
        })??;
        Ok(NetnsHandles {
            _ns: ns,
            id,
            diag: Mutex::new(diag),
            cca,
        })
    }

    /// Whether the live connection `local` → `remote` exists in this namespace (see
    /// [`crate::sockdiag::is_live_client`]); never blocks (`WouldBlock` when the kernel's reply
    /// is not there at once).
    pub fn live_connection(
        &self,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    ) -> io::Result<bool> {
        let fd = self
            .diag
            .lock()
            .map_err(|_| io::Error::other("sock_diag lock poisoned"))?;
        crate::sockdiag::live_connection_on(&fd, local, remote)
    }

    /// The counters of the live socket `local` → `remote` in this namespace (`None`: no such
    /// live socket); never blocks. See [`crate::conncheck`].
    pub fn peer_counters(
        &self,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    ) -> io::Result<Option<crate::tcp_counters::TcpCounters>> {
        let fd = self
            .diag
            .lock()
            .map_err(|_| io::Error::other("sock_diag lock poisoned"))?;
        crate::sockdiag::peer_counters_on(&fd, local, remote)
    }

    /// A new handle on the namespace itself (to enter it on a thread of its own).
    pub fn ns_file(&self) -> io::Result<File> {
        self._ns.try_clone()
    }

    /// The namespace's congestion control, read now.
    pub fn read_cca(&self) -> io::Result<String> {
        let f = self
            .cca
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, CCA_FILE))?;
        let mut buf = [0u8; 256];
        let n = f.read_at(&mut buf, 0)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    }
}

/// Shared handles as carried by a resolved caller; equal when they are the same handles.
#[derive(Debug, Clone)]
pub struct NetnsRef(pub Arc<NetnsHandles>);

impl PartialEq for NetnsRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for NetnsRef {}

struct Slot {
    pid: u32,
    handles: Arc<NetnsHandles>,
    used: Instant,
}

/// Container id → handles of its network namespace; see the module docs for validity.
#[derive(Default)]
pub struct NetnsCache {
    map: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for NetnsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.map.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("NetnsCache").field("entries", &n).finish()
    }
}

impl NetnsCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles for `container_id` if they are for the namespace `pid` is in right now.
    /// Cheap (one `stat`); call from async code freely.
    pub fn cached(&self, container_id: &str, pid: u32) -> Option<Arc<NetnsHandles>> {
        let now = current_ns(pid).ok();
        let mut map = self.map.lock().ok()?;
        let slot = map.get_mut(container_id)?;
        // The process is gone, or is not the one (or not in the namespace) the handles were
        // opened for: drop them, so a dead container's namespace is not kept alive either.
        if slot.pid != pid || Some(slot.handles.id) != now {
            map.remove(container_id);
            return None;
        }
        slot.used = Instant::now();
        Some(slot.handles.clone())
    }

    /// Opens fresh handles for `pid` and keeps them for `container_id` (blocking).
    pub fn open(&self, container_id: &str, pid: u32) -> io::Result<Arc<NetnsHandles>> {
        let handles = Arc::new(NetnsHandles::open(pid)?);
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES && !map.contains_key(container_id) {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, s)| s.used)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
            map.insert(
                container_id.to_string(),
                Slot {
                    pid,
                    handles: handles.clone(),
                    used: Instant::now(),
                },
            );
        }
        Ok(handles)
    }

    /// Cached handles, or freshly opened ones on a blocking thread.
    pub async fn get(
        self: &Arc<Self>,
        container_id: &str,
        pid: u32,
    ) -> io::Result<Arc<NetnsHandles>> {
        if let Some(h) = self.cached(container_id, pid) {
            return Ok(h);
        }
        let (me, id) = (Arc::clone(self), container_id.to_string());
        tokio::task::spawn_blocking(move || me.open(&id, pid))
            .await
            .map_err(io::Error::other)?
    }

    /// Drops the handles of a container (it stopped, or its state is unknown).
    pub fn forget(&self, container_id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(container_id);
        }
    }

    /// Drops everything (the Docker event stream was lost).
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }

    /// Namespaces held now.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when no namespace is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_answer_for_their_namespace_and_are_revalidated() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        let (cl, sl) = (c.local_addr().unwrap(), l.local_addr().unwrap());
        let cache = NetnsCache::new();
        let pid = std::process::id();
        assert!(cache.cached("self", pid).is_none());
        let h = cache.open("self", pid).unwrap();
        assert!(h.live_connection(cl, sl).unwrap());
        assert!(!h
            .live_connection(sl, "127.0.0.1:1".parse().unwrap())
            .unwrap());
        assert_eq!(
            h.read_cca().unwrap(),
            std::fs::read_to_string(CCA_FILE).unwrap().trim()
        );
        assert!(cache.cached("self", pid).is_some());
        // Recorded for another PID (a restarted container): never reused.
        assert!(cache.cached("self", pid + 1_000_000).is_none());
        assert!(
            cache.cached("self", pid).is_none(),
            "mismatch drops the entry"
        );
        cache.open("self", pid).unwrap();
        cache.forget("self");
        assert!(cache.is_empty());
    }

    #[test]
    fn a_different_namespace_behind_the_same_pid_is_not_reused() {
        if !crate::sys::is_root() {
            eprintln!("skipped: needs root (unshare CLONE_NEWNET)");
            return;
        }
        let cache = NetnsCache::new();
        // A thread that moves to a new netns after its handles were opened: same "pid"
        // (its tid), different namespace.
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let tid = crate::sys::gettid();
            tx.send(tid).unwrap();
            go_rx.recv().unwrap();
            ns::unshare_net().unwrap();
            done_tx.send(()).unwrap();
            let _ = go_rx.recv();
        });
        let tid = rx.recv().unwrap();
        cache.open("c", tid).unwrap();
        assert!(cache.cached("c", tid).is_some());
        go_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        assert!(cache.cached("c", tid).is_none());
        drop(go_tx);
        t.join().unwrap();
    }
}
