//! Test harness: a real `leotest-orchestrator` process over TLS, and a runner for `leotest`.

#![allow(dead_code)]

pub mod certs;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "leotest-access-token";

/// The `leotest` binary under test.
pub fn leotest_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leotest"))
}

/// The orchestrator binary: `LEOTEST_ORCHESTRATOR_BIN`, else next to `leotest` in the target dir.
pub fn orchestrator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LEOTEST_ORCHESTRATOR_BIN") {
        return PathBuf::from(p);
    }
    let path = leotest_bin().with_file_name("leotest-orchestrator");
    assert!(
        path.exists(),
        "{} missing: run `cargo build -p leotest-orchestrator` first (or set LEOTEST_ORCHESTRATOR_BIN)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Result of one `leotest` run.
#[derive(Debug)]
pub struct Run {
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

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

/// A running orchestrator with its own certificate, data directory and port.
pub struct Orchestrator {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Orchestrator {
    pub fn start() -> Orchestrator {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("certs/server.crt");
        let key = dir.path().join("certs/server.key");
        let status = Command::new(orchestrator_bin())
            .arg("gen-cert")
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .stdout(Stdio::null())
            .status()
            .expect("run gen-cert");
        assert!(status.success(), "gen-cert failed");
        Orchestrator::start_with(dir, &cert, &key)
    }

    /// Starts one that serves the given certificate and key; `dir` becomes its working
    /// directory (and `leotest`'s).
    pub fn start_with(dir: tempfile::TempDir, cert: &Path, key: &Path) -> Orchestrator {
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("orchestrator.log")).expect("log file");
        let child = Command::new(orchestrator_bin())
            .current_dir(dir.path())
            .env_clear()
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--admin-access-token", ADMIN_TOKEN])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn orchestrator");
        let orch = Orchestrator { child, port, dir };
        orch.wait_ready();
        orch
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("orchestrator did not listen; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orchestrator.log")).unwrap_or_default()
    }

    pub fn cwd(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `leotest` as admin against this orchestrator (CA cert found at certs/server.crt
    /// in the working directory, like the original).
    pub fn leotest(&self, args: &[&str]) -> Run {
        self.leotest_as("admin", ADMIN_TOKEN, args)
    }

    pub fn leotest_as(&self, userid: &str, token: &str, args: &[&str]) -> Run {
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

impl Drop for Orchestrator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `leotest` command with a clean environment.
pub fn leotest_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(leotest_bin());
    cmd.current_dir(cwd).env_clear().env("LEOTEST_LOG", "off");
    cmd
}

/// Runs `leotest` without an orchestrator (usage, unreachable, kernel tests).
pub fn leotest_plain(cwd: &Path, args: &[&str]) -> Run {
    Run::from(leotest_cmd(cwd).args(args).output().expect("run leotest"))
}

/// The token printed by register_user / register_node (`... access_token=<hex>`).
pub fn token_from_message(message: &str) -> String {
    message
        .split("access_token=")
        .nth(1)
        .map(|t| t.split_whitespace().next().unwrap_or("").to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no access_token in {message:?}"))
}
