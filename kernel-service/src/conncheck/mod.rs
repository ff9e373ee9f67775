//! Is the connection we accepted the one the caller's socket holds? The connection counters
//! check (issue 23).
//!
//! The namespace check ([`crate::sockdiag`]) proves that a live socket with our connection's
//! 4-tuple exists in the caller's network namespace. An on-path neighbour (one that steals the
//! victim's MAC on the bridge and so sees the service's segments) can still reset the service's
//! side of a connection the victim keeps open and connect again from the same 4-tuple: the
//! victim's socket never saw the reset, is still ESTABLISHED, and the 4-tuple check finds it.
//!
//! Both ends of one TCP connection count the same traffic, in opposite directions. So after the
//! command line has been read (and again every few seconds while a `job.watch` streams), the
//! service reads its own socket's `tcp_info` (`TCP_INFO`), then the caller's socket's
//! (sock_diag `INET_DIAG_INFO`, through the namespace handle checked at decision time), then its
//! own again, and requires (see [`check`]):
//!
//! - the caller received no more than we sent, and at least what it acknowledged to us;
//! - the caller sent at least what we received in order, and we received at least what it had
//!   acknowledged by us;
//! - segment counts agree within a few segments (handshake accounting, in-flight ACKs).
//!
//! Before our first reply byte, "received no more than we sent" means the caller's socket has
//! received nothing at all: only a fresh client socket passes. A socket that took part in an
//! earlier exchange (a `job.watch` it was reading) has received bytes this connection never
//! sent, and one that sent a command this connection never received fails the other direction.
//! What remains is a neighbour that races a brand-new, silent connection and mirrors its bytes
//! exactly; see docs/security.md for what closes that (unix socket, anti-spoofing, no NET_RAW).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use crate::netns::NetnsRef;
use crate::tcp_counters::TcpCounters;

/// How often a long connection (`job.watch`) is checked again while it streams.
pub const RECHECK_EVERY: Duration = Duration::from_secs(2);
/// Segments by which the two ends' counts may differ (the passive side's handshake accounting,
/// ACKs in flight between the three reads).
pub const SEGMENT_SLACK: u32 = 4;

/// Why two sockets are not the two ends of one connection (every variant means deny).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The caller's socket got more than this connection sent.
    #[error("the caller's socket received bytes this connection never sent")]
    ReceivedUnsent,
    /// This connection delivered more than the caller's socket got.
    #[error("the caller's socket lacks bytes this connection delivered")]
    MissingDelivered,
    /// This connection got more than the caller's socket sent.
    #[error("this connection received bytes the caller's socket never sent")]
    ReceivedUnsentByCaller,
    /// The caller's socket had more acknowledged than this connection received.
    #[error("the caller's socket had bytes acknowledged that this connection never received")]
    AckedUnreceived,
    /// Segment counts differ by more than `SEGMENT_SLACK`.
    #[error("segment counts of the two ends disagree")]
    Segments,
}

/// Whether `theirs` (the caller's socket, read between `ours_before` and `ours_after`, both of
/// our accepted socket) can be the other end of our connection. Counters only grow, so each
/// bound uses the read that makes it hold for a genuine pair whatever moved in between.
pub fn check(
    ours_before: &TcpCounters,
    theirs: &TcpCounters,
    ours_after: &TcpCounters,
) -> Result<(), Mismatch> {
    if theirs.bytes_received > ours_after.bytes_sent {
        return Err(Mismatch::ReceivedUnsent);
    }
    if theirs.bytes_received < ours_before.bytes_acked {
        return Err(Mismatch::MissingDelivered);
    }
    // The caller's FIN counts in our `bytes_received` (it advances the sequence) but not in its
    // `bytes_sent` (payload only): a client that half-closed after its command is one ahead.
    if theirs.bytes_sent.saturating_add(1) < ours_before.bytes_received {
        return Err(Mismatch::ReceivedUnsentByCaller);
    }
    // The caller's own SYN counts in its `bytes_acked` (our SYN-ACK advanced its `snd_una`).
    if theirs.bytes_acked > ours_after.bytes_received.saturating_add(1) {
        return Err(Mismatch::AckedUnreceived);
    }
    if ours_before.segs_in > theirs.segs_out.saturating_add(SEGMENT_SLACK)
        || theirs.segs_in > ours_after.segs_out.saturating_add(SEGMENT_SLACK)
    {
        return Err(Mismatch::Segments);
    }
    Ok(())
}

/// Our own end's counters (`TCP_INFO`).
pub fn own_counters(fd: impl AsFd) -> io::Result<TcpCounters> {
    let (buf, len) = crate::sys::tcpinfo::tcp_info(fd.as_fd())?;
    TcpCounters::parse(&buf[..len]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "tcp_info without byte counters (Linux < 5.5)",
        )
    })
}

/// What a connection must be checked against: the caller's socket, found by its 4-tuple in its
/// own network namespace through the handles checked at decision time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnCheck {
    /// Identity does not rest on the connection (source-IP mode, unix socket, in-memory tests).
    NotApplicable,
    /// It should be checked, but the caller's namespace handles could not be opened: deny.
    Unavailable,
    /// The caller's socket `client` → `server`, as seen inside its namespace.
    Counters {
        /// The caller's network namespace.
        netns: NetnsRef,
        /// The caller's end of the connection.
        client: SocketAddr,
        /// Our end of the connection, as the caller addressed it.
        server: SocketAddr,
    },
}

/// Why a connection failed its check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The counters do not match: not the same connection.
    #[error("{0}")]
    Mismatch(#[from] Mismatch),
    /// The caller's socket no longer exists.
    #[error("the caller's socket is gone")]
    Gone,
    /// The counters of either end could not be read.
    #[error("connection counters unavailable: {0}")]
    Unavailable(String),
}

impl CheckError {
    /// Short reason for the audit line.
    pub fn reason(&self) -> &'static str {
        match self {
            CheckError::Mismatch(_) => "connection counters do not match the caller's socket",
            CheckError::Gone => "caller's socket gone",
            CheckError::Unavailable(_) => "connection counters unavailable",
        }
    }
}

/// Runs the check of `what` for our accepted socket `ours` (see the module docs); `None`: the
/// connection is not a TCP socket we can read (fails unless the check is not applicable).
pub fn verify(ours: Option<BorrowedFd<'_>>, what: &ConnCheck) -> Result<(), CheckError> {
    let unavailable = |e: io::Error| CheckError::Unavailable(e.to_string());
    let (netns, client, server) = match what {
        ConnCheck::NotApplicable => return Ok(()),
        ConnCheck::Unavailable => {
            return Err(CheckError::Unavailable("no namespace handles".into()))
        }
        ConnCheck::Counters {
            netns,
            client,
            server,
        } => (netns, *client, *server),
    };
    let fd = ours.ok_or_else(|| CheckError::Unavailable("not a TCP connection".into()))?;
    let before = own_counters(fd).map_err(unavailable)?;
    let theirs = netns
        .0
        .peer_counters(client, server)
        .map_err(unavailable)?
        .ok_or(CheckError::Gone)?;
    let after = own_counters(fd).map_err(unavailable)?;
    check(&before, &theirs, &after)?;
    Ok(())
}

/// A connection whose own socket can be checked: the accepted TCP stream; in-memory and unix
/// streams have no TCP counters (`None`).
pub trait OwnSocket {
    /// The socket whose counters are compared, or `None` when it has none.
    fn own_fd(&self) -> Option<BorrowedFd<'_>>;
}

impl OwnSocket for tokio::net::TcpStream {
    fn own_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl OwnSocket for tokio::io::DuplexStream {
    fn own_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

mod recheck;
pub use recheck::Rechecked;

#[cfg(test)]
mod tests;
