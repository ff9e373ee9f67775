//! The real `leotest-orchestrator` binary over TLS on a free loopback port, with its own
//! certificate, data directory and log file; killed on drop. One type for every crate's tests:
//! the options (store, extra flags, environment, certificate, listen address) are set on a
//! [`Builder`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leotest_proto::LeotestOrchestratorClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::mongo::TestMongo;
use crate::{free_port, ADMIN_TOKEN};

/// The orchestrator binary under test: `LEOTEST_ORCHESTRATOR_BIN`, else the one cargo built
/// into this test's profile directory (`CARGO_BIN_EXE_*` exists only in the package that owns
/// the binary, and the test executable sits in `target/<profile>/deps/` next to it).
pub fn orchestrator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LEOTEST_ORCHESTRATOR_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps");
    let bin = profile_dir.join("leotest-orchestrator");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p leotest-orchestrator` first (or set LEOTEST_ORCHESTRATOR_BIN)",
        bin.display()
    );
    bin
}

/// TLS trusting `cert_pem`, a self-signed certificate of the binary's `gen-cert`, for the name
/// it is made for (`localhost`): what the tests and the benchmarks connect with.
pub fn localhost_tls(cert_pem: Vec<u8>) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cert_pem))
        .domain_name("localhost")
}

/// How to start an [`Orchestrator`]; [`Orchestrator::builder`] has the defaults.
#[derive(Debug)]
pub struct Builder {
    dir: Option<tempfile::TempDir>,
    cert: Option<(PathBuf, PathBuf)>,
    host: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    admin_token: String,
    admin_token_by_env: bool,
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

    /// Listen on `host` (default `127.0.0.1`); e.g. `0.0.0.0` so that containers reach it.
    pub fn host(mut self, host: &str) -> Self {
        self.host = host.into();
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
        self.env.push((key.into(), value.into()));
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
        self.admin_token_by_env = true;
        self
    }

    fn prepare(self) -> Orchestrator {
        let dir = match self.dir {
            Some(d) => d,
            None => {
                let d = tempfile::tempdir().expect("tempdir");
                if self.cert.is_none() {
                    Orchestrator::gen_cert(d.path());
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
        Orchestrator {
            dir,
            cert,
            key,
            host: self.host,
            port: 0,
            extra_args: self.args,
            env: self.env,
            admin_token: self.admin_token,
            admin_token_by_env: self.admin_token_by_env,
            child: None,
        }
    }

    /// Starts it and waits until it listens (from async tests: the wait does not block the
    /// runtime).
    pub async fn start(self) -> Orchestrator {
        let mut o = self.prepare();
        o.launch().await;
        o
    }

    /// Starts it from synchronous tests.
    pub fn start_blocking(self) -> Orchestrator {
        let mut o = self.prepare();
        o.launch_blocking();
        o
    }
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
    cert: PathBuf,
    key: PathBuf,
    host: String,
    env: Vec<(String, String)>,
    admin_token_by_env: bool,
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
    /// Defaults: a fresh directory with a certificate made by the binary's own `gen-cert`,
    /// the embedded store, `127.0.0.1`, [`ADMIN_TOKEN`] on the command line, `RUST_LOG=debug`.
    pub fn builder() -> Builder {
        Builder {
            dir: None,
            cert: None,
            host: "127.0.0.1".into(),
            args: Vec::new(),
            env: Vec::new(),
            admin_token: ADMIN_TOKEN.into(),
            admin_token_by_env: false,
        }
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
        let status = Command::new(orchestrator_bin())
            .args(["gen-cert", "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .stdout(Stdio::null())
            .status()
            .expect("run gen-cert");
        assert!(status.success(), "gen-cert failed");
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
        self.dir.path().join("data")
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

    fn spawn(&mut self) {
        self.port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut cmd = Command::new(orchestrator_bin());
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("RUST_LOG", "debug")
            .arg("--listen")
            .arg(format!("{}:{}", self.host, self.port))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key);
        if self.admin_token_by_env {
            cmd.env("LEOTEST_ADMIN_ACCESS_TOKEN", &self.admin_token);
        } else {
            cmd.args(["--admin-access-token", &self.admin_token]);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().expect("spawn orchestrator"));
    }

    /// Ready once this launch logged that it listens (the socket is bound by then); works for
    /// certificates a rustls client would not accept.
    fn look(&mut self, log_offset: usize) -> Launch {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                return Launch::Exited;
            }
        }
        let log = self.log();
        if log
            .get(log_offset..)
            .unwrap_or("")
            .contains("orchestrator listening")
        {
            Launch::Ready
        } else {
            Launch::Waiting
        }
    }

    fn give_up(&self) -> ! {
        panic!("orchestrator did not start; log:\n{}", self.log())
    }

    const ATTEMPTS: usize = 5;
    const READY_WITHIN: Duration = Duration::from_secs(30);
    const POLL: Duration = Duration::from_millis(20);

    /// One step of a launch: spawns when nothing runs yet, then looks at it. `true` while
    /// the caller should wait [`Self::POLL`] and step again; panics once the attempts are used.
    fn launch_step(&mut self, at: &mut Attempt) -> bool {
        if self.child.is_none() {
            if at.count == Self::ATTEMPTS {
                self.give_up()
            }
            at.count += 1;
            at.log_offset = self.log_len();
            at.deadline = Instant::now() + Self::READY_WITHIN;
            self.spawn();
        }
        match self.look(at.log_offset) {
            Launch::Ready => return false,
            Launch::Waiting if Instant::now() < at.deadline => {}
            // Exited (e.g. its port was taken in between) or too slow: next attempt.
            Launch::Waiting | Launch::Exited => self.stop(),
        }
        true
    }

    /// (Re)launches the process on a fresh free port; a port taken in between by someone else
    /// costs one more attempt.
    pub async fn launch(&mut self) {
        let mut at = Attempt::default();
        while self.launch_step(&mut at) {
            tokio::time::sleep(Self::POLL).await;
        }
    }

    /// [`Orchestrator::launch`] for synchronous tests.
    pub fn launch_blocking(&mut self) {
        let mut at = Attempt::default();
        while self.launch_step(&mut at) {
            std::thread::sleep(Self::POLL);
        }
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
