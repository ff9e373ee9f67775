//! Why an orchestrator did not start, as a value: the benchmarks report it as an error of their
//! own, the tests panic with [`report`] (the whole chain of causes, the log included).

use std::path::PathBuf;
use std::process::ExitStatus;

/// Why [`Builder::try_start`](super::Builder::try_start) (or a certificate) failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file, directory or process operation of the harness failed.
    #[error("{what}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
    /// No orchestrator binary where the default looks (`cargo build` has not made it).
    #[error(
        "{} missing: run `cargo build -p leotest-orchestrator` first (or set \
         LEOTEST_ORCHESTRATOR_BIN)",
        .0.display()
    )]
    NoBinary(PathBuf),
    /// The binary's `gen-cert` exited with an error.
    #[error("{} gen-cert failed: {status}", bin.display())]
    GenCert {
        /// The binary that was asked.
        bin: PathBuf,
        /// How it exited.
        status: ExitStatus,
    },
    /// Every port of the walk below the ephemeral range was taken.
    #[error("no free port below the ephemeral range")]
    NoFreePort,
    /// The process exited or stayed silent on every attempt.
    #[error("orchestrator did not start ({attempts} attempts); log:\n{log}")]
    NotReady {
        /// Launches tried, each on a fresh port.
        attempts: usize,
        /// Everything the process wrote to stderr, across the attempts.
        log: String,
    },
}

impl StartError {
    /// An [`StartError::Io`] saying what failed.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| StartError::Io { what, source }
    }
}

/// `e` and its causes on one line each joined by `: `, for a test's panic message.
pub(crate) fn report(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Panics with [`report`]: the tests' side of a failed start.
pub(crate) fn fail(e: &StartError) -> ! {
    panic!("{}", report(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_the_step_and_the_cause() {
        let e = StartError::io("open /x/orchestrator.log")(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ));
        assert_eq!(report(&e), "open /x/orchestrator.log: no such file");
    }

    #[test]
    fn not_ready_carries_the_log() {
        let e = StartError::NotReady {
            attempts: 5,
            log: "Error: cannot listen".into(),
        };
        assert_eq!(
            report(&e),
            "orchestrator did not start (5 attempts); log:\nError: cannot listen"
        );
    }

    #[test]
    fn missing_binary_says_how_to_build_it() {
        let msg = StartError::NoBinary(PathBuf::from("/t/leotest-orchestrator")).to_string();
        assert!(
            msg.starts_with("/t/leotest-orchestrator missing: run `cargo build"),
            "{msg}"
        );
    }
}
