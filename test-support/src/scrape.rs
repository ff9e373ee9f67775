//! Reading a `/metrics` exposition the way Prometheus does: one GET, then samples by series.

use std::net::SocketAddr;

/// `GET /metrics` from `addr`: asserts a 200 with the OpenMetrics content type; the body.
pub async fn scrape(addr: SocketAddr) -> String {
    let r = leotest_metrics::get(addr, "/metrics")
        .await
        .expect("scrape /metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "{}",
        r.content_type
    );
    r.body
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The value of the sample `series`; panics with the exposition when it is missing.
pub fn value(body: &str, series: &str) -> f64 {
    sample(body, series).unwrap_or_else(|| panic!("{series} not in /metrics:\n{body}"))
}
