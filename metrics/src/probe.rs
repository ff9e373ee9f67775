//! A minimal HTTP/1.1 client for the endpoint: the `healthcheck` subcommands (images without
//! curl) and the integration tests' scrapes. One request per connection, bounded in time and
//! size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest reply read.
const MAX_REPLY: u64 = 8 * 1024 * 1024;
/// Time for the whole exchange.
const TIMEOUT: Duration = Duration::from_secs(5);

/// An answer of the endpoint.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header, empty when the reply had none.
    pub content_type: String,
    /// Reply body as text.
    pub body: String,
}

/// The address to dial for a listener bound to `addr`: an unspecified address (`0.0.0.0`,
/// `[::]`) is reached on loopback.
fn dial(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn parse(raw: &[u8]) -> std::io::Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("no end of the reply head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok(Reply {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// Sends `raw` (a whole request) to `addr` and reads the reply until the server closes.
pub(crate) async fn request(addr: SocketAddr, raw: &str) -> std::io::Result<Reply> {
    let exchange = async {
        let mut s = TcpStream::connect(dial(addr)).await?;
        s.write_all(raw.as_bytes()).await?;
        let mut out = Vec::new();
        s.take(MAX_REPLY).read_to_end(&mut out).await?;
        parse(&out)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// `GET path` from the endpoint at `addr`, accepting OpenMetrics as Prometheus does.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    request(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nhost: localhost\r\naccept: application/openmetrics-text; \
             version=1.0.0\r\nconnection: close\r\n\r\n"
        ),
    )
    .await
}

/// `GET path` without an `Accept` header (as curl or an old scraper: text format 0.0.4).
pub async fn get_text(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"),
    )
    .await
}

/// Whether `/healthz` at `addr` answers 200.
pub async fn healthcheck(addr: SocketAddr) -> bool {
    matches!(get(addr, "/healthz").await, Ok(r) if r.status == 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_dialled_on_loopback() {
        let a: SocketAddr = "0.0.0.0:9100".parse().expect("addr");
        assert_eq!(dial(a), "127.0.0.1:9100".parse().expect("addr"));
        let a: SocketAddr = "[::]:9100".parse().expect("addr");
        assert_eq!(dial(a), "[::1]:9100".parse().expect("addr"));
        let a: SocketAddr = "10.1.2.3:1".parse().expect("addr");
        assert_eq!(dial(a), a);
    }

    #[test]
    fn replies_parse() {
        let r = parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nx\n")
            .expect("reply");
        assert_eq!(
            (r.status, r.content_type.as_str(), r.body.as_str()),
            (503, "text/plain", "x\n")
        );
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
