//! What the HA load saw: one record per request, summarised per stream around the failover
//! event (the moment a replica was killed), which arrives as a wall-clock time from outside.

use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::{ms, Samples};

/// The request streams of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// `cca.check` from the experiment container to the kernel service (which asks the
    /// orchestrator `kernel_access` through the balancer).
    Kernel,
    /// `update_run` through the balancer; each acknowledged run must be readable afterwards.
    UpdateRun,
    /// `get_runs` of the latest acknowledged run, through the balancer.
    GetRuns,
}

impl Stream {
    /// Every stream, in report order.
    pub const ALL: [Stream; 3] = [Stream::Kernel, Stream::UpdateRun, Stream::GetRuns];

    /// The stream's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Kernel => "kernel",
            Stream::UpdateRun => "update_run",
            Stream::GetRuns => "get_runs",
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Record {
    /// Which stream the request belongs to.
    pub stream: Stream,
    /// Scheduled start in milliseconds since the Unix epoch: the wall clock lines it up with
    /// the kill, which the test script takes on the host (same kernel clock).
    pub start_ms: f64,
    /// From the scheduled start to the answer (or to giving up), so queueing counts too.
    pub latency: Duration,
    /// `None` when the answer was the expected one.
    pub error: Option<String>,
}

impl Record {
    fn end_ms(&self) -> f64 {
        self.start_ms + self.latency.as_secs_f64() * 1000.0
    }

    fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Figures of one stream.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The stream summarised.
    pub stream: Stream,
    /// Requests sent.
    pub total: usize,
    /// Requests answered successfully.
    pub ok: usize,
    /// Failed requests that were already under way when the event happened.
    pub failed_in_flight: usize,
    /// Every other failure (all of them when there was no event).
    pub failed_other: usize,
    /// Median latency of all requests, failed ones included.
    pub p50: Duration,
    /// 99th percentile latency of all requests.
    pub p99: Duration,
    /// Latency of the slowest request.
    pub max_latency: Duration,
    /// Longest time without a successful answer: between two consecutive ones, or from the
    /// first scheduled request to the first answer, or from the last answer to the last
    /// scheduled request (an outage that lasts to the end counts too).
    pub max_gap: Duration,
    /// When that gap ended, in ms relative to the event (absolute when there was none).
    pub max_gap_end_ms: f64,
    /// Longest latency of the requests under way in the [`AROUND_EVENT_MS`] after the event.
    pub event_max_latency: Duration,
    /// Longest gap that overlaps the [`AROUND_EVENT_MS`] after the event.
    pub event_max_gap: Duration,
    /// A few distinct error texts, for the report.
    pub errors: Vec<String>,
}

/// Distinct error texts kept per stream.
const MAX_ERROR_TEXTS: usize = 3;
/// How long after the event its own figures are taken (failover is over well within it).
pub const AROUND_EVENT_MS: f64 = 5000.0;

/// Whether `[from, to]` overlaps the window after the event.
fn near_event(event_ms: Option<f64>, from: f64, to: f64) -> bool {
    event_ms.is_some_and(|ev| from <= ev + AROUND_EVENT_MS && to >= ev)
}

/// The kill, in Unix ms: `sent` when `docker kill` was called, `done` when it returned. The
/// replica dies somewhere in between, so a request under way at any moment of it is in flight.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// When `docker kill` was called, in Unix milliseconds.
    pub sent: f64,
    /// When `docker kill` returned, in Unix milliseconds.
    pub done: f64,
}

/// Summarises the records of `stream` around the kill `event`, if any.
pub fn summarize(records: &[Record], stream: Stream, event: Option<Event>) -> Summary {
    let event_ms = event.map(|e| e.done);
    let mine: Vec<&Record> = records.iter().filter(|r| r.stream == stream).collect();
    let mut samples = Samples::with_capacity(mine.len());
    let (mut max_latency, mut event_max_latency) = (Duration::ZERO, Duration::ZERO);
    let (mut ok, mut in_flight, mut other) = (0, 0, 0);
    let mut errors: Vec<String> = Vec::new();
    for r in &mine {
        samples.push(r.latency);
        max_latency = max_latency.max(r.latency);
        if near_event(event_ms, r.start_ms, r.end_ms()) {
            event_max_latency = event_max_latency.max(r.latency);
        }
        match &r.error {
            None => ok += 1,
            Some(e) => {
                let spans_event =
                    event.is_some_and(|ev| r.start_ms <= ev.done && r.end_ms() >= ev.sent);
                if spans_event {
                    in_flight += 1;
                } else {
                    other += 1;
                }
                if errors.len() < MAX_ERROR_TEXTS && !errors.contains(e) {
                    errors.push(e.clone());
                }
            }
        }
    }
    let mut ends: Vec<f64> = mine.iter().filter(|r| r.ok()).map(|r| r.end_ms()).collect();
    ends.sort_by(f64::total_cmp);
    let starts = mine.iter().map(|r| r.start_ms);
    let first = starts.clone().min_by(f64::total_cmp).unwrap_or(0.0);
    let last = starts.max_by(f64::total_cmp).unwrap_or(0.0);
    // Each span without an answer, as (from, to): before the first answer, between two, and
    // from the last answer to the last scheduled request.
    let mut spans: Vec<(f64, f64)> = ends.windows(2).map(|w| (w[0], w[1])).collect();
    match (ends.first(), ends.last()) {
        (Some(&a), Some(&z)) => {
            spans.push((first, a));
            spans.push((z, last));
        }
        _ => spans.push((first, last)),
    }
    let (mut max_gap, mut gap_end, mut event_gap) = (0.0f64, 0.0f64, 0.0f64);
    for (from, to) in spans {
        if near_event(event_ms, from, to) {
            event_gap = event_gap.max(to - from);
        }
        if to - from > max_gap {
            max_gap = to - from;
            gap_end = to;
        }
    }
    Summary {
        stream,
        total: mine.len(),
        ok,
        failed_in_flight: in_flight,
        failed_other: other,
        p50: samples.percentile(50.0),
        p99: samples.percentile(99.0),
        max_latency,
        max_gap: Duration::from_secs_f64(max_gap / 1000.0),
        max_gap_end_ms: gap_end - event_ms.unwrap_or(0.0),
        event_max_latency,
        event_max_gap: Duration::from_secs_f64(event_gap / 1000.0),
        errors,
    }
}

/// Outcome of reading back every acknowledged write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    /// `update_run` calls answered SUCCESS.
    pub acked: usize,
    /// Acknowledged runs found by the final `get_runs`.
    pub readable: usize,
    /// Runs whose `update_run` was not acknowledged but which were stored anyway (in flight).
    pub unacked_stored: usize,
    /// A few run ids that were acknowledged and are missing.
    pub missing: Vec<String>,
    /// Why the runs could not be read back (then none counts as readable).
    pub error: Option<String>,
}

impl Writes {
    /// Acknowledged runs that could not be read back: the writes the failover lost.
    pub fn lost(&self) -> usize {
        self.acked - self.readable
    }
}

/// The report: a table for people, then one `result` line per stream and one for the writes,
/// which the e2e script checks.
pub fn report(summaries: &[Summary], writes: &Writes, event_ms: Option<f64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n| stream | n | ok | failed in flight / other | p50 | p99 | max | max gap | max / gap in the 5 s after the kill |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in summaries {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} / {} |",
            m.stream.name(),
            m.total,
            m.ok,
            m.failed_in_flight,
            m.failed_other,
            ms(m.p50),
            ms(m.p99),
            ms(m.max_latency),
            ms(m.max_gap),
            ms(m.event_max_latency),
            ms(m.event_max_gap)
        );
    }
    for m in summaries {
        for e in &m.errors {
            let _ = writeln!(s, "error {}: {e}", m.stream.name());
        }
    }
    if let Some(e) = &writes.error {
        let _ = writeln!(s, "error writes: {e}");
    }
    let gap_end = if event_ms.is_some() {
        "gap_end_after_event_ms"
    } else {
        "gap_end_ms"
    };
    for m in summaries {
        let _ = writeln!(
            s,
            "result stream={} n={} ok={} failed_in_flight={} failed_other={} max_latency_ms={:.0} max_gap_ms={:.0} {gap_end}={:.0} kill_max_latency_ms={:.0} kill_max_gap_ms={:.0}",
            m.stream.name(),
            m.total,
            m.ok,
            m.failed_in_flight,
            m.failed_other,
            m.max_latency.as_secs_f64() * 1000.0,
            m.max_gap.as_secs_f64() * 1000.0,
            m.max_gap_end_ms,
            m.event_max_latency.as_secs_f64() * 1000.0,
            m.event_max_gap.as_secs_f64() * 1000.0
        );
    }
    let _ = writeln!(
        s,
        "result writes acked={} readable={} lost={} unacked_stored={}{}",
        writes.acked,
        writes.readable,
        writes.lost(),
        writes.unacked_stored,
        if writes.missing.is_empty() {
            String::new()
        } else {
            format!(" missing={}", writes.missing.join(","))
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stream: Stream, start_ms: f64, latency_ms: u64, error: Option<&str>) -> Record {
        Record {
            stream,
            start_ms,
            latency: Duration::from_millis(latency_ms),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn failures_spanning_the_event_are_in_flight_the_rest_are_not() {
        let records = vec![
            rec(Stream::Kernel, 1000.0, 10, None),
            rec(Stream::Kernel, 1090.0, 50, Some("reset")), // 1090..1140 spans 1100
            rec(Stream::Kernel, 1200.0, 10, Some("denied")), // after the event
            rec(Stream::Kernel, 1300.0, 10, None),
            rec(Stream::GetRuns, 1095.0, 50, Some("other stream")),
        ];
        let s = summarize(&records, Stream::Kernel, Some(at(1100.0)));
        assert_eq!((s.total, s.ok), (4, 2));
        assert_eq!((s.failed_in_flight, s.failed_other), (1, 1));
        assert_eq!(s.errors, vec!["reset".to_string(), "denied".to_string()]);
        // Successes ended at 1010 and 1310: a 300 ms gap ending 210 ms after the event.
        assert_eq!(s.max_gap, Duration::from_millis(300));
        assert!(
            (s.max_gap_end_ms - 210.0).abs() < 1e-6,
            "{}",
            s.max_gap_end_ms
        );
        assert_eq!(s.max_latency, Duration::from_millis(50));
        // Around the event: the 50 ms request in flight, and the 300 ms gap overlapping it.
        assert_eq!(s.event_max_latency, Duration::from_millis(50));
        assert_eq!(s.event_max_gap, Duration::from_millis(300));
    }

    fn at(ms: f64) -> Event {
        Event { sent: ms, done: ms }
    }

    #[test]
    fn a_failure_while_docker_kill_runs_is_in_flight() {
        // The replica died (and the request failed) before `docker kill` returned.
        let records = vec![rec(Stream::UpdateRun, 1000.0, 20, Some("transport error"))];
        let kill = Event {
            sent: 1010.0,
            done: 1100.0,
        };
        let s = summarize(&records, Stream::UpdateRun, Some(kill));
        assert_eq!((s.failed_in_flight, s.failed_other), (1, 0));
        let s = summarize(&records, Stream::UpdateRun, Some(at(1100.0)));
        assert_eq!((s.failed_in_flight, s.failed_other), (0, 1));
    }

    #[test]
    fn an_outage_lasting_to_the_end_is_a_gap() {
        let mut records = vec![rec(Stream::GetRuns, 0.0, 10, None)];
        for i in 1..=40 {
            records.push(rec(Stream::GetRuns, 100.0 * i as f64, 5, Some("down")));
        }
        let s = summarize(&records, Stream::GetRuns, Some(at(50.0)));
        // Last answer at 10 ms, last scheduled request at 4000 ms.
        assert_eq!(s.max_gap, Duration::from_millis(3990));
        assert_eq!(s.failed_other, 40);
    }

    #[test]
    fn without_an_event_every_failure_counts() {
        let records = vec![rec(Stream::UpdateRun, 0.0, 5, Some("x"))];
        let s = summarize(&records, Stream::UpdateRun, None);
        assert_eq!((s.failed_in_flight, s.failed_other), (0, 1));
        assert_eq!(s.max_gap, Duration::ZERO);
    }

    #[test]
    fn report_has_one_result_line_per_stream_and_the_lost_writes() {
        let records = vec![rec(Stream::Kernel, 0.0, 5, None)];
        let sums: Vec<Summary> = Stream::ALL
            .iter()
            .map(|s| summarize(&records, *s, Some(at(1.0))))
            .collect();
        let writes = Writes {
            acked: 3,
            readable: 2,
            unacked_stored: 1,
            missing: vec!["r-2".into()],
            error: None,
        };
        let text = report(&sums, &writes, Some(1.0));
        assert_eq!(text.matches("result stream=").count(), 3, "{text}");
        assert!(
            text.contains("result writes acked=3 readable=2 lost=1 unacked_stored=1 missing=r-2"),
            "{text}"
        );
    }
}
