//! Is this accepted connection really the caller's? Exact TCP 4-tuple lookup inside the caller's
//! network namespace via NETLINK_SOCK_DIAG, with a `/proc/PID/net/tcp` walk as the fallback.
//!
//! Reading `/proc/PID/net/tcp` walks the kernel's whole (host-wide) TCP hash table on every
//! read, which costs milliseconds per connection and grows with load; a sock_diag exact
//! lookup is one hash probe.
//!
//! A socket with the right 4-tuple is not enough: a TIME_WAIT socket left in the victim's
//! namespace by an earlier, finished exchange has the same 4-tuple as a new connection that a
//! neighbour forges from the victim's address and port. Only a *live* socket owned by a process
//! counts ([`is_live_client`]): the counterpart of a connection we accepted and have not yet
//! answered or closed can only be ESTABLISHED, or FIN_WAIT1/FIN_WAIT2 when the client has
//! already half-closed (`echo cca.check | nc` does), and it has an inode unless the client
//! closed it and left. Every other state (TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING, ...) means
//! the socket belongs to another, older connection.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::sys::{netlink, ns};
use crate::tcp_counters::TcpCounters;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDR: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, then the 48-byte socket id.
const REQ_LEN: usize = 56;
/// Offset of `idiag_state` inside `struct inet_diag_msg` (after `idiag_family`).
const MSG_STATE_OFFSET: usize = 1;
/// Offset of the socket id inside `struct inet_diag_msg` (after family, state, timer, retrans).
const MSG_ID_OFFSET: usize = 4;
/// Offset of `idiag_inode` (after the 48-byte id and expires, rqueue, wqueue, uid).
const MSG_INODE_OFFSET: usize = 68;
/// `inet_diag_sockid` without interface and cookie: sport, dport, src[16], dst[16].
const ID_CMP_LEN: usize = 36;
/// `struct inet_diag_msg`: its attributes follow it.
const MSG_LEN: usize = 72;
/// The attribute carrying `struct tcp_info`.
const INET_DIAG_INFO: u8 = 2;

/// TCP states (`include/net/tcp_states.h`).
const TCP_ESTABLISHED: u8 = 1;
const TCP_FIN_WAIT1: u8 = 4;
const TCP_FIN_WAIT2: u8 = 5;

static SEQ: AtomicU32 = AtomicU32::new(1);

/// Whether a client-side socket in `state` owned by `inode` can be the counterpart of a
/// connection we accepted and have neither answered nor closed (see the module docs).
pub fn is_live_client(state: u8, inode: u64) -> bool {
    matches!(state, TCP_ESTABLISHED | TCP_FIN_WAIT1 | TCP_FIN_WAIT2) && inode != 0
}

/// The 36 comparable bytes of an `inet_diag_sockid` for `local` → `remote`.
fn sock_id(local: SocketAddr, remote: SocketAddr) -> [u8; ID_CMP_LEN] {
    let mut id = [0u8; ID_CMP_LEN];
    id[0..2].copy_from_slice(&local.port().to_be_bytes());
    id[2..4].copy_from_slice(&remote.port().to_be_bytes());
    let put = |dst: &mut [u8], ip: IpAddr| match ip {
        IpAddr::V4(v4) => dst[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => dst.copy_from_slice(&v6.octets()),
    };
    put(&mut id[4..20], local.ip());
    put(&mut id[20..36], remote.ip());
    id
}

/// Builds the SOCK_DIAG_BY_FAMILY exact-lookup request (no dump flag).
/// With `info`, the kernel appends the socket's `struct tcp_info` (`INET_DIAG_INFO`).
fn request(family: u8, id: &[u8; ID_CMP_LEN], seq: u32, info: bool) -> Vec<u8> {
    let len = NLMSG_HDR + REQ_LEN;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    let ext = if info { 1u8 << (INET_DIAG_INFO - 1) } else { 0 };
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, ext, 0]);
    // The exact lookup ignores this mask (it finds TIME_WAIT sockets too): the state is checked
    // on the reply. It still says what we ask for.
    let live = (1u32 << TCP_ESTABLISHED) | (1 << TCP_FIN_WAIT1) | (1 << TCP_FIN_WAIT2);
    m.extend_from_slice(&live.to_ne_bytes());
    m.extend_from_slice(id);
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    m.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    m
}

/// What an exact lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// No live client socket with that 4-tuple (see [`is_live_client`]).
    Absent,
    /// A live one, with its counters when they were asked for and the kernel has them.
    Live(Option<TcpCounters>),
}

impl Lookup {
    /// True when a live socket was found.
    pub fn is_live(&self) -> bool {
        matches!(self, Lookup::Live(_))
    }
}

/// The payload of the `INET_DIAG_INFO` attribute among the attributes after the message.
fn info_attr(mut attrs: &[u8]) -> Option<&[u8]> {
    // Bounded by the buffer: every step consumes at least the 4-byte attribute header.
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let typ = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if typ == u16::from(INET_DIAG_INFO) {
            return attrs.get(4..len);
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// Interprets the reply: the kernel may answer with a listener for the same local port, so
/// the returned socket id must equal the requested one, and the socket must be live.
fn parse_reply(buf: &[u8], id: &[u8; ID_CMP_LEN], seq: u32) -> io::Result<Lookup> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply");
    let hdr = buf.get(..NLMSG_HDR).ok_or_else(bad)?;
    let typ = u16::from_ne_bytes([hdr[4], hdr[5]]);
    let rseq = u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]);
    let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    if rseq != seq {
        return Err(bad());
    }
    let body = buf
        .get(NLMSG_HDR..len.clamp(NLMSG_HDR, buf.len()))
        .ok_or_else(bad)?;
    match typ {
        NLMSG_ERROR => {
            let code = i32::from_ne_bytes(
                body.get(..4)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            );
            if code == -libc::ENOENT {
                Ok(Lookup::Absent)
            } else {
                Err(io::Error::from_raw_os_error(-code))
            }
        }
        SOCK_DIAG_BY_FAMILY => {
            let got = body
                .get(MSG_ID_OFFSET..MSG_ID_OFFSET + ID_CMP_LEN)
                .ok_or_else(bad)?;
            let state = *body.get(MSG_STATE_OFFSET).ok_or_else(bad)?;
            let inode = body
                .get(MSG_INODE_OFFSET..MSG_INODE_OFFSET + 4)
                .ok_or_else(bad)?;
            let inode = u32::from_ne_bytes([inode[0], inode[1], inode[2], inode[3]]);
            if got != id || !is_live_client(state, inode.into()) {
                return Ok(Lookup::Absent);
            }
            let info = body
                .get(MSG_LEN..)
                .and_then(info_attr)
                .and_then(TcpCounters::parse);
            Ok(Lookup::Live(info))
        }
        _ => Err(bad()),
    }
}

/// A NETLINK_SOCK_DIAG socket in the calling thread's network namespace.
///
/// The socket stays bound to that namespace whichever thread uses it later, which is what lets
/// [`crate::netns`] open it once per container and query from the async workers directly.
pub fn open_socket() -> io::Result<OwnedFd> {
    // A reply never takes long; bound the wait so a stuck kernel path cannot pin the thread.
    netlink::open(libc::NETLINK_SOCK_DIAG, Duration::from_secs(1))
}

/// Sends one exact-lookup request on `fd` and reads its reply.
///
/// With `nonblocking`, the receive never waits: the kernel answers a sock_diag request inside
/// the `sendto` call, so the reply is already queued; if it is not, the caller gets
/// `WouldBlock` and retries elsewhere. Replies to earlier requests (another caller that gave up)
/// carry another sequence number and are skipped.
fn query_on(
    fd: &OwnedFd,
    family: u8,
    id: &[u8; ID_CMP_LEN],
    nonblocking: bool,
    info: bool,
) -> io::Result<Lookup> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    netlink::send_to_kernel(fd, &request(family, id, seq, info))?;
    let mut buf = [0u8; 4096];
    // Bounded: at most this many stale replies are skipped before giving up.
    for _ in 0..64 {
        let n = netlink::recv(fd, &mut buf, nonblocking)?;
        let got = &buf[..n];
        let rseq = got
            .get(8..12)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        if rseq.is_some() && rseq != Some(seq) {
            continue;
        }
        return parse_reply(got, id, seq);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no sock_diag reply for this request",
    ))
}

/// The family and request id for the connection `local` → `remote` (canonical addresses), or
/// `None` when the two addresses are of different families (no such socket can exist).
fn lookup_key(local: SocketAddr, remote: SocketAddr) -> Option<(u8, [u8; ID_CMP_LEN])> {
    let norm = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (local, remote) = (norm(local), norm(remote));
    let family = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return None,
    };
    Some((family as u8, sock_id(local, remote)))
}

/// Like [`live_connection_here`], on an already open sock_diag socket (of whatever namespace it
/// was created in), without ever blocking: `WouldBlock` if the reply is not queued at once.
pub fn live_connection_on(fd: &OwnedFd, local: SocketAddr, remote: SocketAddr) -> io::Result<bool> {
    match lookup_key(local, remote) {
        Some((family, id)) => query_on(fd, family, &id, true, false).map(|l| l.is_live()),
        None => Ok(false),
    }
}

/// The counters of the live socket `local` → `remote` in the namespace `fd` was opened in
/// (`None`: no such live socket); never blocks, like [`live_connection_on`].
pub fn peer_counters_on(
    fd: &OwnedFd,
    local: SocketAddr,
    remote: SocketAddr,
) -> io::Result<Option<TcpCounters>> {
    let Some((family, id)) = lookup_key(local, remote) else {
        return Ok(None);
    };
    match query_on(fd, family, &id, true, true)? {
        Lookup::Absent => Ok(None),
        Lookup::Live(Some(c)) => Ok(Some(c)),
        Lookup::Live(None) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sock_diag reply without tcp_info byte counters (Linux < 5.5)",
        )),
    }
}

/// Whether the namespace of the calling thread has a live TCP socket bound to `local` and
/// connected to `remote` (see [`is_live_client`]).
pub fn live_connection_here(local: SocketAddr, remote: SocketAddr) -> io::Result<bool> {
    match lookup_key(local, remote) {
        Some((family, id)) => {
            query_on(&open_socket()?, family, &id, false, false).map(|l| l.is_live())
        }
        None => Ok(false),
    }
}

/// Same as [`live_connection_here`], in the network namespace of process `pid`; where netlink
/// is unusable there, the namespace's `/proc/PID/net/tcp{,6}` tables are read instead.
pub fn live_connection_in(pid: u32, local: SocketAddr, remote: SocketAddr) -> bool {
    match ns::run_in_pid(pid, move || live_connection_here(local, remote)) {
        Ok(Ok(found)) => found,
        Ok(Err(e)) | Err(e) => {
            tracing::debug!(error = %e, "sock_diag lookup failed, reading /proc");
            proc_tables_have(pid, local, remote)
        }
    }
}

/// Parses one `/proc/net/tcp{,6}` address (`0100007F:1F90`) into a socket address.
fn parse_proc_addr(field: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = field.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = match ip_hex.len() {
        8 => {
            let w = u32::from_str_radix(ip_hex, 16).ok()?;
            IpAddr::from(w.to_ne_bytes())
        }
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(ip_hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::from(b).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a `/proc/net/tcp` table lists a live socket bound to `local` connected to `remote`.
///
/// Columns: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`.
pub fn tcp_table_has(table: &str, local: SocketAddr, remote: SocketAddr) -> bool {
    let norm = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (local, remote) = (norm(local), norm(remote));
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(l), Some(r), Some(st), Some(inode)) = (
            f.get(1).and_then(|a| parse_proc_addr(a)),
            f.get(2).and_then(|a| parse_proc_addr(a)),
            f.get(3).and_then(|s| u8::from_str_radix(s, 16).ok()),
            f.get(9).and_then(|s| s.parse::<u64>().ok()),
        ) else {
            return false;
        };
        l == local && r == remote && is_live_client(st, inode)
    })
}

/// The `/proc` fallback: the TCP tables of the namespace of `pid`, seen through that process.
pub fn proc_tables_have(pid: u32, local: SocketAddr, remote: SocketAddr) -> bool {
    ["tcp", "tcp6"].iter().any(|t| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{t}"))
            .map(|tab| tcp_table_has(&tab, local, remote))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn finds_exactly_the_connected_four_tuple() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        let (cl, sl) = (c.local_addr().unwrap(), l.local_addr().unwrap());
        assert!(live_connection_here(cl, sl).unwrap());
        // A listener on the same local port must not count as the connection.
        assert!(!live_connection_here(sl, "127.0.0.1:1".parse().unwrap()).unwrap());
        assert!(!live_connection_here("127.0.0.1:1".parse().unwrap(), sl).unwrap());
        let pid = std::process::id();
        assert!(live_connection_in(pid, cl, sl));
        assert!(proc_tables_have(pid, cl, sl));
    }

    /// A client that half-closed (sent its command and FIN, as `echo cca.check | nc` does) is
    /// still the live counterpart of the connection we accepted.
    #[test]
    fn a_half_closed_client_still_counts() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"cca.check\n").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let (cl, sl) = (c.local_addr().unwrap(), l.local_addr().unwrap());
        assert!(live_connection_here(cl, sl).unwrap(), "FIN_WAIT2 client");
        assert!(proc_tables_have(std::process::id(), cl, sl));
    }

    /// The attack: an exchange that finished leaves the client's socket in TIME_WAIT; a new
    /// connection forged from the same address and port must not find it.
    #[test]
    fn security_a_time_wait_socket_does_not_count() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (cl, sl) = (c.local_addr().unwrap(), l.local_addr().unwrap());
        let (mut s, _) = l.accept().unwrap();
        // Client closes first, then the server: the client's side ends in TIME_WAIT.
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        drop(s);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        drop(c);
        let pid = std::process::id();
        // Bounded wait for the last ACK to be processed (loopback: immediate in practice).
        let t = std::time::Instant::now();
        let table = || std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
        let in_time_wait = |tab: &str| {
            tab.lines()
                .any(|l| l.contains(&format!(":{:04X} ", cl.port())) && l.contains(" 06 "))
        };
        while !in_time_wait(&table()) && t.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(in_time_wait(&table()), "the client socket is in TIME_WAIT");
        assert!(!live_connection_here(cl, sl).unwrap());
        assert!(!live_connection_in(pid, cl, sl));
        assert!(!proc_tables_have(pid, cl, sl));
    }

    #[test]
    fn error_reply_enoent_means_absent() {
        let id = [0u8; ID_CMP_LEN];
        let mut buf = vec![0u8; NLMSG_HDR + 4];
        buf[0..4].copy_from_slice(&((NLMSG_HDR + 4) as u32).to_ne_bytes());
        buf[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf[8..12].copy_from_slice(&7u32.to_ne_bytes());
        buf[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse_reply(&buf, &id, 7).unwrap(), Lookup::Absent);
        assert!(parse_reply(&buf, &id, 8).is_err());
    }

    #[test]
    fn proc_tcp_table_matches_the_four_tuple_of_live_sockets_only() {
        let head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        let row = |st: &str, inode: &str| {
            format!("{head}   0: 05001EAC:A1B2 01001EAC:2328 {st} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1\n")
        };
        let peer: SocketAddr = "172.30.0.5:41394".parse().unwrap();
        let local: SocketAddr = "172.30.0.1:9000".parse().unwrap();
        assert!(tcp_table_has(&row("01", "4242"), peer, local));
        assert!(tcp_table_has(&row("05", "4242"), peer, local));
        assert!(!tcp_table_has(&row("06", "0"), peer, local), "TIME_WAIT");
        assert!(
            !tcp_table_has(&row("08", "4242"), peer, local),
            "CLOSE_WAIT"
        );
        assert!(!tcp_table_has(&row("05", "0"), peer, local), "orphaned");
        let t = row("01", "4242");
        assert!(!tcp_table_has(
            &t,
            "172.30.0.6:41394".parse().unwrap(),
            local
        ));
        assert!(!tcp_table_has(&t, peer, "172.30.0.1:9001".parse().unwrap()));
    }
}
