//! Client for the kernel service's line protocol on TCP port 9000 (used inside experiment containers).
//!
//! One connection per command: connect, send one line, read the reply until the server closes.
//! The same exchange works over the service's unix socket (`--unix-socket` there), where the
//! caller is identified by its process instead of its address.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

// The grammar is the wire crate's, shared with the service; re-exported so this stays the
// client's one kernel API.
pub use leotest_wire::{
    parse, KernelCommand, LineError, ParseError, ACCESS_DENIED, DEFAULT_PORT, MAX_LINE,
};

/// Failures of a kernel-service exchange.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The command cannot be sent as one protocol line (an argument with spaces, a missing
    /// command, a line the service would refuse or that is too long): the wire crate's reasons.
    #[error(transparent)]
    Line(#[from] LineError),
    /// Could not connect.
    #[error("kernel service at {addr} unreachable: {source}")]
    Connect {
        /// `host:port` tried.
        addr: String,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// No complete reply within the time limit.
    #[error("kernel service at {addr} did not answer within {} ms", timeout.as_millis())]
    Timeout {
        /// `host:port` asked.
        addr: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The connection failed mid-exchange, or the output could not be written.
    #[error("kernel service exchange failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Summary of a finished exchange (the reply bytes went to the writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelReply {
    /// Reply bytes received.
    pub bytes: u64,
    /// The service refused the caller (`access_denied`).
    pub access_denied: bool,
}

/// Where a kernel service listens and how long to wait for it.
#[derive(Debug, Clone)]
pub struct KernelClient {
    /// `host:port`.
    pub addr: String,
    /// Limit for connecting, and for the whole reply of non-streaming commands.
    pub timeout: Duration,
    /// Connect to this unix socket instead of `addr`.
    pub unix: Option<PathBuf>,
}

impl KernelClient {
    /// A client for the kernel service at `host:port` with the given connect/reply limit, over TCP.
    pub fn new(host: &str, port: u16, timeout: Duration) -> Self {
        KernelClient {
            addr: format!("{host}:{port}"),
            timeout,
            unix: None,
        }
    }

    /// A client of the service's unix socket at `path`.
    pub fn unix(path: PathBuf, timeout: Duration) -> Self {
        KernelClient {
            addr: path.display().to_string(),
            timeout,
            unix: Some(path),
        }
    }

    /// Sends `cmd` and copies the reply to `out` as it arrives, until the service closes.
    pub async fn send<W: AsyncWrite + Unpin>(
        &self,
        cmd: &KernelCommand,
        out: &mut W,
    ) -> Result<KernelReply, KernelError> {
        let line = cmd.line()?;
        let timeout_err = || KernelError::Timeout {
            addr: self.addr.clone(),
            timeout: self.timeout,
        };
        let connect_err = |source| KernelError::Connect {
            addr: self.addr.clone(),
            source,
        };
        match &self.unix {
            Some(path) => {
                let mut stream = tokio::time::timeout(self.timeout, UnixStream::connect(path))
                    .await
                    .map_err(|_| timeout_err())?
                    .map_err(connect_err)?;
                self.bounded(cmd, exchange(&mut stream, line, out)).await
            }
            None => {
                let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
                    .await
                    .map_err(|_| timeout_err())?
                    .map_err(connect_err)?;
                self.bounded(cmd, exchange(&mut stream, line, out)).await
            }
        }
    }

    /// Streaming commands run until the service closes; the others within the time-out.
    async fn bounded(
        &self,
        cmd: &KernelCommand,
        exchange: impl std::future::Future<Output = Result<KernelReply, KernelError>>,
    ) -> Result<KernelReply, KernelError> {
        if cmd.is_streaming() {
            exchange.await
        } else {
            tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| KernelError::Timeout {
                    addr: self.addr.clone(),
                    timeout: self.timeout,
                })?
        }
    }

    /// Like [`KernelClient::send`], collecting the reply as text.
    pub async fn request(&self, cmd: &KernelCommand) -> Result<(KernelReply, String), KernelError> {
        let mut buf = Vec::new();
        let reply = self.send(cmd, &mut buf).await?;
        Ok((reply, String::from_utf8_lossy(&buf).into_owned()))
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin, W: AsyncWrite + Unpin>(
    stream: &mut S,
    line: String,
    out: &mut W,
) -> Result<KernelReply, KernelError> {
    // A refusal may arrive (and the service close) before the line is written, above all on
    // the unix socket: a broken pipe here still leaves the reply to read.
    let sent = async {
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        stream.flush().await
    };
    match sent.await {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    let mut buf = vec![0u8; 8192];
    let mut head = Vec::with_capacity(ACCESS_DENIED.len());
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            // A reset after the reply was sent is how some servers close; keep what arrived.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && total > 0 => break,
            Err(e) => return Err(e.into()),
        };
        if head.len() < ACCESS_DENIED.len() {
            let take = (ACCESS_DENIED.len() - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        total += n as u64;
        out.write_all(&buf[..n]).await?;
        out.flush().await?;
    }
    Ok(KernelReply {
        bytes: total,
        access_denied: head == ACCESS_DENIED.as_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// A one-shot fake service: records the line it got, answers `reply` in pieces.
    async fn fake_service(
        reply: &'static [&'static str],
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (rd, mut wr) = sock.into_split();
            let mut line = String::new();
            BufReader::new(rd).read_line(&mut line).await.unwrap();
            for part in reply {
                wr.write_all(part.as_bytes()).await.unwrap();
                wr.flush().await.unwrap();
            }
            line
        });
        (addr, handle)
    }

    #[tokio::test]
    async fn reply_is_read_until_close() {
        let (addr, server) = fake_service(&["net.ipv4.tcp_congestion_control", " = cubic\n"]).await;
        let client = KernelClient {
            addr,
            timeout: Duration::from_secs(10),
            unix: None,
        };
        let (reply, text) = client.request(&KernelCommand::CcaCheck).await.unwrap();
        assert_eq!(text, "net.ipv4.tcp_congestion_control = cubic\n");
        assert!(!reply.access_denied);
        assert_eq!(server.await.unwrap(), "cca.check\n");
    }

    #[tokio::test]
    async fn access_denied_is_recognised() {
        let (addr, _server) = fake_service(&["access", "_denied"]).await;
        let client = KernelClient {
            addr,
            timeout: Duration::from_secs(10),
            unix: None,
        };
        let (reply, _) = client.request(&KernelCommand::JobList).await.unwrap();
        assert!(reply.access_denied);
    }

    #[tokio::test]
    async fn closed_port_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let client = KernelClient {
            addr,
            timeout: Duration::from_secs(10),
            unix: None,
        };
        let err = client.request(&KernelCommand::CcaCheck).await.unwrap_err();
        assert!(matches!(err, KernelError::Connect { .. }), "{err}");
    }
}
