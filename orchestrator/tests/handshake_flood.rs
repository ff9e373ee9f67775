//! Connections that never start TLS cannot take the orchestrator away from others: under a
//! flood of idle TCP connections from several loopback sources (127.0.0.x), an established
//! client, a new client from another address and a new client from a flooding address are all
//! answered promptly. Bounded: a fixed number of connections, loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use leotest_proto::unary::MessageGetUser;
use leotest_proto::LeotestOrchestratorClient;
use leotest_test_support::{req, Creds, Orchestrator};
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::Channel;

/// Well under the 10 s a flooded handshake slot used to be held.
const PROMPT: Duration = Duration::from_secs(4);

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Opens `per_source` idle TCP connections from each source address, all at once; returns
/// those that connected (each attempt bounded, so a saturated listener cannot hang the test).
async fn flood(port: u16, sources: &[IpAddr], per_source: usize) -> Vec<TcpStream> {
    let target = SocketAddr::new(loopback(1), port);
    let mut tasks = tokio::task::JoinSet::new();
    for &src in sources {
        for _ in 0..per_source {
            tasks.spawn(async move {
                let socket = TcpSocket::new_v4().ok()?;
                socket.bind(SocketAddr::new(src, 0)).ok()?;
                tokio::time::timeout(Duration::from_secs(2), socket.connect(target))
                    .await
                    .ok()?
                    .ok()
            });
        }
    }
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        held.extend(r.ok().flatten());
    }
    held
}

async fn answered(client: &mut LeotestOrchestratorClient<Channel>) -> bool {
    let call = client.get_user(req(
        MessageGetUser {
            userid: "admin".into(),
        },
        &Creds::admin(),
    ));
    matches!(
        tokio::time::timeout(PROMPT, call).await,
        Ok(Ok(r)) if r.get_ref().exists
    )
}

/// A new connection (TLS handshake included) and one call, all within [`PROMPT`].
async fn new_client_answered(s: &Orchestrator, from: Option<IpAddr>) -> Result<(), String> {
    let connect = async {
        let ch = Channel::from_shared(format!("https://127.0.0.1:{}", s.port))
            .expect("uri")
            .local_address(from)
            .tls_config(s.tls())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok::<_, String>(LeotestOrchestratorClient::new(ch))
    };
    let mut client = tokio::time::timeout(PROMPT, connect)
        .await
        .map_err(|_| "no TLS session within the deadline".to_string())??;
    if answered(&mut client).await {
        Ok(())
    } else {
        Err("no answer within the deadline".into())
    }
}

#[tokio::test]
async fn security_idle_connections_from_a_few_sources_block_no_one() {
    let s = Orchestrator::start(&[]).await;
    let mut established = s.client().await;
    assert!(answered(&mut established).await, "before the flood");

    // 8 sources x 180 = 1 440 connections that never send a byte (the review used ~1 500).
    let sources: Vec<IpAddr> = (10..18).map(loopback).collect();
    let held = flood(s.port, &sources, 180).await;
    assert!(
        held.len() > 512,
        "flood too small to matter: {}",
        held.len()
    );

    assert!(
        answered(&mut established).await,
        "an established client is still answered"
    );
    let other = new_client_answered(&s, None).await;
    let flooder = new_client_answered(&s, Some(sources[0])).await;
    drop(held);
    assert_eq!(other, Ok(()), "a new client from another address");
    assert_eq!(flooder, Ok(()), "a new client from a flooding address");
}

#[tokio::test]
async fn security_many_sources_over_the_global_limit_block_no_one() {
    let s =
        Orchestrator::start(&["--max-handshakes", "64", "--max-handshakes-per-source", "8"]).await;
    // 40 sources x 8 = 320 pending handshakes against a global limit of 64.
    let sources: Vec<IpAddr> = (20..60).map(loopback).collect();
    let held = flood(s.port, &sources, 8).await;
    assert!(held.len() >= 200, "flood too small: {}", held.len());
    let result = new_client_answered(&s, None).await;
    drop(held);
    assert_eq!(result, Ok(()));
    assert!(
        s.log().contains("TLS handshake limit reached"),
        "the displacement is logged"
    );
}
