//! Where the orchestrator listens: `--listen`, else every address like the original
//! (`[::]`, dual-stack, with a fallback to `0.0.0.0` where IPv6 is unavailable), and the refusal
//! to expose the original's public default admin token beyond loopback.
//!
//! `--grpc-hostname` has no say here: the original parsed it and then bound `[::]:50051`
//! regardless, and its own `docker-compose-orchestrator.yaml` passes `--grpc-hostname=localhost`
//! while publishing the port, which only works because the flag is ignored.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// The original's default admin token; public, so it must not be reachable from other hosts.
pub const DEFAULT_ADMIN_TOKEN: &str = "leotest-access-token";

/// Pending connections the kernel queues before they are accepted.
const BACKLOG: i32 = 1024;

/// Why no listen address could be chosen or bound.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// `--listen` does not resolve to an address.
    #[error("--listen {0:?}: not an address, host or host:port that resolves")]
    Resolve(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// The admin token is the public default and the address is reachable from other hosts.
    #[error(
        "refusing to listen on {addr} with the default admin token `{DEFAULT_ADMIN_TOKEN}`: \
         anyone who can reach this port could act as admin. Set a secret admin token with \
         LEOTEST_ADMIN_ACCESS_TOKEN (or --admin-access-token; e.g. `openssl rand -hex 32`), or \
         listen on loopback only (--listen 127.0.0.1:{port}), or accept the risk with \
         --allow-default-admin-token",
        port = addr.port()
    )]
    DefaultAdminToken {
        /// The address that would be served.
        addr: SocketAddr,
    },
}

/// The address to bind: `--listen` if given, else `[::]` on `port`.
///
/// `--listen` takes `IP`, `IP:PORT`, `[IPv6]:PORT`, `HOST` or `HOST:PORT`; without a port,
/// `port` (from `--grpc-port`) applies. A host name resolving to several addresses binds the
/// first IPv4 one (the original's clients default to IPv4 addresses).
pub async fn listen_addr(listen: Option<&str>, port: u16) -> Result<SocketAddr, ListenError> {
    let Some(spec) = listen.map(str::trim) else {
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    };
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = spec
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(spec);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let (host, port) = match spec.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => match p.parse::<u16>() {
            Ok(p) => (host, p),
            Err(_) => return Err(ListenError::Resolve(spec.to_string())),
        },
        _ => (spec, port),
    };
    if host.is_empty() {
        return Err(ListenError::Resolve(spec.to_string()));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| ListenError::Resolve(spec.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| ListenError::Resolve(spec.to_string()))
}

/// Refuses a listener reachable from other hosts while the admin token is the public default.
pub fn check_admin_exposure(
    addr: SocketAddr,
    admin_token: &str,
    allow_default: bool,
) -> Result<(), ListenError> {
    if admin_token != DEFAULT_ADMIN_TOKEN || addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    if allow_default {
        tracing::warn!(
            %addr,
            "--allow-default-admin-token: the default admin token is accepted on a listener \
             reachable from other hosts; anyone who can reach it can act as admin"
        );
        return Ok(());
    }
    Err(ListenError::DefaultAdminToken { addr })
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // Dual-stack whatever net.ipv6.bindv6only says: IPv4 clients arrive as ::ffff:a.b.c.d.
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Binds `addr`; `[::]` falls back to `0.0.0.0` where the host has no IPv6.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    match bind_one(addr) {
        Ok(listener) => Ok(listener),
        Err(e)
            if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                && !matches!(
                    e.kind(),
                    io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                ) =>
        {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
            tracing::warn!(error = %e, %v4, "IPv6 unavailable: listening on IPv4 only");
            bind_one(v4).map_err(|source| ListenError::Bind { addr: v4, source })
        }
        Err(source) => Err(ListenError::Bind { addr, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[tokio::test]
    async fn listen_specs() {
        assert_eq!(listen_addr(None, 50051).await.unwrap(), sa("[::]:50051"));
        assert_eq!(
            listen_addr(Some("127.0.0.1:7"), 1).await.unwrap(),
            sa("127.0.0.1:7")
        );
        assert_eq!(
            listen_addr(Some("0.0.0.0"), 8).await.unwrap(),
            sa("0.0.0.0:8")
        );
        assert_eq!(listen_addr(Some("[::]"), 9).await.unwrap(), sa("[::]:9"));
        assert_eq!(listen_addr(Some("::1"), 9).await.unwrap(), sa("[::1]:9"));
        assert_eq!(
            listen_addr(Some("[::1]:10"), 9).await.unwrap(),
            sa("[::1]:10")
        );
        let local = listen_addr(Some("localhost:11"), 9).await.unwrap();
        assert!(local.ip().is_loopback() && local.port() == 11);
        let local = listen_addr(Some("localhost"), 12).await.unwrap();
        assert!(local.ip().is_loopback() && local.port() == 12);
        for bad in ["", "host:port", ":5", "no such host.invalid"] {
            assert!(listen_addr(Some(bad), 1).await.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_token_stays_on_loopback() {
        let t = DEFAULT_ADMIN_TOKEN;
        for ok in [
            "127.0.0.1:1",
            "[::1]:1",
            "127.0.0.9:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(check_admin_exposure(sa(ok), t, false).is_ok(), "{ok}");
        }
        for exposed in ["0.0.0.0:1", "[::]:1", "10.0.0.1:1"] {
            let err = check_admin_exposure(sa(exposed), t, false).expect_err(exposed);
            let text = err.to_string();
            assert!(text.contains("LEOTEST_ADMIN_ACCESS_TOKEN"), "{text}");
            assert!(text.contains("--listen 127.0.0.1:1"), "{text}");
            assert!(check_admin_exposure(sa(exposed), t, true).is_ok());
            assert!(check_admin_exposure(sa(exposed), "a-secret", false).is_ok());
        }
    }

    #[tokio::test]
    async fn all_addresses_take_ipv4_too() {
        let l = bind(sa("[::]:0")).expect("bind");
        let port = l.local_addr().expect("addr").port();
        let c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(c.is_ok(), "IPv4 client on the [::] listener: {c:?}");
    }
}
