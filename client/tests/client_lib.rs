//! `LeotestClient` (the library the kernel service uses) against the real orchestrator.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::time::Duration;

use leotest_client::leotest_proto::unary;
use leotest_client::{ClientConfig, ClientError, Credentials, LeotestClient, RetryPolicy};
use support::*;

fn config(o: &Orchestrator, port: u16, credentials: Credentials) -> ClientConfig {
    ClientConfig {
        endpoint: format!("127.0.0.1:{port}"),
        ca_cert: Some(o.cwd().join("certs/server.crt")),
        domain: "localhost".into(),
        fallback_domain: None,
        credentials,
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 2,
            max_elapsed: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(50),
        },
    }
}

fn admin() -> Credentials {
    Credentials::Static {
        userid: "admin".into(),
        access_token: ADMIN_TOKEN.into(),
    }
}

#[tokio::test]
async fn kernel_access_and_typed_calls_work_over_tls() {
    let o = orchestrator();
    let client = LeotestClient::connect(config(&o, o.port, admin()))
        .await
        .unwrap();
    let reply = client.kernel_access("admin").await.unwrap();
    assert_eq!(reply.state, unary::ResponseState::Success as i32);

    // Clones share the channel and can be used concurrently.
    let other = client.clone();
    let (a, b) = tokio::join!(
        other.get_user(unary::MessageGetUser {
            userid: "admin".into()
        }),
        client.get_user(unary::MessageGetUser {
            userid: "nobody".into()
        }),
    );
    assert!(a.unwrap().exists);
    assert!(!b.unwrap().exists);
}

#[tokio::test]
async fn bad_credentials_are_unauthenticated_not_transient() {
    let o = orchestrator();
    let creds = Credentials::Static {
        userid: "admin".into(),
        access_token: "wrong".into(),
    };
    let client = LeotestClient::connect(config(&o, o.port, creds))
        .await
        .unwrap();
    let err = client.kernel_access("admin").await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthenticated(_)), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn closed_port_is_unavailable_and_transient() {
    let o = orchestrator();
    let client = LeotestClient::connect(config(&o, free_port(), admin()))
        .await
        .unwrap();
    let err = client.kernel_access("admin").await.unwrap_err();
    assert!(matches!(err, ClientError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn connect_validates_its_inputs() {
    let o = orchestrator();
    let mut cfg = config(&o, o.port, admin());
    cfg.endpoint = "http://127.0.0.1:1".into();
    assert!(matches!(
        LeotestClient::connect(cfg).await,
        Err(ClientError::InvalidEndpoint { .. })
    ));
    let mut cfg = config(&o, o.port, admin());
    cfg.ca_cert = Some(o.cwd().join("missing.crt"));
    assert!(matches!(
        LeotestClient::connect(cfg).await,
        Err(ClientError::CaCert { .. })
    ));
    let cfg = config(&o, o.port, Credentials::Jwt("bad\nline".into()));
    assert!(matches!(
        LeotestClient::connect(cfg).await,
        Err(ClientError::InvalidCredentials(_))
    ));
}

/// A balancer whose backend just went away accepts TCP and closes before TLS completes: that
/// is the orchestrator not being reached (retried), not a certificate problem (which is not).
/// Seen in e2e-ha: a replica killed under load denied kernel decisions until this was retried.
#[tokio::test]
async fn a_connection_closed_during_the_handshake_is_unavailable_and_transient() {
    let o = orchestrator();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(8) {
            drop(stream);
        }
    });
    let client = LeotestClient::connect(config(&o, port, admin()))
        .await
        .unwrap();
    let err = client.kernel_access("admin").await.unwrap_err();
    assert!(matches!(err, ClientError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
}
