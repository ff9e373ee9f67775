//! TLS handshakes of incoming connections, bounded so that connections which never speak TLS
//! cannot lock others out.
//!
//! Every accepted TCP connection gets a handshake slot at once (the accept loop never waits),
//! from a [`Limiter`]: at most `max_per_source` slots belong to one source (an IPv4 address,
//! an IPv6 /64) and at most `max_pending` in all; a new connection beyond either limit takes
//! the slot of the oldest pending handshake of its source, or of anyone, whose connection is
//! closed. An idle flood therefore only ever displaces idle connections: a well-behaved client
//! finishes its handshake in a few round trips, long before it becomes the oldest. Each
//! handshake also has `timeout`. Established connections are budgeted by [`crate::conns`].
//!
//! A connection from a trusted balancer (`--trusted-proxies`) first sends a PROXY protocol v2
//! header ([`crate::proxy`]); the client address it names is the source from then on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use leotest_metrics::limiter::Limiter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::proxy::{self, TrustedProxies};

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

/// A completed TLS session and the client it belongs to (the peer, or the address a
/// trusted balancer's PROXY header named).
pub type TlsConn = Result<(TlsStream<TcpStream>, SocketAddr), std::io::Error>;

/// Accepts TCP connections and hands the completed TLS sessions to the gRPC server.
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: HandshakeLimits,
    trusted: Arc<TrustedProxies>,
) -> (ReceiverStream<TlsConn>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<TlsConn>(64);
    let limiter = Limiter::new(limits.max_pending, limits.max_per_source, "TLS handshake");
    let task = tokio::spawn(async move {
        loop {
            let (mut tcp, peer) = match listener.accept().await {
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
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            // Admitted here, in accept order, so that the newest connection is the last to be
            // displaced. Only a trusted balancer's connections take their slot after their
            // header names the client (under the same time-out; the balancer sends it at once).
            let direct = if trusted.contains(peer.ip()) {
                None
            } else {
                // Never refused: pending handshakes are never busy.
                let Some(admitted) = limiter.admit(peer.ip()) else {
                    continue;
                };
                Some(admitted)
            };
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                let (client, (slot, evicted)) = match direct {
                    Some(admitted) => (peer, admitted),
                    None => {
                        let header = proxy::read_header(&mut tcp, peer);
                        let client = match tokio::time::timeout(limits.timeout, header).await {
                            Ok(Ok(client)) => client,
                            Ok(Err(e)) => {
                                tracing::warn!(%peer, error = %e, "refused a connection of a trusted balancer");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "PROXY header timed out");
                                return;
                            }
                        };
                        let Some(admitted) = limiter.admit(client.ip()) else {
                            return;
                        };
                        (client, admitted)
                    }
                };
                let handshake = tokio::time::timeout(limits.timeout, acceptor.accept(tcp));
                let outcome = tokio::select! {
                    r = handshake => Some(r),
                    _ = evicted => None,
                };
                drop(slot);
                match outcome {
                    Some(Ok(Ok(tls))) => {
                        let _ = tx.send(Ok((tls, client))).await;
                    }
                    // Also what a PROXY header from anyone but a trusted balancer gets: it is
                    // no TLS record, so the handshake fails and the connection is closed.
                    Some(Ok(Err(e))) => {
                        tracing::debug!(%client, error = %e, "TLS handshake failed")
                    }
                    Some(Err(_)) => tracing::debug!(%client, "TLS handshake timed out"),
                    None => {
                        tracing::debug!(%client, "TLS handshake displaced by newer connections")
                    }
                }
            });
        }
    });
    (ReceiverStream::new(rx), task)
}
