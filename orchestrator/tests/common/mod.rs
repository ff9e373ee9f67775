//! Shared harness of the integration tests: runs the real `leotest-orchestrator` binary over
//! TLS on a free loopback port with a fresh certificate and data directory.

#![allow(dead_code)]

pub mod calls;
pub mod mongo;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leotest_proto::LeotestOrchestratorClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Request;

pub const BIN: &str = env!("CARGO_BIN_EXE_leotest-orchestrator");
pub const ADMIN_TOKEN: &str = "test-admin-token-6b1f";

/// Credentials a request carries.
#[derive(Clone, Debug)]
pub enum Creds {
    None,
    Token(String, String),
    Jwt(String),
    JwtAndToken(String, String, String),
}

impl Creds {
    pub fn admin() -> Creds {
        Creds::Token("admin".into(), ADMIN_TOKEN.into())
    }

    pub fn token(userid: &str, token: &str) -> Creds {
        Creds::Token(userid.into(), token.into())
    }
}

/// Wraps `msg` in a request with the metadata the original client sends.
pub fn req<T>(msg: T, creds: &Creds) -> Request<T> {
    let mut r = Request::new(msg);
    let md = r.metadata_mut();
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = MetadataValue::try_from(v) {
            md.insert(k, v);
        }
    };
    match creds {
        Creds::None => {}
        Creds::Token(u, t) => {
            put("x-leotest-userid", u);
            put("x-leotest-access-token", t);
        }
        Creds::Jwt(j) => put("x-leotest-jwt-access-token", j),
        Creds::JwtAndToken(j, u, t) => {
            put("x-leotest-jwt-access-token", j);
            put("x-leotest-userid", u);
            put("x-leotest-access-token", t);
        }
    }
    r
}

/// A running orchestrator process and its files.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub extra_args: Vec<String>,
    pub admin_token: String,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl TestServer {
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("certs/server.crt")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("certs/server.key")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("orchestrator.log")
    }

    /// Starts a server with a certificate made by the binary's own `gen-cert`.
    pub async fn start(extra_args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new(BIN)
            .args(["gen-cert", "--cert"])
            .arg(dir.path().join("certs/server.crt"))
            .arg("--key")
            .arg(dir.path().join("certs/server.key"))
            .stdout(Stdio::null())
            .status()
            .expect("run gen-cert");
        assert!(status.success(), "gen-cert failed");
        Self::start_in(dir, extra_args).await
    }

    /// Starts a server in a prepared directory (certs/server.crt and .key must exist).
    pub async fn start_in(dir: tempfile::TempDir, extra_args: &[&str]) -> TestServer {
        let mut s = TestServer {
            dir,
            port: 0,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            admin_token: ADMIN_TOKEN.to_string(),
            child: None,
        };
        s.launch().await;
        s
    }

    /// (Re)launches the process on a fresh free port.
    pub async fn launch(&mut self) {
        for _attempt in 0..5 {
            self.port = free_port();
            let log_offset = std::fs::metadata(self.log_path())
                .map(|m| m.len() as usize)
                .unwrap_or(0);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("log file");
            let child = Command::new(BIN)
                .current_dir(self.dir.path())
                .env("RUST_LOG", "debug")
                .env_remove("LEOTEST_DB_SERVER")
                .arg("--listen")
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--data-dir")
                .arg(self.data_dir())
                .arg("--tls-cert")
                .arg(self.cert_path())
                .arg("--tls-key")
                .arg(self.key_path())
                .args(["--admin-access-token", &self.admin_token])
                .args(&self.extra_args)
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("spawn orchestrator");
            self.child = Some(child);
            if self.wait_ready(log_offset).await {
                return;
            }
            self.stop();
        }
        panic!(
            "orchestrator did not start; log:\n{}",
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
    }

    /// Ready once this launch logged that it listens (the socket is bound by then); works
    /// for certificates a rustls client would not accept.
    async fn wait_ready(&mut self, log_offset: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            let log = self.log();
            if log
                .get(log_offset..)
                .unwrap_or("")
                .contains("orchestrator listening")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the server again on the same data and certificates.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn tls(&self) -> ClientTlsConfig {
        let ca = std::fs::read(self.cert_path()).expect("cert");
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost")
    }

    pub async fn try_channel(&self) -> Result<Channel, tonic::transport::Error> {
        self.channel_with(self.tls()).await
    }

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

    pub async fn client(&self) -> LeotestOrchestratorClient<Channel> {
        let ch = self.try_channel().await.expect("connect");
        LeotestOrchestratorClient::new(ch).max_encoding_message_size(64 * 1024 * 1024)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client identity signed by a CA, for mTLS tests.
pub fn client_identity(cert_pem: &str, key_pem: &str) -> Identity {
    Identity::from_pem(cert_pem, key_pem)
}

/// Writes `data` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, data: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write");
    p
}
