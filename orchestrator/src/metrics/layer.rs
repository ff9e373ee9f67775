//! The tower layer that counts and times every gRPC request, outside the auth layer so that
//! refused requests are counted too.
//!
//! A gRPC status travels in the response headers (a "trailers-only" reply: how the auth layer
//! and most errors answer) or in the trailers after the body; the reply's body is wrapped so
//! the trailers are seen, and the request is recorded once, when its status is known. A reply
//! dropped before its trailers (client gone, stream cancelled) counts as `Canceled`. The time
//! is from the request's arrival to the end of its reply. A handler's [`super::Refused`]
//! marker travels in the reply's extensions (never on the wire) and makes the result
//! `refused`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use super::{code_label, method_label, Metrics};

const GRPC_STATUS: &str = "grpc-status";

/// Records requests into [`Metrics`]; with `None` it passes everything through untouched.
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Option<Arc<Metrics>>,
}

impl MetricsLayer {
    /// A layer recording into `metrics`; `None` records nothing.
    pub fn new(metrics: Option<Arc<Metrics>>) -> MetricsLayer {
        MetricsLayer { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service produced by [`MetricsLayer`].
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

/// A request whose status is not known yet; recorded as `Canceled` if dropped unrecorded.
struct Pending {
    metrics: Arc<Metrics>,
    method: &'static str,
    t0: Instant,
    /// The reply carried [`super::Refused`] (seen with the reply's head).
    refused: bool,
}

struct Recorder(Option<Pending>);

impl Recorder {
    fn finish(&mut self, code: &'static str) {
        if let Some(p) = self.0.take() {
            p.metrics.rpc(p.method, code, p.refused, p.t0);
        }
    }

    fn set_refused(&mut self) {
        if let Some(p) = self.0.as_mut() {
            p.refused = true;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish("Canceled");
    }
}

pin_project_lite::pin_project! {
    /// A reply body that records its request when the trailers (or the end) go by.
    pub struct MetricsBody<B> {
        #[pin]
        inner: B,
        recorder: Recorder,
    }
}

impl<B: Body> Body for MetricsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(|t| t.get(GRPC_STATUS)) {
                    this.recorder.finish(code_label(status.as_bytes()));
                }
            }
            // A body error is a transport failure: the client sees no status.
            Poll::Ready(Some(Err(_))) => this.recorder.finish("Unknown"),
            Poll::Ready(None) => this.recorder.finish("Unknown"),
            Poll::Pending => {}
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

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Send + 'static,
{
    type Response = http::Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let pending = self.metrics.as_ref().map(|m| Pending {
            metrics: Arc::clone(m),
            method: method_label(req.uri().path()),
            t0: Instant::now(),
            refused: false,
        });
        Box::pin(async move {
            let mut recorder = Recorder(pending);
            let resp = match inner.call(req).await {
                Ok(resp) => resp,
                Err(e) => {
                    recorder.finish("Unknown");
                    return Err(e);
                }
            };
            if resp.extensions().get::<super::Refused>().is_some() {
                recorder.set_refused();
            }
            if let Some(status) = resp.headers().get(GRPC_STATUS) {
                recorder.finish(code_label(status.as_bytes()));
            }
            Ok(resp.map(|inner| MetricsBody { inner, recorder }))
        })
    }
}
