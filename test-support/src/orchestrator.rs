//! The real `leotest-orchestrator` binary over TLS on a free loopback port, with its own
//! certificate, data directory and log file; killed on drop. One type for every crate's tests
//! and for the benchmarks: the options (binary, store, extra flags, environment, log level,
//! certificate, listen address, readiness) are set on a [`Builder`].

mod builder;
mod error;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leotest_proto::LeotestOrchestratorClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

pub use builder::Builder;
use builder::{LaunchOptions, PortFlag, Ready};
use error::fail;
pub use error::StartError;

/// The orchestrator binary under test: `LEOTEST_ORCHESTRATOR_BIN`, else the one cargo built
/// into this test's profile directory (`CARGO_BIN_EXE_*` exists only in the package that owns
/// the binary, and the test executable sits in `target/<profile>/deps/` next to it). Panics
/// when it is missing.
pub fn orchestrator_bin() -> PathBuf {
    try_orchestrator_bin().unwrap_or_else(|e| fail(&e))
}

/// [`orchestrator_bin`] as a result.
fn try_orchestrator_bin() -> Result<PathBuf, StartError> {
    if let Some(p) = std::env::var_os("LEOTEST_ORCHESTRATOR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(StartError::io("locate the test executable"))?;
    // target/<profile>/deps/<test> → target/<profile>/leotest-orchestrator
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .join("leotest-orchestrator");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(StartError::NoBinary(bin))
    }
}

/// TLS trusting `cert_pem`, a self-signed certificate of the binary's `gen-cert`, for the name
/// it is made for (`localhost`): what the tests and the benchmarks connect with.
pub fn localhost_tls(cert_pem: Vec<u8>) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cert_pem))
        .domain_name("localhost")
}

/// A running orchestrator process and its files.
pub struct Orchestrator {
    /// Working directory: certificates, data and log; removed on drop.
    pub dir: tempfile::TempDir,
    /// Port the server listens on (changes on restart).
    pub port: u16,
    /// Flags after the harness's own; changes apply at the next [`Orchestrator::restart`].
    pub extra_args: Vec<String>,
    /// The admin token; a change applies at the next [`Orchestrator::restart`].
    pub admin_token: String,
    bin: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    launch: LaunchOptions,
    child: Option<Child>,
}

/// Where a launch is: attempts made, and the current one's log start and deadline.
struct Attempt {
    count: usize,
    log_offset: usize,
    deadline: Instant,
}

impl Default for Attempt {
    fn default() -> Self {
        Attempt {
            count: 0,
            log_offset: 0,
            deadline: Instant::now(),
        }
    }
}

/// What one look at a starting process found.
enum Launch {
    Ready,
    Exited,
    Waiting,
}

impl Orchestrator {
    /// Defaults: [`orchestrator_bin`], a fresh directory with a certificate made by the
    /// binary's own `gen-cert`, the embedded store, `127.0.0.1`,
    /// [`ADMIN_TOKEN`](crate::ADMIN_TOKEN) on the command line, no environment but
    /// `RUST_LOG=debug`, ready once it logs that it listens.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The defaults plus `extra_args`.
    pub async fn start(extra_args: &[&str]) -> Orchestrator {
        Self::builder().args(extra_args).start().await
    }

    /// A prepared directory (with `certs/server.{crt,key}`) plus `extra_args`.
    pub async fn start_in(dir: tempfile::TempDir, extra_args: &[&str]) -> Orchestrator {
        Self::builder().dir(dir).args(extra_args).start().await
    }

    /// Writes `dir/certs/server.{crt,key}` with the binary's `gen-cert`.
    pub fn gen_cert(dir: &Path) {
        Self::gen_cert_at(&dir.join("certs/server.crt"), &dir.join("certs/server.key"));
    }

    /// Writes a certificate for `localhost` and its key with the binary's `gen-cert`.
    pub fn gen_cert_at(cert: &Path, key: &Path) {
        if let Err(e) = Self::try_gen_cert_at(&orchestrator_bin(), cert, key) {
            fail(&e)
        }
    }

    /// Writes a certificate for `localhost` and its key with the `gen-cert` of the binary at
    /// `bin` (parent directories are created; existing files are an error).
    pub fn try_gen_cert_at(bin: &Path, cert: &Path, key: &Path) -> Result<(), StartError> {
        let status = Command::new(bin)
            .args(["gen-cert", "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(StartError::io(format!("run {} gen-cert", bin.display())))?;
        if status.success() {
            Ok(())
        } else {
            Err(StartError::GenCert {
                bin: bin.to_path_buf(),
                status,
            })
        }
    }

    /// A fresh directory with a certificate, for [`Orchestrator::start_in`].
    pub fn prepared_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::gen_cert(dir.path());
        dir
    }

    /// The server's certificate (self-signed, so also the CA clients trust).
    pub fn cert_path(&self) -> PathBuf {
        self.cert.clone()
    }

    /// The server's private key.
    pub fn key_path(&self) -> PathBuf {
        self.key.clone()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        Self::data_dir_in(self.dir.path())
    }

    /// The data directory a server working in `dir` uses (`dir/data`), for a store filled
    /// before the start ([`Builder::dir`]).
    pub fn data_dir_in(dir: &Path) -> PathBuf {
        dir.join("data")
    }

    /// The server's log file (its stderr, across launches).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("orchestrator.log")
    }

    /// The working directory (where the original's clients look for `certs/server.crt`).
    pub fn cwd(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the process (and earlier launches of it) wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(self.log_path())
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        self.port = crate::ports::free().ok_or(StartError::NoFreePort)?;
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(StartError::io(format!("open {}", log_path.display())))?;
        let l = &self.launch;
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(self.dir.path());
        if !l.inherit_env {
            cmd.env_clear();
        }
        cmd.env("RUST_LOG", &l.log_level);
        match l.port_flag {
            PortFlag::Listen => cmd.arg("--listen").arg(format!("{}:{}", l.host, self.port)),
            PortFlag::GrpcPort => cmd.arg("--grpc-port").arg(self.port.to_string()),
        };
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key);
        if l.admin_token_by_env {
            cmd.env("LEOTEST_ADMIN_ACCESS_TOKEN", &self.admin_token);
        } else {
            cmd.args(["--admin-access-token", &self.admin_token]);
        }
        cmd.envs(l.env.iter().map(|(k, v)| (k, v)))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .map_err(StartError::io(format!("start {}", self.bin.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Ready once this launch logged that it listens (the socket is bound by then; works for
    /// certificates a rustls client would not accept), or, with [`Builder::ready_on_port`], once
    /// the port accepts TCP connections.
    fn look(&mut self, log_offset: usize) -> Launch {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                return Launch::Exited;
            }
        }
        let ready = match self.launch.ready {
            Ready::Logged => self
                .log()
                .get(log_offset..)
                .unwrap_or("")
                .contains("orchestrator listening"),
            Ready::PortOpen => {
                TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
            }
        };
        if ready {
            Launch::Ready
        } else {
            Launch::Waiting
        }
    }

    const ATTEMPTS: usize = 5;
    const READY_WITHIN: Duration = Duration::from_secs(30);
    const POLL: Duration = Duration::from_millis(20);

    /// One step of a launch: spawns when nothing runs yet, then looks at it. `Ok(true)` while
    /// the caller should wait [`Self::POLL`] and step again; an error once the attempts are
    /// used (or the process cannot be started at all).
    fn launch_step(&mut self, at: &mut Attempt) -> Result<bool, StartError> {
        if self.child.is_none() {
            if at.count == Self::ATTEMPTS {
                return Err(StartError::NotReady {
                    attempts: at.count,
                    log: self.log(),
                });
            }
            at.count += 1;
            at.log_offset = self.log_len();
            at.deadline = Instant::now() + Self::READY_WITHIN;
            self.spawn()?;
        }
        match self.look(at.log_offset) {
            Launch::Ready => return Ok(false),
            Launch::Waiting if Instant::now() < at.deadline => {}
            // Exited (e.g. its port was taken in between) or too slow: next attempt.
            Launch::Waiting | Launch::Exited => self.stop(),
        }
        Ok(true)
    }

    /// (Re)launches the process on a fresh free port; a port taken in between by someone else
    /// costs one more attempt. Panics when it does not start.
    pub async fn launch(&mut self) {
        if let Err(e) = self.try_launch().await {
            fail(&e)
        }
    }

    /// [`Orchestrator::launch`] as a result.
    async fn try_launch(&mut self) -> Result<(), StartError> {
        let mut at = Attempt::default();
        while self.launch_step(&mut at)? {
            tokio::time::sleep(Self::POLL).await;
        }
        Ok(())
    }

    /// [`Orchestrator::launch`] for synchronous tests.
    pub fn launch_blocking(&mut self) {
        if let Err(e) = self.try_launch_blocking() {
            fail(&e)
        }
    }

    /// [`Orchestrator::launch_blocking`] as a result.
    fn try_launch_blocking(&mut self) -> Result<(), StartError> {
        let mut at = Attempt::default();
        while self.launch_step(&mut at)? {
            std::thread::sleep(Self::POLL);
        }
        Ok(())
    }

    /// Kills the process and waits for it; nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the server again on the same data and certificates (new port).
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `127.0.0.1:PORT`, where clients on this host reach it (changes on restart).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// TLS trusting the served certificate, for the name `localhost`.
    pub fn tls(&self) -> ClientTlsConfig {
        localhost_tls(std::fs::read(&self.cert).expect("cert"))
    }

    /// A channel to the server with [`Orchestrator::tls`].
    pub async fn try_channel(&self) -> Result<Channel, tonic::transport::Error> {
        self.channel_with(self.tls()).await
    }

    /// A channel to the server with the given TLS settings (5 s to connect, 20 s per call).
    pub async fn channel_with(
        &self,
        tls: ClientTlsConfig,
    ) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("https://127.0.0.1:{}", self.port))
            .expect("uri")
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .connect()
            .await
    }

    /// A client over [`Orchestrator::try_channel`]; panics when it cannot connect.
    pub async fn client(&self) -> LeotestOrchestratorClient<Channel> {
        let ch = self.try_channel().await.expect("connect");
        LeotestOrchestratorClient::new(ch).max_encoding_message_size(64 * 1024 * 1024)
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        self.stop();
    }
}
