//! Exact TCP 4-tuple lookup inside another network namespace via NETLINK_SOCK_DIAG.
//!
//! Reading `/proc/PID/net/tcp` walks the kernel's whole (host-wide) TCP hash table on every
//! read, which costs milliseconds per connection and grows with load; a sock_diag exact
//! lookup is one hash probe.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDR: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, then the 48-byte socket id.
const REQ_LEN: usize = 56;
/// Offset of the socket id inside `struct inet_diag_msg` (after family, state, timer, retrans).
const MSG_ID_OFFSET: usize = 4;
/// `inet_diag_sockid` without interface and cookie: sport, dport, src[16], dst[16].
const ID_CMP_LEN: usize = 36;

static SEQ: AtomicU32 = AtomicU32::new(1);

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
fn request(family: u8, id: &[u8; ID_CMP_LEN], seq: u32) -> Vec<u8> {
    let len = NLMSG_HDR + REQ_LEN;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // all states
    m.extend_from_slice(id);
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    m.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    m
}

/// Interprets the reply: the kernel may answer with a listener for the same local port, so
/// the returned socket id must equal the requested one.
fn parse_reply(buf: &[u8], id: &[u8; ID_CMP_LEN], seq: u32) -> io::Result<bool> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply");
    let hdr = buf.get(..NLMSG_HDR).ok_or_else(bad)?;
    let typ = u16::from_ne_bytes([hdr[4], hdr[5]]);
    let rseq = u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]);
    if rseq != seq {
        return Err(bad());
    }
    let body = &buf[NLMSG_HDR..];
    match typ {
        NLMSG_ERROR => {
            let code = i32::from_ne_bytes(
                body.get(..4)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            );
            if code == -libc::ENOENT {
                Ok(false)
            } else {
                Err(io::Error::from_raw_os_error(-code))
            }
        }
        SOCK_DIAG_BY_FAMILY => {
            let got = body
                .get(MSG_ID_OFFSET..MSG_ID_OFFSET + ID_CMP_LEN)
                .ok_or_else(bad)?;
            Ok(got == id)
        }
        _ => Err(bad()),
    }
}

/// A NETLINK_SOCK_DIAG socket in the calling thread's network namespace.
///
/// The socket stays bound to that namespace whichever thread uses it later, which is what lets
/// [`crate::netns`] open it once per container and query from the async workers directly.
pub fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // A reply never takes long; bound the wait so a stuck kernel path cannot pin the thread.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: valid fd and a correctly sized timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    Ok(fd)
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
) -> io::Result<bool> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let req = request(family, id, seq);
    // SAFETY: zeroed sockaddr_nl addressed to the kernel (pid 0).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: valid fd, buffer and address for the stated lengths.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    let mut buf = [0u8; 4096];
    // Bounded: at most this many stale replies are skipped before giving up.
    for _ in 0..64 {
        // SAFETY: valid fd and writable buffer of the stated length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = &buf[..n as usize];
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

/// One query on a fresh NETLINK_SOCK_DIAG socket of the calling thread's namespace.
fn query(family: u8, id: &[u8; ID_CMP_LEN]) -> io::Result<bool> {
    query_on(&open_socket()?, family, id, false)
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

/// Like [`socket_exists_here`], on an already open sock_diag socket (of whatever namespace it
/// was created in), without ever blocking: `WouldBlock` if the reply is not queued at once.
pub fn socket_exists_on(fd: &OwnedFd, local: SocketAddr, remote: SocketAddr) -> io::Result<bool> {
    match lookup_key(local, remote) {
        Some((family, id)) => query_on(fd, family, &id, true),
        None => Ok(false),
    }
}

/// Whether the namespace of the calling thread has a TCP socket bound to `local` and
/// connected to `remote`.
pub fn socket_exists_here(local: SocketAddr, remote: SocketAddr) -> io::Result<bool> {
    match lookup_key(local, remote) {
        Some((family, id)) => query(family, &id),
        None => Ok(false),
    }
}

/// Same as [`socket_exists_here`], in the network namespace of process `pid` (on a short-lived
/// thread, because setns changes the calling thread for good).
pub fn socket_exists_in(pid: u32, local: SocketAddr, remote: SocketAddr) -> io::Result<bool> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::Builder::new()
        .name("sockdiag".into())
        .spawn(move || {
            // SAFETY: `ns` is an open namespace fd that outlives the call.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            socket_exists_here(local, remote)
        })?
        .join()
        .map_err(|_| io::Error::other("sockdiag thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_connected_four_tuple() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        let (cl, sl) = (c.local_addr().unwrap(), l.local_addr().unwrap());
        assert!(socket_exists_here(cl, sl).unwrap());
        // A listener on the same local port must not count as the connection.
        assert!(!socket_exists_here(sl, "127.0.0.1:1".parse().unwrap()).unwrap());
        assert!(!socket_exists_here("127.0.0.1:1".parse().unwrap(), sl).unwrap());
        let pid = std::process::id();
        assert!(socket_exists_in(pid, cl, sl).unwrap());
    }

    #[test]
    fn error_reply_enoent_means_absent() {
        let id = [0u8; ID_CMP_LEN];
        let mut buf = vec![0u8; NLMSG_HDR + 4];
        buf[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf[8..12].copy_from_slice(&7u32.to_ne_bytes());
        buf[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert!(!parse_reply(&buf, &id, 7).unwrap());
        assert!(parse_reply(&buf, &id, 8).is_err());
    }
}
