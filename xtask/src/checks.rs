//! A report of named checks, printed as the bash harness printed them (`[e2e] ok   NAME`,
//! `[e2e] FAIL NAME: expected '..', got '..'` on stderr, `N passed, M failed` on stdout), so
//! that CI logs and the people reading them see the same lines as before the port. Every check
//! runs; the caller turns [`Checks::all_passed`] into the exit code at the end. Besides the
//! substring and emptiness checks, the two kinds the failover test uses: a wait that reads
//! `N ms` and a bound (`value <= limit`), whose ok lines show the figure.

/// Counts of a run of checks, with the prefix its lines carry (`e2e`).
#[derive(Debug)]
pub(crate) struct Checks {
    prefix: &'static str,
    passed: usize,
    failed: usize,
}

impl Checks {
    /// An empty report whose lines start with `[prefix]`.
    pub(crate) fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            passed: 0,
            failed: 0,
        }
    }

    /// A progress line, `[prefix] message` on stderr.
    pub(crate) fn log(&self, message: &str) {
        eprintln!("[{}] {message}", self.prefix);
    }

    /// Passes when `actual` contains `expected` (bash's `[[ $actual == *"$expected"* ]]`).
    pub(crate) fn check(&mut self, name: &str, expected: &str, actual: &str) -> bool {
        let failure =
            (!actual.contains(expected)).then(|| format!("expected '{expected}', got '{actual}'"));
        self.record(name, failure)
    }

    /// Passes when `actual` is empty.
    pub(crate) fn check_empty(&mut self, name: &str, actual: &str) -> bool {
        let failure = (!actual.is_empty()).then(|| format!("expected nothing, got '{actual}'"));
        self.record(name, failure)
    }

    /// Passes when `actual` reads `N ms` (what a wait prints when it succeeded); the ok line
    /// carries it: `ok   NAME (N ms)`, else `FAIL NAME: ACTUAL`.
    pub(crate) fn check_ms(&mut self, name: &str, actual: &str) -> bool {
        if is_ms(actual) {
            self.record_detail(name, Some(actual), None)
        } else {
            self.record(name, Some(actual.to_string()))
        }
    }

    /// Passes when `value` is a whole number no greater than `limit` (bash's
    /// `[[ $value =~ ^[0-9]+$ ]] && [ "$value" -le "$limit" ]`): `ok   NAME (V <= L)`, else
    /// `FAIL NAME: V > L`. Both are text, as in the script: a missing figure fails.
    pub(crate) fn check_le(&mut self, name: &str, value: &str, limit: &str) -> bool {
        if at_most(value, limit) {
            self.record_detail(name, Some(&format!("{value} <= {limit}")), None)
        } else {
            self.record(name, Some(format!("{value} > {limit}")))
        }
    }

    fn record(&mut self, name: &str, failure: Option<String>) -> bool {
        self.record_detail(name, None, failure)
    }

    /// Records one outcome; `detail` is shown in parentheses on an ok line.
    fn record_detail(&mut self, name: &str, detail: Option<&str>, failure: Option<String>) -> bool {
        let line = detailed_line(name, detail, failure.as_deref());
        self.log(&line);
        match failure {
            None => self.passed += 1,
            Some(_) => self.failed += 1,
        }
        failure.is_none()
    }

    /// `N passed, M failed`, the last line of a run (on stdout).
    pub(crate) fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }

    /// Whether no check failed (the exit code).
    pub(crate) fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

/// `ok   NAME` or `FAIL NAME: why`: the text after the prefix.
fn outcome_line(name: &str, failure: Option<&str>) -> String {
    match failure {
        None => format!("ok   {name}"),
        Some(why) => format!("FAIL {name}: {why}"),
    }
}

/// [`outcome_line`], with `detail` in parentheses after an ok one: `ok   NAME (2 <= 3)`.
fn detailed_line(name: &str, detail: Option<&str>, failure: Option<&str>) -> String {
    match (failure, detail) {
        (None, Some(d)) => format!("{} ({d})", outcome_line(name, None)),
        (f, _) => outcome_line(name, f),
    }
}

/// `N ms`: digits, one space, `ms` (bash's `^[0-9]+\ ms$`).
fn is_ms(actual: &str) -> bool {
    actual
        .strip_suffix(" ms")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `value` is digits only and, as a number, at most `limit` (an integer, blanks around it
/// allowed as `[ -le ]` allows them).
fn at_most(value: &str, limit: &str) -> bool {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    match (value.parse::<i128>(), limit.trim().parse::<i128>()) {
        (Ok(v), Ok(l)) => v <= l,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_substring_passes_and_anything_else_fails() {
        let mut c = Checks::new("e2e");
        assert!(c.check("a", "= cubic", "net.ipv4.tcp_congestion_control = cubic"));
        assert!(!c.check(
            "b",
            "access_denied",
            "net.ipv4.tcp_congestion_control = cubic"
        ));
        assert!(c.check_empty("c", ""));
        assert!(!c.check_empty("d", "open x 10.0.0.1:9100"));
        assert_eq!(c.summary(), "2 passed, 2 failed");
        assert!(!c.all_passed());
    }

    #[test]
    fn waits_pass_when_they_read_milliseconds() {
        assert!(is_ms("0 ms") && is_ms("1234 ms"));
        for bad in [
            "timeout (last state: DOWN)",
            " ms",
            "12ms",
            "12 ms\n",
            "-1 ms",
            "",
        ] {
            assert!(!is_ms(bad), "{bad:?}");
        }
        let mut c = Checks::new("e2e-ha");
        assert!(c.check_ms("a", "250 ms"));
        assert!(!c.check_ms("b", "timeout (last state: none)"));
        assert_eq!(c.summary(), "1 passed, 1 failed");
    }

    #[test]
    fn bounds_need_a_whole_number_within_the_limit() {
        assert!(at_most("0", "0") && at_most("2", "3") && at_most("3000", "3000"));
        assert!(at_most("300", " 412 "));
        assert!(!at_most("3001", "3000"));
        // A missing or garbled figure fails rather than passing as 0.
        for bad in ["", "-1", "1.5", "2\n3", "x"] {
            assert!(!at_most(bad, "3000"), "{bad:?}");
        }
        assert!(!at_most("2", "") && !at_most("2", "two"));
        let mut c = Checks::new("e2e-ha");
        assert!(c.check_le("a", "0", "0"));
        assert!(!c.check_le("b", "", "0"));
        assert_eq!(c.summary(), "1 passed, 1 failed");
    }

    #[test]
    fn an_empty_report_passes() {
        let c = Checks::new("e2e");
        assert_eq!(c.summary(), "0 passed, 0 failed");
        assert!(c.all_passed());
    }

    #[test]
    fn lines_read_like_the_bash_harness() {
        assert_eq!(
            outcome_line("sandbox hostname", None),
            "ok   sandbox hostname"
        );
        assert_eq!(
            outcome_line("USER is denied", Some("expected 'access_denied', got 'x'")),
            "FAIL USER is denied: expected 'access_denied', got 'x'"
        );
    }

    #[test]
    fn figures_show_on_ok_lines_only() {
        assert_eq!(
            detailed_line("sessions", Some("2 <= 3"), None),
            "ok   sessions (2 <= 3)"
        );
        assert_eq!(
            detailed_line("sessions", Some("2 <= 3"), Some("4 > 3")),
            "FAIL sessions: 4 > 3"
        );
        assert_eq!(detailed_line("x", None, None), "ok   x");
    }
}
