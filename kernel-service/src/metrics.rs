//! Prometheus-style counters and a tiny `/metrics` + `/healthz` HTTP listener (plain tokio).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Service counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections: AtomicU64,
    pub granted: AtomicU64,
    pub denied: AtomicU64,
    pub commands_failed: AtomicU64,
    pub bad_requests: AtomicU64,
    /// Docker API requests made for identity (list, inspect).
    pub docker_lookups: AtomicU64,
    /// Docker container lists made because a connection came from an unknown address.
    pub unknown_peer_lookups: AtomicU64,
    /// Unknown addresses denied without asking Docker (off the network, or rate-limited).
    pub lookups_refused: AtomicU64,
    /// Connections refused by the per-source or per-user limit.
    pub over_limit: AtomicU64,
    /// `kernel_access` calls sent to the orchestrator.
    pub oracle_calls: AtomicU64,
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let rows = [
            ("leotest_kernel_connections_total", &self.connections),
            ("leotest_kernel_granted_total", &self.granted),
            ("leotest_kernel_denied_total", &self.denied),
            ("leotest_kernel_command_errors_total", &self.commands_failed),
            ("leotest_kernel_bad_requests_total", &self.bad_requests),
            ("leotest_kernel_docker_lookups_total", &self.docker_lookups),
            (
                "leotest_kernel_unknown_peer_lookups_total",
                &self.unknown_peer_lookups,
            ),
            (
                "leotest_kernel_lookups_refused_total",
                &self.lookups_refused,
            ),
            ("leotest_kernel_over_limit_total", &self.over_limit),
            (
                "leotest_kernel_orchestrator_calls_total",
                &self.oracle_calls,
            ),
        ];
        rows.iter()
            .map(|(n, v)| format!("# TYPE {n} counter\n{n} {}\n", v.load(Ordering::Relaxed)))
            .collect()
    }
}

async fn answer(mut s: TcpStream, m: Arc<Metrics>) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    let head = String::from_utf8_lossy(&buf[..n]);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match path {
        "/metrics" => ("200 OK", m.render()),
        "/healthz" => ("200 OK", "ok\n".to_string()),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}

/// Serves the metrics endpoint until the task is dropped.
pub async fn serve(listener: TcpListener, m: Arc<Metrics>) {
    loop {
        if let Ok((s, _)) = listener.accept().await {
            tokio::spawn(answer(s, Arc::clone(&m)));
        }
    }
}

/// The `healthcheck` subcommand: true when `/healthz` answers 200.
pub async fn healthcheck(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await?;
        let mut out = Vec::new();
        s.take(4096).read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_and_metrics_answer() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let m = Arc::new(Metrics::default());
        Metrics::inc(&m.denied);
        tokio::spawn(serve(l, Arc::clone(&m)));
        assert!(healthcheck(addr).await);
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.contains("leotest_kernel_denied_total 1\n"), "{out}");
    }

    #[tokio::test]
    async fn healthcheck_fails_without_service() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(!healthcheck(addr).await);
    }
}
