//! The metrics endpoint shared by the orchestrator and the kernel service: `GET /metrics`
//! (encoded by `prometheus-client` from the daemon's own [`Registry`]: OpenMetrics for
//! clients that accept it, the Prometheus text format 0.0.4 otherwise, see [`negotiate`]) and
//! `GET /healthz`, served over plain HTTP/1.1 by hyper. [`ProcessCollector`] and
//! [`BuildInfo`] add the usual `process_*` and `*_build_info` series.
//!
//! Everything about the listener is bounded, since it is reachable by whoever can reach its
//! address: connections held at once ([`MAX_CONNECTIONS`], [`MAX_PER_SOURCE`] per source; a
//! newcomer displaces the oldest idle one, see [`limiter`], so idle sockets cannot hold the
//! listener), the request head (hyper's smallest buffer), the time to send it and the time a
//! connection lives. Connections are closed after one answer (a scrape is one request every few seconds:
//! keep-alive would only let idle clients hold slots). The daemons register only bounded label
//! sets, and nothing on this endpoint is a secret: tokens and user ids are never labels.

#![forbid(unsafe_code)]

pub mod limiter;
pub mod names;
pub mod negotiate;
mod probe;
mod process;
mod sampled;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub use negotiate::Format;
pub use probe::{get, get_text, healthcheck, Reply};
pub use process::{BuildInfo, ProcessCollector};
pub use sampled::Sampled;

/// Content type of the OpenMetrics exposition (`prometheus_client::encoding::text`).
pub const CONTENT_TYPE: &str = negotiate::OPENMETRICS;
/// Connections held at once; a newcomer beyond it displaces the oldest idle one.
pub const MAX_CONNECTIONS: usize = 32;
/// Connections held at once from one source (an IPv4 address, an IPv6 /64): a scraper needs
/// one, a health check another.
pub const MAX_PER_SOURCE: usize = 4;
/// Time a client has to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection (request, encoding and answer).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read (hyper's minimum buffer).
const MAX_HEAD: usize = 8192;

/// Buckets of every latency histogram, in seconds: 100 µs doubling up to 3.3 s (an
/// in-memory decision is well under a millisecond; the decision deadline defaults to 3 s).
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16)
}

/// A labeled family of latency histograms, all with [`latency_buckets`].
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A latency histogram with [`latency_buckets`].
pub fn histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// An empty [`Histograms`] family.
pub fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(histogram as fn() -> Histogram)
}

/// What `/healthz` says: `true` answers 200 `ok`, `false` 503.
pub type Health = Arc<dyn Fn() -> bool + Send + Sync>;

/// A health function that is always healthy (the process answering is the check).
pub fn always_healthy() -> Health {
    Arc::new(|| true)
}

/// The registry and health check behind one listener.
struct Endpoint {
    registry: Registry,
    health: Health,
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    text(status, "text/plain; charset=utf-8", body.to_string())
}

fn answer(ep: &Endpoint, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/metrics" | "/healthz") {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n",
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    if path == "/healthz" {
        return if (ep.health)() {
            plain(StatusCode::OK, "ok\n")
        } else {
            plain(StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
        };
    }
    let format = Format::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &ep.registry) {
        Ok(()) => {
            if format == Format::Text004 {
                body = negotiate::openmetrics_to_text004(&body);
            }
            text(StatusCode::OK, format.content_type(), body)
        }
        Err(_) => {
            tracing::warn!("metrics encoding failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n")
        }
    }
}

/// Binds the metrics listener on `addr`. Any failure is one line that names the address; a
/// taken port also says how to choose another (node_exporter, on 9100, is a usual culprit).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let advice = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another program holds the port: choose a free one with --metrics-listen or \
             LEOTEST_METRICS_LISTEN)"
        } else {
            ""
        };
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {addr}: {e}{advice}"),
        )
    })
}

/// Serves `/metrics` (from `registry`) and `/healthz` (from `health`) on `listener` until the
/// task is dropped.
pub async fn serve(listener: TcpListener, registry: Registry, health: Health) {
    let ep = Arc::new(Endpoint { registry, health });
    let slots = limiter::Limiter::new(MAX_CONNECTIONS, MAX_PER_SOURCE, "metrics connection");
    loop {
        // Accept at once, always: a full listener displaces its oldest idle connection
        // instead of leaving newcomers (the scraper) in the backlog behind idle sockets.
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some((slot, displaced)) = slots.admit(peer.ip()) else {
            continue;
        };
        let ep = Arc::clone(&ep);
        tokio::spawn(async move {
            let slot = Arc::new(slot);
            let held = Arc::clone(&slot);
            let svc = service_fn(move |req: Request<Incoming>| {
                // Answering: not idle, so not displaced mid-answer.
                let busy = held.busy();
                let resp = answer(&ep, &req);
                async move {
                    drop(busy);
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                r = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection failed"),
                    Err(_) => tracing::debug!("metrics connection timed out"),
                },
                _ = displaced => tracing::debug!("metrics connection displaced"),
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::sync::atomic::{AtomicBool, Ordering};

    async fn start(health: Health) -> (SocketAddr, Counter) {
        let mut registry = Registry::default();
        let c = Counter::<u64>::default();
        registry.register("demo_requests", "Requests seen by the test", c.clone());
        let l = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(serve(l, registry, health));
        (addr, c)
    }

    #[tokio::test]
    async fn metrics_health_and_errors() {
        let up = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&up);
        let (addr, c) = start(Arc::new(move || flag.load(Ordering::SeqCst))).await;
        c.inc_by(3);
        let m = get(addr, "/metrics").await.expect("scrape");
        assert_eq!(m.status, 200);
        assert!(
            m.body.contains("# TYPE demo_requests counter\n"),
            "{}",
            m.body
        );
        assert!(m.body.contains("\ndemo_requests_total 3\n"), "{}", m.body);
        assert!(m.body.ends_with("# EOF\n"), "{}", m.body);
        assert!(m.content_type.starts_with("application/openmetrics-text"));
        // Without an Accept header naming OpenMetrics: the Prometheus text format.
        let t = get_text(addr, "/metrics").await.expect("scrape");
        assert_eq!(t.content_type, negotiate::TEXT_004);
        assert!(t
            .body
            .contains("# TYPE demo_requests_total counter\ndemo_requests_total 3\n"));
        assert!(!t.body.contains("# EOF"), "{}", t.body);
        assert_eq!(get(addr, "/healthz").await.expect("health").status, 200);
        assert!(healthcheck(addr).await);
        up.store(false, Ordering::SeqCst);
        assert_eq!(get(addr, "/healthz").await.expect("health").status, 503);
        assert!(!healthcheck(addr).await);
        assert_eq!(get(addr, "/").await.expect("root").status, 404);
    }

    #[tokio::test]
    async fn other_methods_are_refused() {
        let (addr, _) = start(always_healthy()).await;
        let r = probe::request(
            addr,
            "POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        )
        .await
        .expect("post");
        assert_eq!(r.status, 405);
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused_and_others_still_served() {
        let (addr, _) = start(always_healthy()).await;
        let long = format!(
            "GET /metrics HTTP/1.1\r\nx-pad: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let r = probe::request(addr, &long).await;
        assert!(r.map(|r| r.status != 200).unwrap_or(true));
        assert_eq!(get(addr, "/metrics").await.expect("scrape").status, 200);
    }

    #[tokio::test]
    async fn a_taken_port_is_one_clear_line() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let e = bind(addr).await.expect_err("port taken");
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(text.contains("--metrics-listen"), "{text}");
    }

    #[tokio::test]
    async fn idle_sockets_do_not_hold_the_listener() {
        let (addr, _) = start(always_healthy()).await;
        let mut idle = Vec::new();
        for _ in 0..200 {
            idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        let scrape = tokio::time::timeout(Duration::from_secs(3), get(addr, "/healthz")).await;
        assert_eq!(
            scrape.expect("answered in time").expect("health").status,
            200
        );
    }

    #[tokio::test]
    async fn healthcheck_fails_without_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        assert!(!healthcheck(addr).await);
    }
}
