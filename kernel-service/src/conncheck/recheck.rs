//! The connection counters check, repeated while a long connection (`job.watch`) streams: a
//! stream wrapper that checks again before a write once [`super::RECHECK_EVERY`] has passed,
//! and fails the write (ending the watch) when the check fails.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{verify, ConnCheck, OwnSocket};

/// `inner`, checked against `what` at most every `every` while it is written to.
pub struct Rechecked<'a, S> {
    inner: &'a mut S,
    what: &'a ConnCheck,
    every: Duration,
    last: Instant,
}

impl<'a, S> Rechecked<'a, S> {
    /// `inner` was checked just now (the check after its command line).
    pub fn new(inner: &'a mut S, what: &'a ConnCheck, every: Duration) -> Self {
        Rechecked {
            inner,
            what,
            every,
            last: Instant::now(),
        }
    }
}

impl<S: OwnSocket> Rechecked<'_, S> {
    fn due_check(&mut self) -> io::Result<()> {
        if *self.what == ConnCheck::NotApplicable || self.last.elapsed() < self.every {
            return Ok(());
        }
        self.last = Instant::now();
        verify(self.inner.own_fd(), self.what).map_err(|e| {
            tracing::warn!(error = %e, "connection check failed on a long connection: closing it");
            io::Error::new(io::ErrorKind::PermissionDenied, e.to_string())
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rechecked<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + OwnSocket + Unpin> AsyncWrite for Rechecked<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.due_check()?;
        Pin::new(&mut *me.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}
