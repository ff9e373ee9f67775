//! [`Builder`]: how an [`Orchestrator`] is started. The tests use the defaults (the binary
//! cargo built, a certificate of its own `gen-cert`, `RUST_LOG=debug`, no other environment,
//! ready once it logs that it listens); the benchmarks name a binary, keep their environment,
//! log at `warn` and wait for the port instead, and report a failed start as an error.

use std::path::{Path, PathBuf};

use super::error::{fail, StartError};
use super::{try_orchestrator_bin, Orchestrator};
use crate::mongo::TestMongo;
use crate::ADMIN_TOKEN;

/// How the process is told where to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PortFlag {
    /// `--listen HOST:PORT`.
    Listen,
    /// `--grpc-port PORT` (every interface): binaries built before `--listen` existed.
    GrpcPort,
}

/// When a launch counts as started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ready {
    /// The log says "orchestrator listening" (the socket is bound by then); needs `info`.
    Logged,
    /// `127.0.0.1:PORT` accepts TCP connections (any log level, any binary).
    PortOpen,
}

/// What every launch of the process uses (kept for restarts).
#[derive(Debug, Clone)]
pub(super) struct LaunchOptions {
    pub(super) host: String,
    pub(super) env: Vec<(String, String)>,
    pub(super) inherit_env: bool,
    pub(super) log_level: String,
    pub(super) admin_token_by_env: bool,
    pub(super) port_flag: PortFlag,
    pub(super) ready: Ready,
}

/// How to start an [`Orchestrator`]; [`Orchestrator::builder`] has the defaults.
#[derive(Debug)]
pub struct Builder {
    dir: Option<tempfile::TempDir>,
    cert: Option<(PathBuf, PathBuf)>,
    bin: Option<PathBuf>,
    args: Vec<String>,
    admin_token: String,
    launch: LaunchOptions,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            dir: None,
            cert: None,
            bin: None,
            args: Vec::new(),
            admin_token: ADMIN_TOKEN.into(),
            launch: LaunchOptions {
                host: "127.0.0.1".into(),
                env: Vec::new(),
                inherit_env: false,
                log_level: "debug".into(),
                admin_token_by_env: false,
                port_flag: PortFlag::Listen,
                ready: Ready::Logged,
            },
        }
    }
}

impl Builder {
    /// Work in `dir` (it becomes the process's working directory); with no [`Builder::cert`],
    /// `dir/certs/server.{crt,key}` must exist already (see [`Orchestrator::gen_cert`]).
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Serve this certificate and key instead of `certs/server.{crt,key}` in the directory.
    pub fn cert(mut self, cert: &Path, key: &Path) -> Self {
        self.cert = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// Start the binary at `bin` (default [`orchestrator_bin`](super::orchestrator_bin); a
    /// relative path is taken from the current directory); it also makes the certificate when
    /// the harness makes one.
    pub fn bin(mut self, bin: &Path) -> Self {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// Listen on `host` (default `127.0.0.1`); e.g. `0.0.0.0` so that containers reach it.
    pub fn host(mut self, host: &str) -> Self {
        self.launch.host = host.into();
        self
    }

    /// Tell the process its port with `--grpc-port` (it binds every interface) instead of
    /// `--listen HOST:PORT`: a binary built before `--listen` existed.
    pub fn grpc_port_flag(mut self) -> Self {
        self.launch.port_flag = PortFlag::GrpcPort;
        self
    }

    /// Extra command-line flags, after the harness's own.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// The MongoDB database `mongo` instead of the embedded store.
    pub fn store(self, mongo: &TestMongo) -> Self {
        self.args(&mongo.server_args())
    }

    /// An environment variable for the process (which otherwise gets none but `RUST_LOG`, so
    /// that a developer's `LEOTEST_*` settings cannot change what a test sees).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.launch.env.push((key.into(), value.into()));
        self
    }

    /// Keep the caller's environment for the process (as an operator's shell would run it);
    /// [`Builder::env`] and `RUST_LOG` still apply on top.
    pub fn inherit_env(mut self) -> Self {
        self.launch.inherit_env = true;
        self
    }

    /// `RUST_LOG` of the process (default `debug`). Above `info` the "listening" line is not
    /// logged: combine with [`Builder::ready_on_port`].
    pub fn log_level(mut self, level: &str) -> Self {
        self.launch.log_level = level.into();
        self
    }

    /// Count a launch as started once `127.0.0.1:PORT` accepts TCP connections rather than
    /// once the log says it listens (for quiet log levels and binaries that log otherwise).
    pub fn ready_on_port(mut self) -> Self {
        self.launch.ready = Ready::PortOpen;
        self
    }

    /// The admin token (default [`ADMIN_TOKEN`]).
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = token.into();
        self
    }

    /// Hand the admin token over in `LEOTEST_ADMIN_ACCESS_TOKEN` (as compose files do) rather
    /// than on the command line.
    pub fn admin_token_in_env(mut self) -> Self {
        self.launch.admin_token_by_env = true;
        self
    }

    fn prepare(self) -> Result<Orchestrator, StartError> {
        let bin = match self.bin {
            Some(b) => b,
            None => try_orchestrator_bin()?,
        };
        // The process runs in its directory: a relative path would be looked up from there.
        let bin = std::path::absolute(&bin)
            .map_err(StartError::io(format!("make {} absolute", bin.display())))?;
        let dir = match self.dir {
            Some(d) => d,
            None => {
                let d =
                    tempfile::tempdir().map_err(StartError::io("create a temporary directory"))?;
                if self.cert.is_none() {
                    let certs = d.path().join("certs");
                    Orchestrator::try_gen_cert_at(
                        &bin,
                        &certs.join("server.crt"),
                        &certs.join("server.key"),
                    )?;
                }
                d
            }
        };
        let (cert, key) = self.cert.unwrap_or_else(|| {
            (
                dir.path().join("certs/server.crt"),
                dir.path().join("certs/server.key"),
            )
        });
        Ok(Orchestrator {
            dir,
            port: 0,
            extra_args: self.args,
            admin_token: self.admin_token,
            bin,
            cert,
            key,
            launch: self.launch,
            child: None,
        })
    }

    /// Starts it and waits until it is ready; a failure is an error for the caller to report
    /// (the benchmarks). The wait does not block the runtime.
    pub async fn try_start(self) -> Result<Orchestrator, StartError> {
        let mut o = self.prepare()?;
        o.try_launch().await?;
        Ok(o)
    }

    /// [`Builder::try_start`] for tests: panics with the reason (and the log) on failure.
    pub async fn start(self) -> Orchestrator {
        self.try_start().await.unwrap_or_else(|e| fail(&e))
    }

    /// Starts it from synchronous code; a failure is an error.
    pub fn try_start_blocking(self) -> Result<Orchestrator, StartError> {
        let mut o = self.prepare()?;
        o.try_launch_blocking()?;
        Ok(o)
    }

    /// Starts it from synchronous tests: panics with the reason on failure.
    pub fn start_blocking(self) -> Orchestrator {
        self.try_start_blocking().unwrap_or_else(|e| fail(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_an_error_not_a_panic() {
        let e = Orchestrator::builder()
            .bin(Path::new("/nonexistent/leotest-orchestrator"))
            .try_start_blocking()
            .err()
            .expect("no binary, no orchestrator");
        // The harness makes the certificate first, with the same binary.
        assert!(
            matches!(&e, StartError::Io { what, .. } if what.contains("gen-cert")),
            "{e:?}"
        );
    }

    #[test]
    fn a_process_that_exits_uses_up_the_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Orchestrator::builder()
            .bin(Path::new("/bin/false"))
            .dir(dir)
            .ready_on_port()
            .try_start_blocking()
            .err()
            .expect("/bin/false never listens");
        assert!(
            matches!(e, StartError::NotReady { attempts, .. } if attempts == Orchestrator::ATTEMPTS),
            "{e:?}"
        );
    }

    #[test]
    fn options_default_to_what_the_tests_expect() {
        let b = Orchestrator::builder();
        assert_eq!(b.launch.log_level, "debug");
        assert_eq!(b.launch.ready, Ready::Logged);
        assert_eq!(b.launch.port_flag, PortFlag::Listen);
        assert!(!b.launch.inherit_env);
        let b = b
            .log_level("warn")
            .ready_on_port()
            .grpc_port_flag()
            .inherit_env();
        assert_eq!(b.launch.log_level, "warn");
        assert_eq!(b.launch.ready, Ready::PortOpen);
        assert_eq!(b.launch.port_flag, PortFlag::GrpcPort);
        assert!(b.launch.inherit_env);
    }
}
