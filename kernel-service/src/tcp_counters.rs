//! The traffic counters of one end of a TCP connection, read from a `struct tcp_info`: our own
//! socket's (`TCP_INFO`, [`crate::sys::tcpinfo`]) and the caller's (sock_diag's
//! `INET_DIAG_INFO`, [`crate::sockdiag`]) go through the one parser here, so the counters
//! check ([`crate::conncheck`]) compares like with like.

// Offsets in `struct tcp_info` (include/uapi/linux/tcp.h).
const OFF_BYTES_ACKED: usize = 120;
const OFF_BYTES_RECEIVED: usize = 128;
const OFF_SEGS_OUT: usize = 136;
const OFF_SEGS_IN: usize = 140;
const OFF_BYTES_SENT: usize = 200;
const OFF_BYTES_RETRANS: usize = 208;
/// `tcpi_bytes_sent` and `tcpi_bytes_retrans` came with Linux 5.5; older kernels' structs are
/// shorter and the check cannot be made (fails closed).
pub const MIN_TCP_INFO: usize = OFF_BYTES_RETRANS + 8;

/// The traffic counters of one end of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpCounters {
    /// Payload bytes the other end acknowledged.
    pub bytes_acked: u64,
    /// Payload bytes received in order.
    pub bytes_received: u64,
    /// Payload bytes sent, retransmissions excluded.
    pub bytes_sent: u64,
    /// Segments sent (`tcpi_segs_out`).
    pub segs_out: u32,
    /// Segments received (`tcpi_segs_in`).
    pub segs_in: u32,
}

impl TcpCounters {
    /// Parses a `struct tcp_info` (from `TCP_INFO` or sock_diag's `INET_DIAG_INFO`).
    pub fn parse(info: &[u8]) -> Option<Self> {
        if info.len() < MIN_TCP_INFO {
            return None;
        }
        let u64_at = |o: usize| {
            info.get(o..o + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
        };
        let u32_at = |o: usize| {
            info.get(o..o + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let sent = u64_at(OFF_BYTES_SENT)?;
        let retrans = u64_at(OFF_BYTES_RETRANS)?;
        Some(TcpCounters {
            bytes_acked: u64_at(OFF_BYTES_ACKED)?,
            bytes_received: u64_at(OFF_BYTES_RECEIVED)?,
            bytes_sent: sent.saturating_sub(retrans),
            segs_out: u32_at(OFF_SEGS_OUT)?,
            segs_in: u32_at(OFF_SEGS_IN)?,
        })
    }
}
