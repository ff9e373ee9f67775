//! TLS handshakes of incoming connections, bounded so that connections which never speak TLS
//! cannot lock others out.
//!
//! Every accepted TCP connection gets a handshake slot at once (the accept loop never waits).
//! At most `max_per_source` slots belong to one source (an IPv4 address, an IPv6 /64) and at
//! most `max_pending` in all; a new connection beyond either limit takes the slot of the oldest
//! pending handshake of its source, or of anyone, whose connection is closed. An idle flood
//! therefore only ever displaces idle connections: a well-behaved client finishes its handshake
//! in a few round trips, long before it becomes the oldest. Each handshake also has `timeout`.
//! Established connections are not counted here; they belong to the gRPC server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// How often, at most, a warning says that handshakes are being displaced.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Limits of the handshake phase.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// Time a client has to complete its TLS handshake.
    pub timeout: Duration,
    /// Handshakes in progress at once.
    pub max_pending: usize,
    /// Handshakes in progress at once from one source.
    pub max_per_source: usize,
}

/// The unit a per-source limit applies to: one IPv4 address, or one IPv6 /64 (a single
/// subscriber usually holds a whole /64).
fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

struct Pending {
    source: IpAddr,
    /// Dropping it tells the handshake task to give up its connection.
    _evict: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Ordered by id, so the first entry is the oldest.
    pending: BTreeMap<u64, Pending>,
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
    evicted_since_warn: u64,
    last_warn: Option<Instant>,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        if let Some(ids) = self.by_source.get_mut(&pending.source) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_source.remove(&pending.source);
            }
        }
        Some(pending)
    }
}

/// Hands out handshake slots within [`HandshakeLimits`].
pub struct Limiter {
    limits: HandshakeLimits,
    state: Mutex<State>,
}

/// A held slot; released when dropped.
pub struct Slot {
    limiter: Arc<Limiter>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut state) = self.limiter.state.lock() {
            state.remove(self.id);
        }
    }
}

impl Limiter {
    pub fn new(limits: HandshakeLimits) -> Arc<Limiter> {
        Arc::new(Limiter {
            limits: HandshakeLimits {
                max_pending: limits.max_pending.max(1),
                max_per_source: limits.max_per_source.max(1),
                ..limits
            },
            state: Mutex::new(State::default()),
        })
    }

    /// A slot for a connection from `peer`, displacing the oldest pending handshake of the
    /// same source (or of anyone) when a limit is reached. The receiver completes when this
    /// slot is itself displaced.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> (Slot, oneshot::Receiver<()>) {
        let source = source_of(peer);
        let (tx, rx) = oneshot::channel();
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut evicted = 0;
        let oldest_of_source = state
            .by_source
            .get(&source)
            .filter(|ids| ids.len() >= self.limits.max_per_source)
            .and_then(|ids| ids.first().copied());
        if let Some(id) = oldest_of_source {
            state.remove(id);
            evicted += 1;
        }
        while state.pending.len() >= self.limits.max_pending {
            let Some(id) = state.pending.keys().next().copied() else {
                break;
            };
            state.remove(id);
            evicted += 1;
        }
        if evicted > 0 {
            state.evicted_since_warn += evicted;
            let due = state
                .last_warn
                .is_none_or(|at| at.elapsed() >= WARN_INTERVAL);
            if due {
                tracing::warn!(
                    displaced = state.evicted_since_warn,
                    pending = state.pending.len(),
                    source = %source,
                    "TLS handshake limit reached: closing the oldest pending handshakes"
                );
                state.evicted_since_warn = 0;
                state.last_warn = Some(Instant::now());
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        state.pending.insert(id, Pending { source, _evict: tx });
        state.by_source.entry(source).or_default().insert(id);
        drop(state);
        (
            Slot {
                limiter: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Handshakes in progress (for tests and diagnostics).
    pub fn pending(&self) -> usize {
        self.state.lock().map(|s| s.pending.len()).unwrap_or(0)
    }
}

type TlsConn = Result<TlsStream<TcpStream>, std::io::Error>;

/// Accepts TCP connections and hands the completed TLS sessions to the gRPC server.
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: HandshakeLimits,
) -> (ReceiverStream<TlsConn>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<TlsConn>(64);
    let limiter = Limiter::new(limits);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let _ = tcp.set_nodelay(true);
            let (slot, evicted) = limiter.admit(peer.ip());
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(limits.timeout, acceptor.accept(tcp));
                let outcome = tokio::select! {
                    r = handshake => Some(r),
                    _ = evicted => None,
                };
                drop(slot);
                match outcome {
                    Some(Ok(Ok(tls))) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Some(Ok(Err(e))) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Some(Err(_)) => tracing::debug!(%peer, "TLS handshake timed out"),
                    None => tracing::debug!(%peer, "TLS handshake displaced by newer connections"),
                }
            });
        }
    });
    (ReceiverStream::new(rx), task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_pending: usize, max_per_source: usize) -> Arc<Limiter> {
        Limiter::new(HandshakeLimits {
            timeout: Duration::from_secs(1),
            max_pending,
            max_per_source,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn sources_are_addresses_and_v6_prefixes() {
        assert_eq!(source_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(source_of(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn a_source_over_its_limit_displaces_its_own_oldest() {
        let l = limiter(100, 2);
        let (_a1, mut ra1) = l.admit(ip("10.0.0.1"));
        let (_a2, mut ra2) = l.admit(ip("10.0.0.1"));
        let (_b1, mut rb1) = l.admit(ip("10.0.0.2"));
        let (_a3, mut ra3) = l.admit(ip("10.0.0.1"));
        assert_eq!(ra1.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        assert_eq!(ra2.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(ra3.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(rb1.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(l.pending(), 3);
    }

    #[test]
    fn over_the_global_limit_the_oldest_of_anyone_goes() {
        let l = limiter(2, 10);
        let (_a, mut ra) = l.admit(ip("10.0.0.1"));
        let (_b, mut rb) = l.admit(ip("10.0.0.2"));
        let (_c, mut rc) = l.admit(ip("10.0.0.3"));
        assert_eq!(ra.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        assert_eq!(rb.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(rc.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(l.pending(), 2);
    }

    #[test]
    fn finished_handshakes_free_their_slot() {
        let l = limiter(1, 1);
        let (a, _ra) = l.admit(ip("10.0.0.1"));
        drop(a);
        assert_eq!(l.pending(), 0);
        let (_b, mut rb) = l.admit(ip("10.0.0.1"));
        assert_eq!(rb.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        // A displaced slot's own release later is harmless.
        let (_c, _rc) = l.admit(ip("10.0.0.2"));
        assert_eq!(rb.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        assert_eq!(l.pending(), 1);
    }
}
