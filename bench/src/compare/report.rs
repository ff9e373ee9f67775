//! The comparison's table: one row per figure, ratios (leotest-rs / original) first, then the
//! absolute values they come from.

use std::fmt::Write as _;

/// What a figure's numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    ReqPerSec,
    Millis,
    Seconds,
    MiB,
}

impl Unit {
    fn fmt(self, v: f64) -> String {
        match self {
            Unit::ReqPerSec => format!("{v:.0}/s"),
            Unit::Millis if v < 10.0 => format!("{v:.3} ms"),
            Unit::Millis => format!("{v:.1} ms"),
            Unit::Seconds if v < 10.0 => format!("{v:.3} s"),
            Unit::Seconds => format!("{v:.1} s"),
            Unit::MiB => format!("{v:.1} MiB"),
        }
    }

    /// Whether a larger ratio is better (throughput) or worse (time, memory).
    fn higher_is_better(self) -> bool {
        self == Unit::ReqPerSec
    }
}

/// One row: one or two values per side (e.g. p50 and p99, idle and after load).
#[derive(Debug, Clone)]
pub(super) struct Figure {
    pub name: String,
    pub unit: Unit,
    pub embedded: Option<Vec<f64>>,
    pub mongo: Option<Vec<f64>>,
    pub original: Option<Vec<f64>>,
}

fn values(unit: Unit, v: &Option<Vec<f64>>) -> String {
    match v {
        Some(v) if !v.is_empty() => v
            .iter()
            .map(|x| unit.fmt(*x))
            .collect::<Vec<_>>()
            .join(" / "),
        _ => "-".into(),
    }
}

fn ratios(ours: &Option<Vec<f64>>, orig: &Option<Vec<f64>>) -> String {
    match (ours, orig) {
        (Some(a), Some(b)) if !a.is_empty() && a.len() == b.len() => a
            .iter()
            .zip(b)
            .map(|(x, y)| {
                if *y > 0.0 {
                    let r = x / y;
                    if r >= 100.0 {
                        format!("{r:.0}")
                    } else if r >= 0.1 {
                        format!("{r:.2}")
                    } else {
                        format!("{r:.4}")
                    }
                } else {
                    "-".into()
                }
            })
            .collect::<Vec<_>>()
            .join(" / "),
        _ => "-".into(),
    }
}

/// The Markdown table "leotest-rs vs the Python original, same run".
pub(super) fn table(title: &str, figures: &[Figure]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### {title}\n");
    let _ = writeln!(
        s,
        "ratio = leotest-rs / original: above 1 is better for req/s, below 1 is better for \
         latency, CPU and memory.\n"
    );
    let _ = writeln!(
        s,
        "| figure | ratio, embedded | ratio, MongoDB-wire | leotest-rs, embedded | \
         leotest-rs, MongoDB-wire | Python original, MongoDB-wire | better |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
    for f in figures {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.name,
            ratios(&f.embedded, &f.original),
            ratios(&f.mongo, &f.original),
            values(f.unit, &f.embedded),
            values(f.unit, &f.mongo),
            values(f.unit, &f.original),
            if f.unit.higher_is_better() {
                "higher"
            } else {
                "lower"
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_come_first_and_pair_up() {
        let t = table(
            "t",
            &[Figure {
                name: "kernel_access p50 / p99".into(),
                unit: Unit::Millis,
                embedded: Some(vec![1.0, 2.0]),
                mongo: None,
                original: Some(vec![4.0, 40.0]),
            }],
        );
        let row = t.lines().last().expect("row");
        assert!(
            row.starts_with(
                "| kernel_access p50 / p99 | 0.25 / 0.0500 | - | 1.000 ms / 2.000 ms |"
            ),
            "{row}"
        );
        assert!(row.ends_with("| 4.000 ms / 40.0 ms | lower |"), "{row}");
    }

    #[test]
    fn missing_or_zero_baselines_give_no_ratio() {
        assert_eq!(ratios(&Some(vec![1.0]), &None), "-");
        assert_eq!(ratios(&Some(vec![1.0]), &Some(vec![0.0])), "-");
        assert_eq!(ratios(&Some(vec![250.0]), &Some(vec![2.0])), "125");
    }
}
