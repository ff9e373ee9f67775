//! PROXY protocol v2 from trusted balancers (`--trusted-proxies`): behind HAProxy every
//! connection comes from the balancer's one address, so without the client address it passes
//! all clients would share one per-source budget.
//!
//! Only peers in the configured list may send the header, and from them it is required (a
//! balancer configured for it always sends it; a connection without one is refused). From
//! anyone else a PROXY header is refused: it is not a TLS record, so the handshake fails.
//! The header is parsed by the `ppp` crate; we only read its length-prefixed bytes.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The fixed part of a v2 header: 12-byte signature, version/command, family, length.
const FIXED: usize = 16;
/// Longest address block and TLVs read (HAProxy sends well under 100 bytes: addresses and,
/// at most, a few short TLVs).
const MAX_BLOCK: usize = 1024;

/// The balancers whose PROXY headers are believed: IPs and CIDR blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is a trusted balancer (IPv4-mapped IPv6 peers count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// No balancer trusted: PROXY headers are refused from everyone (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&list.join(","))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of IPs and CIDRs; empty means none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match (item.parse::<IpNet>(), item.parse::<IpAddr>()) {
                (Ok(net), _) => net.trunc(),
                (_, Ok(ip)) => IpNet::from(ip),
                _ => {
                    return Err(format!(
                        "{item:?} is neither an IP address nor a CIDR block"
                    ))
                }
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }
}

/// Why a trusted balancer's connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The header could not be read.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// The connection did not start with a PROXY v2 header.
    #[error("no PROXY protocol v2 header (the balancer must send one: HAProxy `send-proxy-v2`)")]
    Missing,
    /// The header announces more bytes than allowed.
    #[error("PROXY header of {0} bytes, more than {MAX_BLOCK}")]
    TooLong(usize),
    /// The header does not parse.
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
}

/// Reads the PROXY v2 header a trusted balancer sends first on `tcp` and returns the client
/// address it names (`peer` itself for the balancer's own LOCAL connections, e.g. health
/// checks, and for non-IP families).
pub async fn read_header(tcp: &mut TcpStream, peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    let mut buf = vec![0u8; FIXED];
    tcp.read_exact(&mut buf).await?;
    if !buf.starts_with(ppp::v2::PROTOCOL_PREFIX) {
        return Err(ProxyError::Missing);
    }
    let block = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if block > MAX_BLOCK {
        return Err(ProxyError::TooLong(block));
    }
    buf.resize(FIXED + block, 0);
    tcp.read_exact(&mut buf[FIXED..]).await?;
    client_of(&buf, peer)
}

/// The client address a complete v2 header names.
fn client_of(header: &[u8], peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    let parsed =
        ppp::v2::Header::try_from(header).map_err(|e| ProxyError::Invalid(e.to_string()))?;
    if parsed.command == ppp::v2::Command::Local {
        return Ok(peer);
    }
    Ok(match parsed.addresses {
        ppp::v2::Addresses::IPv4(a) => SocketAddr::new(a.source_address.into(), a.source_port),
        ppp::v2::Addresses::IPv6(a) => SocketAddr::new(a.source_address.into(), a.source_port),
        _ => peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn lists() {
        let t: TrustedProxies = "10.1.2.3, 172.16.0.0/12,::1".parse().expect("list");
        assert!(t.contains(ip("10.1.2.3")));
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(!t.contains(ip("10.1.2.4")));
        assert!(t.contains(ip("172.20.9.9")));
        assert!(t.contains(ip("::1")));
        assert_eq!(t.to_string(), "10.1.2.3/32,172.16.0.0/12,::1/128");
        let none: TrustedProxies = "".parse().expect("empty");
        assert!(none.is_empty() && !none.contains(ip("127.0.0.1")));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("balancer".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn headers() {
        let peer: SocketAddr = "10.0.0.2:40000".parse().expect("addr");
        let client: SocketAddr = "203.0.113.7:51000".parse().expect("addr");
        let v4 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                client,
                "10.0.0.3:50051".parse::<SocketAddr>().expect("addr"),
            ),
        )
        .build()
        .expect("header");
        assert_eq!(client_of(&v4, peer).expect("v4"), client);
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .expect("header");
        assert_eq!(client_of(&local, peer).expect("local"), peer);
        assert!(client_of(&v4[..v4.len() - 1], peer).is_err());
    }
}
