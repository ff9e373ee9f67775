//! What the failover test reads from leotest-ha-load's output (bench/src/ha/record.rs): its
//! `result stream=NAME key=value ...` and `result writes key=value ...` lines and the
//! `# leotest-ha-load: job JOB, ...` header, and the CLI's JSON answer listing the job's runs.
//! Figures stay text, as the script's awk printed them: a missing one fails its check.

/// The value of `key` on the `result` line of `stream` (`kernel`, `update_run`, `get_runs`,
/// or `writes` for the writes line), one a line when several lines match; empty when none.
/// As the script's awk: fields split on blanks, each `key=value` at its first `=`.
pub(crate) fn result(output: &str, stream: &str, key: &str) -> String {
    let mut found = Vec::new();
    for line in output.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() != Some("result") {
            continue;
        }
        let mut id = "";
        for field in fields {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            // awk's split keeps the text up to a second `=` only.
            let v = v.split('=').next().unwrap_or_default();
            match k {
                "writes" => id = "writes",
                "stream" => id = v,
                _ => {}
            }
            if id == stream && k == key {
                found.push(v);
            }
        }
    }
    found.join("\n")
}

/// The job id the load wrote its runs under, from `# leotest-ha-load: job JOB, ...`.
pub(crate) fn job(output: &str) -> String {
    output
        .lines()
        .filter(|l| l.starts_with("# leotest-ha-load: job"))
        .map(|l| {
            l.split_whitespace()
                .nth(3)
                .unwrap_or_default()
                .replacen(',', "", 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many runs `leotest --json run --action=get` listed (`runs`, none when absent), or why
/// its answer could not be read: the check then fails showing it.
pub(crate) fn stored_runs(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v) => match v.get("runs") {
            None => "0".to_string(),
            Some(serde_json::Value::Array(runs)) => runs.len().to_string(),
            Some(other) => format!("runs is not a list: {other}"),
        },
        Err(e) => format!("not the CLI's JSON ({e}): {json}"),
    }
}

/// A figure of the output as a number, 0 when missing (bash's `${acked:-0}`); `None` when it
/// is there but not a number.
pub(crate) fn number_or_zero(figure: &str) -> Option<u64> {
    if figure.is_empty() {
        Some(0)
    } else {
        figure.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
# leotest-ha-load: job e2e-ha-1796688000000, 30 s, kernel 20/s, update_run 20/s, get_runs 10/s, 4 connections, deadline 3000 ms
# event (replica killed) at +10.2 s

| stream | n | ok | failed in flight / other | p50 | p99 | max | max gap | max / gap in the 5 s after the kill |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
error update_run: status: Unavailable, message: \"result stream=x failed_other=9\"
result stream=kernel n=600 ok=600 failed_in_flight=0 failed_other=0 max_latency_ms=41 max_gap_ms=95 gap_end_after_event_ms=3 kill_max_latency_ms=12 kill_max_gap_ms=60
result stream=update_run n=600 ok=598 failed_in_flight=2 failed_other=1 max_latency_ms=1250 max_gap_ms=1300 gap_end_after_event_ms=40 kill_max_latency_ms=1250 kill_max_gap_ms=1300
result stream=get_runs n=300 ok=300 failed_in_flight=0 failed_other=0 max_latency_ms=900 max_gap_ms=950 gap_end_after_event_ms=20 kill_max_latency_ms=900 kill_max_gap_ms=950
result writes acked=598 readable=598 lost=0 unacked_stored=1 missing=r-1,r-2
";

    #[test]
    fn result_lines_give_each_streams_figures() {
        assert_eq!(result(OUTPUT, "kernel", "failed_other"), "0");
        assert_eq!(result(OUTPUT, "update_run", "failed_other"), "1");
        assert_eq!(result(OUTPUT, "update_run", "max_gap_ms"), "1300");
        assert_eq!(result(OUTPUT, "get_runs", "max_latency_ms"), "900");
        assert_eq!(result(OUTPUT, "writes", "acked"), "598");
        assert_eq!(result(OUTPUT, "writes", "unacked_stored"), "1");
        assert_eq!(result(OUTPUT, "writes", "missing"), "r-1,r-2");
        // Only lines that start with `result` count (not an error quoting one).
        assert_eq!(result(OUTPUT, "x", "failed_other"), "");
        assert_eq!(result(OUTPUT, "kernel", "no_such_key"), "");
        assert_eq!(
            result("leotest-ha-load: connection refused", "writes", "lost"),
            ""
        );
    }

    #[test]
    fn a_repeated_result_shows_every_value() {
        let twice = "result writes lost=0\nresult writes lost=2\n";
        assert_eq!(result(twice, "writes", "lost"), "0\n2");
    }

    #[test]
    fn the_header_names_the_job() {
        assert_eq!(job(OUTPUT), "e2e-ha-1796688000000");
        assert_eq!(job("leotest-ha-load: error\n"), "");
    }

    #[test]
    fn stored_runs_are_counted_from_the_clis_json() {
        assert_eq!(
            stored_runs(r#"{"runs": [{"runid": "a"}, {"runid": "b", "x": {"runid": "c"}}]}"#),
            "2"
        );
        assert_eq!(stored_runs(r#"{"runs": []}"#), "0");
        assert_eq!(stored_runs("{}"), "0");
        assert!(stored_runs(r#"{"runs": 3}"#).starts_with("runs is not a list"));
        assert!(stored_runs("").starts_with("not the CLI's JSON"));
    }

    #[test]
    fn missing_figures_count_as_zero_and_garbage_is_refused() {
        assert_eq!(number_or_zero(""), Some(0));
        assert_eq!(number_or_zero("598"), Some(598));
        assert_eq!(number_or_zero("598\n600"), None);
    }
}
