//! The standard `process_*` metrics of Prometheus client libraries (CPU seconds, resident and
//! virtual memory, open and maximum file descriptors, start time), read from `/proc/self` at
//! scrape time, and a build-info gauge. Names and meanings are those of client_golang's
//! process collector, so existing dashboards and alerts (`process_resident_memory_bytes`,
//! `time() - process_start_time_seconds`) work unchanged.
//!
//! Values that cannot be read (not Linux, `/proc` not mounted) are left out of the scrape
//! rather than reported as 0.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc` reports times in USER_HZ ticks, which Linux fixes at 100 for every architecture
/// (`sysconf(_SC_CLK_TCK)`; the kernel's internal HZ may differ, the ABI does not).
const USER_HZ: f64 = 100.0;

/// Collects the `process_*` metrics of this process.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What one read of `/proc/self` found.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    start_time: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

/// Fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses, so the line is split after its last `)`): index 0 is field 3, `state`.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// `VmRSS:   1234 kB` → bytes.
fn status_kb(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map(|kb| kb.saturating_mul(1024))
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn parse(stat: &str, status: &str, limits: &str, proc_stat: &str, fds: Option<i64>) -> Sample {
    let f = stat_fields(stat);
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15, starttime field 22 (1-based).
    let cpu_seconds = match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Some((u + s) / USER_HZ),
        _ => None,
    };
    let start_time = match (ticks(19), boot_time(proc_stat)) {
        (Some(start), Some(boot)) => Some(boot + start / USER_HZ),
        _ => None,
    };
    Sample {
        cpu_seconds,
        start_time,
        resident_bytes: status_kb(status, "VmRSS"),
        virtual_bytes: status_kb(status, "VmSize"),
        open_fds: fds,
        max_fds: max_fds(limits),
    }
}

fn read_self() -> Sample {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX));
    parse(
        &read("/proc/self/stat"),
        &read("/proc/self/status"),
        &read("/proc/self/limits"),
        &read("/proc/stat"),
        fds,
    )
}

fn gauge<T>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: Option<T>,
) -> fmt::Result
where
    ConstGauge<T>: EncodeMetric,
{
    let Some(v) = v else { return Ok(()) };
    let g = ConstGauge::new(v);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = read_self();
        if let Some(cpu) = s.cpu_seconds {
            let c = ConstCounter::new(cpu);
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        let e = &mut encoder;
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            s.resident_bytes,
        )?;
        gauge(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            s.virtual_bytes,
        )?;
        gauge(
            e,
            "process_open_fds",
            "Number of open file descriptors.",
            s.open_fds,
        )?;
        gauge(
            e,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            s.max_fds,
        )?;
        gauge(
            e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            s.start_time,
        )
    }
}

/// A gauge `<name>` (ending in `_build_info`) with value 1 and the build's `version` label,
/// the usual way to expose what is deployed (`count by (version) (..._build_info)`).
#[derive(Debug)]
pub struct BuildInfo {
    name: &'static str,
    help: &'static str,
    version: &'static str,
}

impl BuildInfo {
    /// A collector for `<name>` with its help text and the version label; boxed for registration.
    pub fn new(name: &'static str, help: &'static str, version: &'static str) -> Box<BuildInfo> {
        Box::new(BuildInfo {
            name,
            help,
            version,
        })
    }
}

impl Collector for BuildInfo {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let g = ConstGauge::new(1i64);
        let mut m = encoder.encode_descriptor(self.name, self.help, None, g.metric_type())?;
        let labels = [("version", self.version)];
        let family = m.encode_family(&labels)?;
        g.encode(family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 12345 \
                    999 1 2 3";
        let status = "Name:\tx\nVmSize:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        let limits = "Limit Soft Limit Hard Limit Units\nMax open files 1024 4096 files\n";
        let s = parse(stat, status, limits, "cpu 1 2\nbtime 1700000000\n", Some(7));
        assert_eq!(
            s,
            Sample {
                cpu_seconds: Some(3.0),
                start_time: Some(1_700_000_123.45),
                resident_bytes: Some(1024 * 1024),
                virtual_bytes: Some(2048 * 1024),
                open_fds: Some(7),
                max_fds: Some(1024),
            }
        );
        assert_eq!(parse("", "", "", "", None), Sample::default());
    }

    #[test]
    fn this_process_is_described() {
        let mut r = Registry::default();
        r.register_collector(Box::new(ProcessCollector));
        r.register_collector(BuildInfo::new("demo_build_info", "Build.", "1.2.3"));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).expect("encode");
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(out.contains(&format!("\n{name}")), "{name}: {out}");
        }
        assert!(
            out.contains("demo_build_info{version=\"1.2.3\"} 1\n"),
            "{out}"
        );
    }
}
