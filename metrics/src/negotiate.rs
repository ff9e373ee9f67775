//! Content negotiation of `/metrics`: OpenMetrics 1.0 for clients that ask for it (Prometheus
//! sends `Accept: application/openmetrics-text...`), the Prometheus text format 0.0.4 for
//! everyone else (`curl`, `promtool check metrics`, older scrapers), as client_golang does.
//!
//! `prometheus-client` encodes only OpenMetrics; the 0.0.4 body is derived from that
//! encoding, not written by a second encoder. The two formats share the sample lines; what
//! differs is in the metadata, and is rewritten here: a counter's `# TYPE`/`# HELP` name its
//! `_total` samples, OpenMetrics-only types map to their 0.0.4 equivalent (`info` and
//! `stateset` to `gauge`, `unknown` to `untyped`), and `# UNIT`, `# EOF`, `_created` samples
//! and exemplars are left out.

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text exposition.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which format a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 (`application/openmetrics-text`).
    OpenMetrics,
    /// Prometheus text format 0.0.4, the default.
    Text004,
}

impl Format {
    /// The format for an `Accept` header: OpenMetrics when it is named with a non-zero
    /// quality, else text 0.0.4 (also without a header).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or("");
                let q_zero = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text004
        }
    }

    /// The `Content-Type` header value for a reply in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Text004 => TEXT_004,
        }
    }
}

/// The 0.0.4 name and type of an OpenMetrics family.
fn family_004<'a>(name: &'a str, kind: &'a str) -> (String, &'a str) {
    match kind {
        "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
        "info" => (format!("{name}_info"), "gauge"),
        "stateset" => (name.to_string(), "gauge"),
        "unknown" => (name.to_string(), "untyped"),
        "gaugehistogram" => (name.to_string(), "histogram"),
        other => (name.to_string(), other),
    }
}

/// Rewrites an OpenMetrics exposition (as `prometheus-client` writes it: `# HELP`, then
/// `# TYPE`, then `# UNIT`, then samples, per family) into text format 0.0.4.
pub fn openmetrics_to_text004(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    // A HELP line waits for its TYPE line, which decides the family's 0.0.4 name.
    let mut help: Option<(&str, &str)> = None;
    let mut counter: Option<String> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name004, kind004) = family_004(name, kind);
            if let Some((h_name, text)) = help.take() {
                if h_name == name {
                    // OpenMetrics escapes `"` in HELP; 0.0.4 does not.
                    out.push_str(&format!(
                        "# HELP {name004} {}\n",
                        text.replace("\\\"", "\"")
                    ));
                }
            }
            out.push_str(&format!("# TYPE {name004} {kind004}\n"));
            counter = (kind == "counter").then(|| name.to_string());
            continue;
        }
        if line.starts_with('#') {
            // # UNIT, # EOF and any other comment.
            continue;
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or("");
        if counter
            .as_deref()
            .is_some_and(|c| sample_name == format!("{c}_created"))
        {
            continue;
        }
        // An exemplar follows the value after ` # `; label values here never hold ` # `.
        let sample = line.split_once(" # ").map_or(line, |(s, _)| s);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert_eq!(Format::negotiate(None), Format::Text004);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text004);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::Text004
        );
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::Text004
        );
    }

    #[test]
    fn families_are_renamed_and_openmetrics_only_lines_dropped() {
        let om = "# HELP a_requests Requests \\\"seen\\\".\n# TYPE a_requests counter\n\
                  a_requests_total{m=\"x\"} 3 # {trace=\"1\"} 1\na_requests_created 17\n\
                  # HELP a_latency_seconds Time.\n# TYPE a_latency_seconds histogram\n\
                  # UNIT a_latency_seconds seconds\na_latency_seconds_sum 0.5\n\
                  a_latency_seconds_count 1\na_latency_seconds_bucket{le=\"+Inf\"} 1\n\
                  # HELP b Build.\n# TYPE b info\nb_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text004(om),
            "# HELP a_requests_total Requests \"seen\".\n# TYPE a_requests_total counter\n\
             a_requests_total{m=\"x\"} 3\n\
             # HELP a_latency_seconds Time.\n# TYPE a_latency_seconds histogram\n\
             a_latency_seconds_sum 0.5\na_latency_seconds_count 1\n\
             a_latency_seconds_bucket{le=\"+Inf\"} 1\n\
             # HELP b_info Build.\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n"
        );
    }
}
