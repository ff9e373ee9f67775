//! Client test harness: the shared orchestrator harness (leotest-test-support) and a runner
//! for the `leotest` binary under test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Each test binary uses a different part of this (`use support::*`).
#[allow(unused_imports)]
pub(crate) use leotest_test_support::{
    certs, free_port, token_from_message, Orchestrator, ADMIN_TOKEN,
};

/// The `leotest` binary under test.
pub(crate) fn leotest_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leotest"))
}

/// A started orchestrator (the shared harness) with its own certificate and directory.
pub(crate) fn orchestrator() -> Orchestrator {
    Orchestrator::builder().start_blocking()
}

/// One that serves the given certificate and key; `dir` becomes its working directory (and
/// `leotest`'s).
pub(crate) fn orchestrator_with(dir: tempfile::TempDir, cert: &Path, key: &Path) -> Orchestrator {
    Orchestrator::builder()
        .dir(dir)
        .cert(cert, key)
        .start_blocking()
}

/// Result of one `leotest` run.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    pub(crate) fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

/// Runs `leotest` against a started orchestrator.
pub(crate) trait Cli {
    /// As admin (CA cert found at certs/server.crt in the working directory, like the
    /// original).
    fn leotest(&self, args: &[&str]) -> Run;
    fn leotest_as(&self, userid: &str, token: &str, args: &[&str]) -> Run;
}

impl Cli for Orchestrator {
    fn leotest(&self, args: &[&str]) -> Run {
        self.leotest_as("admin", ADMIN_TOKEN, args)
    }

    fn leotest_as(&self, userid: &str, token: &str, args: &[&str]) -> Run {
        let out = leotest_cmd(self.cwd())
            .args([
                "--grpc-host",
                "127.0.0.1",
                "--grpc-port",
                &self.port.to_string(),
            ])
            .args(["--userid", userid])
            .env("LEOTEST_ACCESS_TOKEN", token)
            .args(args)
            .output()
            .expect("run leotest");
        Run::from(out)
    }
}

/// A `leotest` command with a clean environment.
pub(crate) fn leotest_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(leotest_bin());
    cmd.current_dir(cwd).env_clear().env("LEOTEST_LOG", "off");
    cmd
}

/// Runs `leotest` without an orchestrator (usage, unreachable, kernel tests).
pub(crate) fn leotest_plain(cwd: &Path, args: &[&str]) -> Run {
    Run::from(leotest_cmd(cwd).args(args).output().expect("run leotest"))
}

/// Registers USER `alice` (team `lab`) as the admin and returns her token.
pub(crate) fn register_alice(o: &Orchestrator) -> String {
    let r = o.leotest(&[
        "--json",
        "user",
        "--action=register",
        "--id=alice",
        "--name=Alice",
        "--role=user",
        "--team=lab",
    ]);
    r.expect(0);
    token_from_message(r.json()["message"].as_str().unwrap())
}
