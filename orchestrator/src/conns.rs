//! Budgets of established gRPC connections: how many a source and everyone may hold, how
//! long one may stay idle, and how many request bytes one may have in flight.
//!
//! Once its TLS handshake is done a connection takes a slot of a [`Limiter`] (`--max-
//! connections`, `--max-connections-per-source`). A slot is busy while a request of its
//! connection is in progress ([`BudgetLayer`]); a newcomer beyond either limit displaces the
//! oldest *idle* connection of its source, or of anyone, and is refused only when all of
//! them are busy. So a source holding thousands of idle connections holds at most its share
//! of descriptors, and a fresh client still gets in. Connections idle for `--idle-timeout`
//! (one that never sends its HTTP/2 preface included) are closed by a reaper. A displaced or
//! idle connection is closed under hyper's feet: its next read or write fails.
//!
//! The receive budget (`--max-connection-receive-bytes`) bounds the request bytes a
//! connection has in flight, over all its streams: HTTP/2 flow control does not, because
//! tonic releases window as it buffers a message, so 100 streams that each announce 4 MiB
//! could otherwise park 400 MiB. A request past the budget fails with RESOURCE_EXHAUSTED.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use leotest_metrics::limiter::{Busy, Limiter, Slot};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tonic::transport::server::Connected;
use tower::{Layer, Service};

/// The error type of request bodies (tonic's own is crate-private).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Limits of established connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections held at once (`--max-connections`).
    pub max: usize,
    /// Connections held at once from one source (`--max-connections-per-source`).
    pub max_per_source: usize,
    /// How long a connection may stay without a request in progress (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Request bytes in flight per connection (`--max-connection-receive-bytes`).
    pub receive_budget: usize,
}

/// The established connections of one listener.
pub struct Conns {
    limiter: Arc<Limiter>,
    limits: ConnLimits,
}

/// What every request of a connection carries (a request extension): the client address
/// (after PROXY protocol) and the connection's budgets.
#[derive(Clone)]
pub struct ConnInfo {
    /// Client address: the peer, or behind a balancer the one its PROXY header names.
    pub client: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    slot: Slot,
    /// Request body bytes received and not yet released, over all streams.
    received: AtomicUsize,
    budget: usize,
}

impl Conns {
    /// An empty set of connections under `limits`.
    pub fn new(limits: ConnLimits) -> Arc<Conns> {
        Arc::new(Conns {
            limiter: Limiter::new(limits.max, limits.max_per_source, "connection"),
            limits,
        })
    }

    /// A slot for the established connection `io` of `client`; refused (the connection is
    /// dropped, so closed) when every connection it could displace is busy.
    pub fn admit<T>(&self, io: T, client: SocketAddr) -> io::Result<Budgeted<T>> {
        let Some((slot, evicted)) = self.limiter.admit(client.ip()) else {
            return Err(io::Error::other(format!(
                "connection from {client} refused: connection limit reached and every \
                 connection busy"
            )));
        };
        Ok(Budgeted {
            inner: io,
            evicted,
            gone: false,
            info: ConnInfo {
                client,
                shared: Arc::new(Shared {
                    slot,
                    received: AtomicUsize::new(0),
                    budget: self.limits.receive_budget,
                }),
            },
        })
    }

    /// Closes connections idle for `--idle-timeout`, checked a few times per time-out.
    pub fn spawn_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let conns = Arc::clone(self);
        let every = (self.limits.idle_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let closed = conns.limiter.close_idle(conns.limits.idle_timeout);
                if closed > 0 {
                    tracing::debug!(closed, "idle connections closed");
                }
            }
        })
    }

    /// Connections held (for diagnostics).
    pub fn held(&self) -> usize {
        self.limiter.held()
    }
}

/// An established connection within its budget; fails its reads and writes once displaced.
pub struct Budgeted<T> {
    inner: T,
    evicted: oneshot::Receiver<()>,
    gone: bool,
    info: ConnInfo,
}

impl<T> Budgeted<T> {
    /// Whether the connection has been displaced or timed out (registers the waker).
    fn displaced(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.gone && Pin::new(&mut self.evicted).poll(cx).is_ready() {
            self.gone = true;
        }
        self.gone
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed: idle past its time-out or displaced by newer connections",
    )
}

impl<T> Connected for Budgeted<T> {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Budgeted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.displaced(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Budgeted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.displaced(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.displaced(cx) {
            return Poll::Ready(Err(closed()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Marks a connection busy while each of its requests is in progress (until its reply
/// body ends) and charges request bodies to the connection's receive budget.
#[derive(Clone, Default)]
pub struct BudgetLayer;

impl<S> Layer<S> for BudgetLayer {
    type Service = BudgetService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BudgetService { inner }
    }
}

/// The service produced by [`BudgetLayer`].
#[derive(Clone)]
pub struct BudgetService<S> {
    inner: S,
}

pin_project_lite::pin_project! {
    /// A request body charged to its connection's receive budget until dropped.
    pub struct Charged<B> {
        #[pin]
        inner: B,
        shared: Option<Arc<Shared>>,
        charged: usize,
    }

    impl<B> PinnedDrop for Charged<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(s) = this.shared.as_ref() {
                s.received.fetch_sub(*this.charged, Ordering::AcqRel);
            }
        }
    }
}

impl<B> Body for Charged<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let (Some(s), Some(data)) = (this.shared.as_ref(), polled.data_ref()) {
            let n = data.len();
            let now = s.received.fetch_add(n, Ordering::AcqRel) + n;
            *this.charged += n;
            if now > s.budget {
                return Poll::Ready(Some(Err(Box::new(tonic::Status::resource_exhausted(
                    format!(
                        "connection receive budget exceeded: more than {} request bytes in \
                         flight on one connection",
                        s.budget
                    ),
                )))));
            }
        }
        Poll::Ready(Some(Ok(polled)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A reply body that keeps its connection busy until it ends or is dropped.
    pub struct Held<B> {
        #[pin]
        inner: B,
        busy: Option<Busy>,
    }
}

impl<B: Body> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.busy.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

impl<S, ResBody> Service<http::Request<tonic::body::Body>> for BudgetService<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ResBody: Body + Send + 'static,
{
    type Response = http::Response<Held<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = req
            .extensions()
            .get::<ConnInfo>()
            .map(|i| Arc::clone(&i.shared));
        let busy = shared.as_ref().map(|s| s.slot.busy());
        let req = req.map(|body| {
            tonic::body::Body::new(Charged {
                inner: body,
                shared,
                charged: 0,
            })
        });
        Box::pin(async move {
            let resp = inner.call(req).await?;
            Ok(resp.map(|inner| Held { inner, busy }))
        })
    }
}
