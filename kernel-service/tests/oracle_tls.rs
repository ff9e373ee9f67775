//! The kernel service's link to the orchestrator (its `oracle` module, as the binary builds it
//! from `--ca-cert` and `--tls-domain`) against the real orchestrator binary, over each
//! certificate style LeoTest deployments use: a USER_PRIV user gets a grant and a USER does
//! not; another certificate with the same CN, or a name the certificate does not carry, fail
//! closed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::path::Path;
use std::time::Duration;

use leotest_kernel_service::oracle::{AccessOracle, ClientOracle};
use leotest_proto::unary::{MessageRegisterUser, UserRoles};
use leotest_rpc::{ClientConfig, Credentials, LeotestClient};
use leotest_test_support::certs::{self, Style};
use leotest_test_support::{token_from_message, Orchestrator, ADMIN_TOKEN};

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
    token_from_message(&reply.message)
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
    let o = Orchestrator::builder()
        .dir(dir)
        .cert(&pair.cert, &pair.key)
        .start()
        .await;

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
