//! The figures of a run, computed from the probes' lines as the Python snippet of the bash
//! harness computed them, and the one summary line it printed (BENCHMARKS.md and CI logs read
//! it, so its format is kept to the character, Python's `nan` included):
//!
//! `e2e-sites LINK: site1: n=.. p50=..ms p99=..ms granted=..% (not: N denied, M error)
//! revoked_denied=..% revoked_late_max=..ms cut_denied=..%; site2: ...`
//!
//! Times are milliseconds since the epoch, on the host's clock for the marks (cut, restore,
//! revocation) and on the containers' (the same kernel's) for the decisions.

/// One decision of a probe: `d <sent_ms> <latency_ms> <outcome>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// When it was sent, ms since the epoch.
    pub(crate) sent_ms: i64,
    /// How long its answer took, ms.
    pub(crate) latency_ms: f64,
    /// `granted`, `denied` or `error` (anything else is counted as "not granted" only).
    pub(crate) outcome: String,
}

impl Decision {
    /// When its answer came (a float, as Python's `int + float`).
    fn answered(&self) -> f64 {
        self.sent_ms as f64 + self.latency_ms
    }

    fn granted(&self) -> bool {
        self.outcome == "granted"
    }
}

/// The decisions of a probe's output; every other line (`# done ..`, errors, a line cut
/// short) is left out.
pub(crate) fn parse(output: &str) -> Vec<Decision> {
    output
        .lines()
        .filter_map(|line| {
            let p: Vec<&str> = line.split_whitespace().collect();
            match p.as_slice() {
                ["d", sent, latency, outcome] => Some(Decision {
                    sent_ms: sent.parse().ok()?,
                    latency_ms: latency.parse().ok()?,
                    outcome: (*outcome).to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// The marks the run made, ms since the epoch: the cut landed, the restore landed, the
/// orchestrator acknowledged the revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) cut_from: i64,
    pub(crate) cut_to: i64,
    pub(crate) revoked: i64,
}

/// The `q` quantile of `xs`: sorted, index `min(len - 1, int(q * len))`; NaN when empty.
pub(crate) fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return f64::NAN;
    }
    let i = (q * xs.len() as f64) as usize;
    xs[i.min(xs.len() - 1)]
}

/// `x` with `precision` decimals as Python's `format(x, ".Nf")`: rounded half to even on the
/// exact binary value (as Rust's formatting does), NaN written `nan`.
pub(crate) fn fixed(x: f64, precision: usize) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else {
        format!("{x:.precision$}")
    }
}

/// `part / max(1, whole)`.
fn share(part: usize, whole: usize) -> f64 {
    part as f64 / whole.max(1) as f64
}

/// One site's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Site {
    /// Its number (1, 2, ...).
    pub(crate) number: usize,
    /// Decisions in all.
    pub(crate) n: usize,
    /// Latency quantiles of the granted decisions outside the cut, before the revocation.
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    /// Share (0..1) of the decisions outside the cut, answered before the revocation, granted.
    pub(crate) granted: f64,
    /// Of those, how many were denied and how many failed.
    pub(crate) denied: usize,
    pub(crate) error: usize,
    /// Share of the decisions sent after the revocation not granted.
    pub(crate) revoked_denied: f64,
    /// The longest time after the revocation that a decision was answered "granted", ms.
    pub(crate) revoked_late_max: f64,
    /// For the cut site: share of the decisions sent and answered during the cut not granted.
    pub(crate) cut_denied: Option<f64>,
}

impl Site {
    /// The figures of site `number` from its decisions; `cut`: its uplink was the one cut.
    pub(crate) fn compute(number: usize, d: &[Decision], m: Marks, cut: bool) -> Self {
        let before: Vec<&Decision> = d
            .iter()
            .filter(|x| x.answered() < m.revoked as f64)
            .collect();
        let outside: Vec<&Decision> = before
            .iter()
            .copied()
            .filter(|x| !cut || x.answered() < m.cut_from as f64 || x.sent_ms > m.cut_to)
            .collect();
        let during: Vec<&Decision> = before
            .iter()
            .copied()
            .filter(|x| cut && x.sent_ms >= m.cut_from && x.answered() <= m.cut_to as f64)
            .collect();
        // Decisions sent after the acknowledgement must all be denied; one sent before it may
        // still be answered "granted" after it: that is how long the revoked user still got in.
        let after: Vec<&Decision> = d.iter().filter(|x| x.sent_ms > m.revoked).collect();
        let lat: Vec<f64> = outside
            .iter()
            .filter(|x| x.granted())
            .map(|x| x.latency_ms)
            .collect();
        let count =
            |xs: &[&Decision], f: &dyn Fn(&Decision) -> bool| xs.iter().filter(|x| f(x)).count();
        let revoked_late_max = d
            .iter()
            .filter(|x| x.granted())
            .map(|x| x.answered() - m.revoked as f64)
            .fold(0.0, |a: f64, b| if b > a { b } else { a });
        Self {
            number,
            n: d.len(),
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
            granted: share(count(&outside, &Decision::granted), outside.len()),
            denied: count(&outside, &|x| x.outcome == "denied"),
            error: count(&outside, &|x| x.outcome == "error"),
            revoked_denied: share(count(&after, &|x| !x.granted()), after.len()),
            revoked_late_max,
            cut_denied: cut.then(|| share(count(&during, &|x| !x.granted()), during.len())),
        }
    }

    /// The granted share as printed (`100.00`), the figure the >= 95 % check reads.
    pub(crate) fn granted_pct(&self) -> String {
        fixed(self.granted * 100.0, 2)
    }

    /// The revoked-denied share as printed (`100.0`).
    pub(crate) fn revoked_denied_pct(&self) -> String {
        fixed(self.revoked_denied * 100.0, 1)
    }

    /// The cut-denied share as printed (`100.0`), for the cut site.
    pub(crate) fn cut_denied_pct(&self) -> Option<String> {
        self.cut_denied.map(|c| fixed(c * 100.0, 1))
    }

    /// `siteK: n=.. p50=..ms ...`: this site's part of the summary line.
    pub(crate) fn part(&self) -> String {
        let mut s = format!(
            "site{}: n={} p50={}ms p99={}ms granted={}% (not: {} denied, {} error) \
             revoked_denied={}% revoked_late_max={}ms",
            self.number,
            self.n,
            fixed(self.p50, 1),
            fixed(self.p99, 1),
            self.granted_pct(),
            self.denied,
            self.error,
            self.revoked_denied_pct(),
            fixed(self.revoked_late_max, 0),
        );
        if let Some(c) = self.cut_denied_pct() {
            s.push_str(&format!(" cut_denied={c}%"));
        }
        s
    }
}

/// `e2e-sites LINK: site1: ...; site2: ...`.
pub(crate) fn line(link: &str, sites: &[Site]) -> String {
    let parts: Vec<String> = sites.iter().map(Site::part).collect();
    format!("e2e-sites {link}: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE1: &str = include_str!("testdata/site-1.out");
    const SITE2: &str = include_str!("testdata/site-2.out");
    const T0: i64 = 1_765_170_000_000;

    fn marks(cut_from: i64, cut_to: i64, revoked: i64) -> Marks {
        Marks {
            cut_from: T0 + cut_from,
            cut_to: T0 + cut_to,
            revoked: T0 + revoked,
        }
    }

    fn summary(link: &str, m: Marks) -> String {
        let sites = [
            Site::compute(1, &parse(SITE1), m, true),
            Site::compute(2, &parse(SITE2), m, false),
        ];
        line(link, &sites)
    }

    /// The expected lines were printed by the bash harness's Python snippet (`git show
    /// main:scripts/e2e-sites.sh`) on the same files and marks (testdata/).
    #[test]
    fn the_line_is_the_python_snippets() {
        assert_eq!(
            summary("leo", marks(2000, 3000, 5000)),
            "e2e-sites leo: site1: n=65 p50=55.4ms p99=1380.9ms granted=97.44% (not: 0 denied, 1 error) \
             revoked_denied=100.0% revoked_late_max=219ms cut_denied=100.0%; site2: n=62 p50=47.9ms \
             p99=1307.9ms granted=95.92% (not: 1 denied, 1 error) revoked_denied=100.0% revoked_late_max=132ms"
        );
        assert_eq!(
            summary("lan", marks(1000, 1500, 3500)),
            "e2e-sites lan: site1: n=65 p50=51.9ms p99=67.8ms granted=66.67% (not: 5 denied, 5 error) \
             revoked_denied=38.5% revoked_late_max=1719ms cut_denied=20.0%; site2: n=62 p50=47.9ms \
             p99=952.2ms granted=94.12% (not: 1 denied, 1 error) revoked_denied=38.5% revoked_late_max=1632ms"
        );
        assert_eq!(
            summary("leo", marks(2950, 3050, 5500)),
            "e2e-sites leo: site1: n=65 p50=55.4ms p99=1380.9ms granted=74.55% (not: 9 denied, 5 error) \
             revoked_denied=100.0% revoked_late_max=0ms cut_denied=0.0%; site2: n=62 p50=47.9ms \
             p99=1307.9ms granted=87.72% (not: 6 denied, 1 error) revoked_denied=100.0% revoked_late_max=0ms"
        );
    }

    #[test]
    fn no_decisions_print_nan_and_zero_shares() {
        let m = Marks {
            cut_from: 1,
            cut_to: 2,
            revoked: 3,
        };
        let sites = [
            Site::compute(1, &[], m, true),
            Site::compute(2, &[], m, false),
        ];
        assert_eq!(
            line("wan", &sites),
            "e2e-sites wan: site1: n=0 p50=nanms p99=nanms granted=0.00% (not: 0 denied, 0 error) \
             revoked_denied=0.0% revoked_late_max=0ms cut_denied=0.0%; site2: n=0 p50=nanms \
             p99=nanms granted=0.00% (not: 0 denied, 0 error) revoked_denied=0.0% revoked_late_max=0ms"
        );
    }

    #[test]
    fn only_well_formed_decision_lines_count() {
        let d = parse(
            "d 1000 48.5 granted\n# done 2000\nd 12 x granted\nd 1 2 granted extra\n\
             leotest-sites-probe: refused\n  d   1001  7  error  \nD 1 2 granted\n",
        );
        assert_eq!(
            d,
            [
                Decision {
                    sent_ms: 1000,
                    latency_ms: 48.5,
                    outcome: "granted".into()
                },
                Decision {
                    sent_ms: 1001,
                    latency_ms: 7.0,
                    outcome: "error".into()
                },
            ]
        );
        assert_eq!(parse(SITE1).len(), 65);
    }

    #[test]
    fn the_percentile_takes_the_truncated_index() {
        let xs = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&xs, 0.5), 3.0); // int(2.5) = 2
        assert_eq!(percentile(&xs, 0.99), 5.0); // int(4.95) = 4
        assert_eq!(percentile(&xs, 1.0), 5.0); // min(len - 1, 5)
        assert_eq!(percentile(&[1.0, 2.0], 0.5), 2.0); // int(1.0) = 1
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    /// Python's `format(x, ".Nf")` for each (printed by python3).
    #[test]
    fn fixed_rounds_like_python() {
        for (x, p, python) in [
            (0.25, 1, "0.2"),
            (0.35, 1, "0.3"),
            (0.05, 1, "0.1"),
            (2.5, 0, "2"),
            (0.5, 0, "0"),
            (1.5, 0, "2"),
            (5.5, 0, "6"),
            (0.125, 2, "0.12"),
            (0.375, 2, "0.38"),
            (99.995, 2, "100.00"),
            (12.345, 2, "12.35"),
            (48.45, 1, "48.5"),
            (1694.75, 1, "1694.8"),
            (0.0, 1, "0.0"),
            (f64::NAN, 1, "nan"),
        ] {
            assert_eq!(fixed(x, p), python, "{x} .{p}f");
        }
    }

    fn d(sent_ms: i64, latency_ms: f64, outcome: &str) -> Decision {
        Decision {
            sent_ms,
            latency_ms,
            outcome: outcome.into(),
        }
    }

    #[test]
    fn decisions_fall_in_the_right_windows() {
        let m = Marks {
            cut_from: 1000,
            cut_to: 2000,
            revoked: 5000,
        };
        let decisions = [
            d(100, 50.0, "granted"),   // outside
            d(900, 100.0, "granted"),  // answered at the cut: overlaps, not outside
            d(1000, 1000.0, "denied"), // sent and answered in the cut: during
            d(1500, 600.0, "error"),   // answered after the cut: neither
            d(2001, 10.0, "denied"),   // outside, not granted
            d(4990, 10.0, "granted"),  // answered at the revocation: not before it
            d(4999, 30.0, "granted"),  // late: 29 ms after it
            d(5000, 5.0, "denied"),    // sent at it: not after it
            d(5001, 5.0, "denied"),    // after: denied
        ];
        let cut = Site::compute(1, &decisions, m, true);
        assert_eq!(cut.n, 9);
        assert_eq!((cut.p50, cut.p99), (50.0, 50.0));
        assert_eq!(cut.granted, 0.5);
        assert_eq!((cut.denied, cut.error), (1, 0));
        assert_eq!(cut.revoked_denied, 1.0);
        assert_eq!(cut.revoked_late_max, 29.0);
        assert_eq!(cut.cut_denied, Some(1.0));
        // Without a cut every decision answered before the revocation is outside it.
        let other = Site::compute(2, &decisions, m, false);
        assert_eq!(other.granted, 2.0 / 5.0);
        assert_eq!((other.denied, other.error), (2, 1));
        assert_eq!(other.cut_denied, None);
        assert!(!other.part().contains("cut_denied"));
        assert!(cut.part().ends_with(" cut_denied=100.0%"));
    }
}
