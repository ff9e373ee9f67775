//! The kernel service's link to the orchestrator (its `oracle` module, as the binary builds it
//! from `--ca-cert` and `--tls-domain`) against the real orchestrator binary, over each
//! certificate style LeoTest deployments use: a USER_PRIV user gets a grant and a USER does
//! not; another certificate with the same CN, or a name the certificate does not carry, fail
//! closed.

#[path = "../../client/tests/support/certs.rs"]
mod certs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certs::Style;
use leotest_client::leotest_proto::unary::{MessageRegisterUser, UserRoles};
use leotest_client::{ClientConfig, Credentials, LeotestClient};
use leotest_kernel_service::oracle::{AccessOracle, ClientOracle};

const ADMIN_TOKEN: &str = "oracle-tls-admin-token";

/// `LEOTEST_ORCHESTRATOR_BIN`, else the orchestrator built next to this test's profile.
fn orchestrator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LEOTEST_ORCHESTRATOR_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("leotest-orchestrator");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p leotest-orchestrator` first (or set LEOTEST_ORCHESTRATOR_BIN)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Orchestrator {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_orchestrator(dir: tempfile::TempDir, pair: &certs::Pair) -> Orchestrator {
    let port = free_port();
    let child = Command::new(orchestrator_bin())
        .current_dir(dir.path())
        .env_clear()
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&pair.cert)
        .arg("--tls-key")
        .arg(&pair.key)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("LEOTEST_ADMIN_ACCESS_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn orchestrator");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "orchestrator did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Orchestrator {
        child,
        port,
        _dir: dir,
    }
}

/// Registers a user as admin and returns the token from the reply's message.
async fn register(port: u16, trust: &Path, id: &str, role: UserRoles) -> String {
    let mut cfg = ClientConfig::new(
        format!("127.0.0.1:{port}"),
        Credentials::Static {
            userid: "admin".into(),
            access_token: ADMIN_TOKEN.into(),
        },
    );
    cfg.ca_cert = Some(trust.to_path_buf());
    let admin = LeotestClient::connect(cfg).await.expect("admin client");
    let reply = admin
        .register_user(MessageRegisterUser {
            id: id.into(),
            name: id.into(),
            role: role as i32,
            team: "oracle-tls".into(),
        })
        .await
        .expect("register_user");
    reply
        .message
        .split("access_token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no token in {:?}", reply.message))
        .to_string()
}

/// The oracle as `leotest-kernel-service` builds it from its flags.
async fn oracle(port: u16, trust: &Path, domain: &str, token: &str) -> ClientOracle {
    ClientOracle::connect(
        format!("localhost:{port}"),
        trust.to_path_buf(),
        domain.to_string(),
        "node-1".to_string(),
        token.to_string(),
        Duration::from_secs(3),
    )
    .await
    .expect("oracle")
}

async fn grants_over(style: Style) {
    if !certs::openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = certs::make(&dir.path().join("certs"), "server", style, 4096);
    let other = tempfile::tempdir().expect("tempdir");
    let impostor = certs::make(other.path(), "impostor", style, 2048);
    let o = start_orchestrator(dir, &pair);

    let node_token = register(o.port, &pair.trust, "node-1", UserRoles::Node).await;
    register(o.port, &pair.trust, "alice", UserRoles::UserPriv).await;
    register(o.port, &pair.trust, "bob", UserRoles::User).await;

    let link = oracle(o.port, &pair.trust, "localhost", &node_token).await;
    assert!(
        link.kernel_access("alice")
            .await
            .expect("decision for alice"),
        "{style:?}: USER_PRIV is granted"
    );
    assert!(
        !link.kernel_access("bob").await.expect("decision for bob"),
        "{style:?}: USER is not"
    );

    let wrong_cert = oracle(o.port, &impostor.trust, "localhost", &node_token).await;
    let err = wrong_cert
        .kernel_access("alice")
        .await
        .expect_err("another certificate with the same CN");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{style:?}: {err}"
    );
    let wrong_name = oracle(o.port, &pair.trust, "other.example", &node_token).await;
    let err = wrong_name
        .kernel_access("alice")
        .await
        .expect_err("a name the certificate does not carry");
    assert!(
        err.to_string().contains("not valid for name"),
        "{style:?}: {err}"
    );
}

#[tokio::test]
async fn grant_over_the_original_v1_certificate() {
    grants_over(Style::OriginalV1).await;
}

#[tokio::test]
async fn grant_over_the_openssl_one_liner_certificate() {
    grants_over(Style::OneLinerCa).await;
}

#[tokio::test]
async fn grant_over_a_leaf_with_san() {
    grants_over(Style::LeafWithSan).await;
}

#[tokio::test]
async fn grant_over_a_ca_issued_leaf() {
    grants_over(Style::CaIssued).await;
}
