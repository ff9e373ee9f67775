//! A report of named checks, printed as the bash harness printed them (`[e2e] ok   NAME`,
//! `[e2e] FAIL NAME: expected '..', got '..'` on stderr, `N passed, M failed` on stdout), so
//! that CI logs and the people reading them see the same lines as before the port. Every check
//! runs; the caller turns [`Checks::all_passed`] into the exit code at the end.

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

    fn record(&mut self, name: &str, failure: Option<String>) -> bool {
        let line = outcome_line(name, failure.as_deref());
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
}
