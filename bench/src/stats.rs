//! Latency samples, percentiles and the table / ratio lines every benchmark prints.

use std::fmt::Write as _;
use std::time::Duration;

/// Latency samples of one measured case.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: bool,
    values: Vec<Duration>,
}

impl Samples {
    /// An empty set with room for `n` latencies.
    pub fn with_capacity(n: usize) -> Self {
        Samples {
            sorted: false,
            values: Vec::with_capacity(n),
        }
    }

    /// Adds one latency.
    pub fn push(&mut self, d: Duration) {
        self.sorted = false;
        self.values.push(d);
    }

    /// Adds all latencies of `other`.
    pub fn extend(&mut self, other: Samples) {
        self.sorted = false;
        self.values.extend(other.values);
    }

    /// Number of latencies.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are no latencies.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Nearest-rank percentile (`p` in 0..=100); zero when there are no samples.
    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.values.is_empty() {
            return Duration::ZERO;
        }
        if !self.sorted {
            self.values.sort_unstable();
            self.sorted = true;
        }
        let n = self.values.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.values[rank.clamp(1, n) - 1]
    }
}

/// One row of a result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Name of the measured case.
    pub case: String,
    /// Number of samples.
    pub count: usize,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Requests per second, when the case measures throughput.
    pub rps: Option<f64>,
}

impl Row {
    /// A row for `case` from `samples` (sorted in place for the percentiles).
    pub fn new(case: impl Into<String>, samples: &mut Samples, rps: Option<f64>) -> Self {
        Row {
            case: case.into(),
            count: samples.len(),
            p50: samples.percentile(50.0),
            p99: samples.percentile(99.0),
            rps,
        }
    }
}

/// Milliseconds with enough digits for sub-millisecond figures.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.3} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A Markdown table (it reads fine on a terminal too).
pub fn table(title: &str, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### {title}\n");
    let _ = writeln!(s, "| case | n | p50 | p99 | req/s |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for r in rows {
        let rps = r.rps.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.case,
            r.count,
            ms(r.p50),
            ms(r.p99),
            rps
        );
    }
    s
}

/// `ratio: <what> = <x>` with the two absolute values it came from.
pub fn ratio_line(what: &str, ours: f64, baseline: f64, unit: &str) -> String {
    let r = if baseline > 0.0 {
        ours / baseline
    } else {
        f64::NAN
    };
    format!("ratio: {what} = {r:.3} ({ours:.3} {unit} / {baseline:.3} {unit})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for i in (1..=100u64).rev() {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.percentile(50.0), Duration::from_millis(50));
        assert_eq!(s.percentile(99.0), Duration::from_millis(99));
        assert_eq!(s.percentile(100.0), Duration::from_millis(100));
        assert_eq!(s.percentile(0.0), Duration::from_millis(1));
        assert_eq!(Samples::default().percentile(50.0), Duration::ZERO);
    }

    #[test]
    fn ratio_reports_both_values() {
        let l = ratio_line("x", 2.0, 4.0, "ms");
        assert!(l.starts_with("ratio: x = 0.500"), "{l}");
        assert!(ratio_line("x", 1.0, 0.0, "ms").contains("NaN"));
    }
}
