//! The testbed's metrics endpoints as the checks read them: a plain GET on the host's
//! loopback (leotest-metrics' small client, no `Accept`: text format, as curl asked), and
//! sample lookups by exact series (`leotest_metrics::names::sample`).

use std::net::{Ipv4Addr, SocketAddr};

/// `GET path` on `127.0.0.1:port`: the body of a 200, else what went wrong (as text, like
/// `curl -fsS ... 2>&1 || true`: a check then fails naming it).
pub(crate) async fn get(port: u16, path: &str) -> String {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match leotest_metrics::get_text(addr, path).await {
        Ok(r) if r.status == 200 => r.body,
        Ok(r) => format!("HTTP {} from {addr}{path}: {}", r.status, r.body),
        Err(e) => format!("GET {addr}{path}: {e}"),
    }
}

/// `counted` when `series` is above 0, else `value V` / `value missing`: series exist from
/// the start with 0, what counts is a value above it.
pub(crate) fn nonzero(body: &str, series: &str) -> String {
    match leotest_metrics::names::sample(body, series) {
        Some(v) if v > 0.0 => "counted".to_string(),
        Some(v) => format!("value {v}"),
        None => "value missing".to_string(),
    }
}

/// The lines of `text` that contain any of `needles` (`grep -E 'a|b'`), one a line.
pub(crate) fn lines_with(text: &str, needles: &[&str]) -> String {
    text.lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "# TYPE leotest_kernel_decisions_total counter\n\
        leotest_kernel_decisions_total{outcome=\"granted\"} 3\n\
        leotest_kernel_decisions_total{outcome=\"denied\"} 0\n";

    #[test]
    fn samples_are_found_by_exact_series() {
        let granted = "leotest_kernel_decisions_total{outcome=\"granted\"}";
        assert_eq!(nonzero(BODY, granted), "counted");
        assert_eq!(
            nonzero(BODY, "leotest_kernel_decisions_total{outcome=\"denied\"}"),
            "value 0"
        );
        assert_eq!(nonzero(BODY, "nope"), "value missing");
    }

    #[test]
    fn lines_with_any_needle() {
        assert_eq!(
            lines_with("a alice\nb\nc node-1\n", &["alice", "node-1"]),
            "a alice\nc node-1"
        );
        assert_eq!(lines_with(BODY, &["alice", "bob"]), "");
    }

    #[tokio::test]
    async fn a_closed_port_is_an_answer_not_an_abort() {
        // Port 1 on loopback: nothing listens there without root services on it.
        assert!(get(1, "/metrics")
            .await
            .starts_with("GET 127.0.0.1:1/metrics: "));
    }
}
