//! Where a command ends: at the first newline, or — the original's framing — with the first
//! read when that read holds no newline and no more than the original's one `recv(1024)`.
//!
//! The original read each command with a single `recv(1024)`, so its clients (Python
//! `s.sendall(b"cca.check")` and then `recv`) send no newline and wait for the answer: waiting
//! for a newline or EOF would leave them hanging until the read time-out. A line that is
//! longer than one TCP segment arrives in pieces, but then its first piece is a full segment,
//! which on any Ethernet, veth or loopback path (MSS ≥ 1220 bytes) is longer than 1024 bytes:
//! only then does the reader wait for the rest, up to a newline, EOF or the total time-out.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::protocol::MAX_LINE;

/// The original's single read size: a first read of at most this many bytes without a newline
/// is a whole command.
pub const ORIGINAL_RECV: usize = 1024;

/// Why no command line was read.
#[derive(Debug, PartialEq, Eq)]
pub enum LineError {
    /// Nothing arrived before the time-out.
    Timeout,
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
    /// The connection failed.
    Io,
}

/// Reads one command within one total deadline (a slow sender gets no extension).
///
/// Returns the bytes up to and including the first newline; or everything up to EOF; or the
/// first read's bytes when they hold no newline and are at most [`ORIGINAL_RECV`] long (see the
/// module docs). On time-out, bytes already received count as the command.
pub async fn read_command<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<Vec<u8>, LineError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = Vec::with_capacity(256);
    // One byte more than a line may hold, so an over-long line is seen in one read.
    let mut chunk = vec![0u8; MAX_LINE + 2];
    let mut first = true;
    loop {
        let n = match tokio::time::timeout_at(deadline, r.read(&mut chunk)).await {
            Err(_) if buf.is_empty() => return Err(LineError::Timeout),
            Err(_) => return Ok(buf),
            Ok(Err(_)) => return Err(LineError::Io),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Ok(buf);
        }
        let data = &chunk[..n];
        if let Some(pos) = data.iter().position(|b| *b == b'\n') {
            buf.extend_from_slice(&data[..=pos]);
            return if buf.len() > MAX_LINE + 1 {
                Err(LineError::TooLong)
            } else {
                Ok(buf)
            };
        }
        buf.extend_from_slice(data);
        if buf.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
        if first && n <= ORIGINAL_RECV {
            return Ok(buf);
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const LONG: Duration = Duration::from_secs(3600);

    /// Feeds `pieces` as separate writes (each read sees one piece) and keeps the stream open.
    async fn read_pieces(pieces: &[&[u8]]) -> Result<Vec<u8>, LineError> {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            for p in pieces {
                client.write_all(&p).await.unwrap();
                tokio::task::yield_now().await;
            }
            let _ = rx.await;
            drop(client);
        });
        let r = read_command(&mut server, Duration::from_millis(300)).await;
        let _ = tx.send(());
        writer.await.unwrap();
        r
    }

    #[tokio::test]
    async fn a_line_ends_at_its_newline() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        c.write_all(b"cca.check\nrest").await.unwrap();
        assert_eq!(read_command(&mut s, LONG).await.unwrap(), b"cca.check\n");
    }

    #[tokio::test]
    async fn a_first_read_without_newline_is_the_command() {
        // The stream stays open: no EOF, and the deadline is an hour away.
        let (mut c, mut s) = tokio::io::duplex(1024);
        c.write_all(b"cca.check").await.unwrap();
        assert_eq!(read_command(&mut s, LONG).await.unwrap(), b"cca.check");
        let (mut c, mut s) = tokio::io::duplex(4096);
        let exact = vec![b'a'; ORIGINAL_RECV];
        c.write_all(&exact).await.unwrap();
        assert_eq!(read_command(&mut s, LONG).await.unwrap(), exact);
    }

    #[tokio::test]
    async fn a_long_line_in_pieces_is_read_to_its_newline() {
        let first = vec![b'a'; ORIGINAL_RECV + 1];
        let got = read_pieces(&[&first, b"bc", b"d\n"]).await.unwrap();
        assert_eq!(got.len(), ORIGINAL_RECV + 5);
        assert!(got.ends_with(b"abcd\n"));
    }

    #[tokio::test]
    async fn over_long_and_silent_clients() {
        let big = vec![b'a'; MAX_LINE + 1];
        assert_eq!(read_pieces(&[&big]).await, Err(LineError::TooLong));
        assert_eq!(read_pieces(&[]).await, Err(LineError::Timeout));
        // A long unterminated line that stops: what arrived counts at the deadline.
        let part = vec![b'b'; ORIGINAL_RECV + 10];
        assert_eq!(read_pieces(&[&part]).await.unwrap(), part);
    }
}
