//! The checks read from the figures, under the bash harness's names: each site's granted user
//! granted outside the cut (>= 95 %), and, with stale grants off, every decision after the
//! revocation denied and the cut site's decisions during the cut denied (fail closed). With
//! stale grants on, a decision may rightly be granted from a recent grant while the link is
//! down or slow, so "fail closed" is not asked (the figures are still printed).

use crate::checks::Checks;

use super::summary::Site;

/// The goal is 99.9 % (issue 22); this bound catches a regression (BENCHMARKS.md has the
/// figures).
const GRANTED_AT_LEAST: f64 = 95.0;

/// Whether `LEOTEST_STALE_GRANT_WINDOW` (`0s` when unset) turns stale grants off: zeros with
/// an optional unit, `^0+(ms|s|m|h)?$`.
pub(crate) fn stale_grants_off(window: &str) -> bool {
    let digits = ["ms", "s", "m", "h"]
        .iter()
        .find_map(|unit| window.strip_suffix(unit))
        .unwrap_or(window);
    !digits.is_empty() && digits.bytes().all(|b| b == b'0')
}

/// Records the checks of `sites`; `window` is `LEOTEST_STALE_GRANT_WINDOW` as set (`0s` when
/// unset).
pub(crate) fn record(sites: &[Site], window: &str, checks: &mut Checks) {
    let fail_closed = stale_grants_off(window);
    for s in sites {
        // Read from the printed figure, as the bash harness read it from the line.
        let granted = s.granted_pct();
        let enough = granted.parse::<f64>().is_ok_and(|g| g >= GRANTED_AT_LEAST);
        checks.check(
            &format!(
                "site {}: the granted user's decisions granted outside the cut (>= 95 %: {granted} %)",
                s.number
            ),
            "yes",
            if enough { "yes" } else { "no" },
        );
        if fail_closed {
            checks.check(
                &format!(
                    "site {}: every decision after the revocation denied",
                    s.number
                ),
                "100.0",
                &s.revoked_denied_pct(),
            );
        }
    }
    if fail_closed {
        for (number, cut) in sites
            .iter()
            .filter_map(|s| Some((s.number, s.cut_denied_pct()?)))
        {
            checks.check(
                &format!("site {number}: decisions during the cut fail closed"),
                "cut_denied=100.0%",
                &format!("cut_denied={cut}%"),
            );
        }
    } else {
        checks.log(&format!(
            "stale grants on (LEOTEST_STALE_GRANT_WINDOW={window}): fail-closed checks skipped"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_windows_are_off_and_others_on() {
        for w in ["0s", "0", "000", "0ms", "0m", "0h"] {
            assert!(stale_grants_off(w), "{w}");
        }
        for w in ["30s", "1", "10ms", "s", "", "0hs", "0 s", "0.0s", "00d"] {
            assert!(!stale_grants_off(w), "{w}");
        }
    }

    fn site(number: usize, granted: f64, revoked_denied: f64, cut: Option<f64>) -> Site {
        Site {
            number,
            n: 900,
            p50: 48.0,
            p99: 1500.0,
            granted,
            denied: 0,
            error: 0,
            revoked_denied,
            revoked_late_max: 0.0,
            cut_denied: cut,
        }
    }

    #[test]
    fn a_clean_run_passes_all_five() {
        let mut c = Checks::new("test");
        record(
            &[site(1, 1.0, 1.0, Some(1.0)), site(2, 0.999, 1.0, None)],
            "0s",
            &mut c,
        );
        assert_eq!(c.summary(), "5 passed, 0 failed");
    }

    #[test]
    fn the_granted_bound_reads_the_printed_figure() {
        // 94.9996 % prints as 95.00 and passes, as the bash harness read it from the line.
        let mut c = Checks::new("test");
        record(&[site(2, 0.949996, 1.0, None)], "0s", &mut c);
        assert_eq!(c.summary(), "2 passed, 0 failed");
        let mut c = Checks::new("test");
        record(&[site(2, 0.9499, 1.0, None)], "0s", &mut c);
        assert_eq!(c.summary(), "1 passed, 1 failed");
    }

    #[test]
    fn a_late_grant_or_an_open_cut_fails() {
        let mut c = Checks::new("test");
        record(&[site(1, 1.0, 0.99999, Some(0.9))], "0s", &mut c);
        // 99.999 % prints as 100.0 (rounded): the check reads the printed figure, as in bash.
        assert_eq!(c.summary(), "2 passed, 1 failed");
        let mut c = Checks::new("test");
        record(&[site(1, 1.0, 0.99, Some(1.0))], "0ms", &mut c);
        assert_eq!(c.summary(), "2 passed, 1 failed");
    }

    #[test]
    fn stale_grants_on_skip_the_fail_closed_checks() {
        let mut c = Checks::new("test");
        record(
            &[site(1, 1.0, 0.5, Some(0.0)), site(2, 1.0, 0.5, None)],
            "30s",
            &mut c,
        );
        assert_eq!(c.summary(), "2 passed, 0 failed");
    }
}
