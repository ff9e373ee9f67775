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

pub use leotest_metrics::names::sample;

/// The value of the sample `series`; panics with the exposition when it is missing.
pub fn value(body: &str, series: &str) -> f64 {
    sample(body, series).unwrap_or_else(|| panic!("{series} not in /metrics:\n{body}"))
}

/// Whether `promtool` (Debian's `prometheus` package) can be run. Absent, the caller skips
/// its check with a message, except under `CI`, where it must be there: this panics.
pub fn promtool_available() -> bool {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required in CI (apt-get install prometheus)"
        );
        eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
    }
    found
}

/// `promtool check metrics` on an exposition (text format 0.0.4); its complaints on failure.
pub fn promtool_check(body: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(body.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
