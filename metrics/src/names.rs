//! Metric names in an exposition and in a dashboard, so that the daemons' tests can hold
//! `docs/grafana-dashboard.json` to what they really expose.

use std::collections::BTreeSet;

/// The sample names of an exposition (`name{labels} value` lines; comments skipped).
pub fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// The value of the sample `series` (name and labels exactly as exposed), if present: the
/// one reading of an exposition that the tests, benchmarks and `cargo xtask` share.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every name starting with `prefix` in `text` (a dashboard's queries, say): maximal runs of
/// `[a-z0-9_:]` that begin with it.
pub fn names_with_prefix(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_found_by_its_exact_series() {
        let e = "# TYPE d counter\nd_total{o=\"granted\"} 3\nd_total{o=\"denied\"} 0\n";
        assert_eq!(sample(e, "d_total{o=\"granted\"}"), Some(3.0));
        assert_eq!(sample(e, "d_total{o=\"denied\"}"), Some(0.0));
        // a prefix of a series is not the series
        assert_eq!(sample(e, "d_total"), None);
        assert_eq!(sample(e, "d"), None);
    }

    #[test]
    fn names_are_found() {
        let e = "# TYPE a counter\na_total{x=\"1\"} 2\nb 3\n# EOF\n";
        assert_eq!(
            sample_names(e).into_iter().collect::<Vec<_>>(),
            vec!["a_total", "b"]
        );
        let d = r#"{"expr": "sum(rate(leo_x_total[5m])) / leo_y_bucket{le=\"1\"}"}"#;
        assert_eq!(
            names_with_prefix(d, "leo_").into_iter().collect::<Vec<_>>(),
            vec!["leo_x_total", "leo_y_bucket"]
        );
    }
}
