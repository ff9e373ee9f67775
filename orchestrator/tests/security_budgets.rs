//! Connection budgets of issue 21 against the real orchestrator over loopback: idle TLS
//! connections from one source cannot lock new clients out, stalled streams are bounded, idle
//! sockets cannot hold the metrics listener, and PROXY protocol headers are believed only from
//! trusted balancers. Limits are set through their environment variables, which older builds
//! ignore: the same test then shows the attack working. Bounded: fixed counts, time-outs on
//! every wait.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use leotest_proto::unary::MessageGetUser;
use leotest_test_support::{free_port, req, Creds, Orchestrator};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// How long a legitimate call may take while the server is under attack: generous for a slow
/// shared machine, far below "the service is gone".
const PROMPT: Duration = Duration::from_secs(4);

type H2 = h2::client::SendRequest<Bytes>;

/// A TCP connection to the orchestrator from `local` (any address of 127/8).
async fn tcp_from(s: &Orchestrator, local: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local.parse::<IpAddr>().expect("ip"), 0))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], s.port)))
        .await
}

/// TLS (ALPN h2) over `tcp`, trusting only the orchestrator's certificate.
async fn tls_over(s: &Orchestrator, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
    let pem = std::fs::read(s.cert_path()).expect("cert");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// An HTTP/2 connection from `local`, after `proxy` (a PROXY header) if given.
async fn h2_from(s: &Orchestrator, local: &str, proxy: Option<Vec<u8>>) -> Result<H2, String> {
    let connect = async {
        let mut tcp = tcp_from(s, local).await.map_err(|e| e.to_string())?;
        if let Some(header) = proxy {
            tcp.write_all(&header).await.map_err(|e| e.to_string())?;
        }
        let tls = tls_over(s, tcp).await.map_err(|e| e.to_string())?;
        let (send, conn) = h2::client::handshake(tls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok::<_, String>(send)
    };
    tokio::time::timeout(PROMPT, connect)
        .await
        .map_err(|_| "no TLS/HTTP2 connection in time".to_string())?
}

/// `grpc.health.v1.Health/Check` (public) on `send`: `Ok` when it answers SERVING.
async fn health(send: &H2) -> Result<(), String> {
    let call = async {
        let mut ready = send.clone().ready().await.map_err(|e| e.to_string())?;
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri("https://localhost/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request");
        let (response, mut body) = ready
            .send_request(request, false)
            .map_err(|e| e.to_string())?;
        body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .map_err(|e| e.to_string())?;
        let (parts, mut recv) = response.await.map_err(|e| e.to_string())?.into_parts();
        let mut status = parts.headers.get("grpc-status").cloned();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            let _ = recv.flow_control().release_capacity(chunk.len());
        }
        if let Some(t) = recv.trailers().await.map_err(|e| e.to_string())? {
            status = t.get("grpc-status").cloned().or(status);
        }
        match status.as_ref().map(|v| v.as_bytes()) {
            Some(b"0") => Ok(()),
            other => Err(format!("grpc-status {other:?}")),
        }
    };
    tokio::time::timeout(PROMPT, call)
        .await
        .map_err(|_| "no answer in time".to_string())?
}

/// `get_user("admin")` over a fresh tonic connection, within [`PROMPT`].
async fn new_client_works(s: &Orchestrator) -> Result<(), String> {
    let call = async {
        let ch = s.try_channel().await.map_err(|e| format!("{e:?}"))?;
        let mut c = leotest_proto::LeotestOrchestratorClient::new(ch);
        c.get_user(req(
            MessageGetUser {
                userid: "admin".into(),
            },
            &Creds::admin(),
        ))
        .await
        .map_err(|e| format!("{e:?}"))
    };
    match tokio::time::timeout(PROMPT, call).await {
        Ok(Ok(r)) if r.get_ref().exists => Ok(()),
        Ok(Ok(_)) => Err("admin not found".into()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer within the deadline".into()),
    }
}

/// The process's peak resident set so far, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_idle_connections_from_one_source_do_not_lock_out_new_clients() {
    let s = Orchestrator::builder()
        .env("LEOTEST_MAX_CONNECTIONS_PER_SOURCE", "64")
        .start()
        .await;
    let pid = s.pid().expect("pid");
    // A descriptor limit a small host has: without connection budgets, the idle flood below
    // takes every descriptor and `accept` fails with EMFILE for everyone.
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=512:512"])
        .status()
        .expect("prlimit");
    assert!(limited.success(), "prlimit failed");

    // 800 connections, 12 handshakes at a time (below the handshake limits), each doing TLS
    // and the HTTP/2 preface, then idle, all held by the attacker.
    const TOTAL: usize = 800;
    let mut held = Vec::with_capacity(TOTAL);
    let mut refused = 0;
    while held.len() + refused < TOTAL {
        let batch: Vec<_> = (0..12).map(|_| h2_from(&s, "127.0.0.1", None)).collect();
        for r in futures::future::join_all(batch).await {
            match r {
                Ok(send) => held.push(send),
                Err(_) => refused += 1,
            }
        }
    }
    eprintln!(
        "idle flood: {} connections made, {refused} failed",
        held.len()
    );
    assert_eq!(
        new_client_works(&s).await,
        Ok(()),
        "a new client while one source holds {} idle connections",
        held.len()
    );
    // The flood's oldest connections were closed to make room: a source holds at most its
    // budget (64) of idle connections, whatever it opens.
    let mut open = 0;
    for send in held.iter().take(100) {
        if health(send).await.is_ok() {
            open += 1;
        }
    }
    assert!(open < 100, "the first 100 idle connections all stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_stalled_streams_are_refused_and_bounded() {
    let s = Orchestrator::builder()
        .env("LEOTEST_MAX_CONNECTION_RECEIVE_BYTES", "8388608")
        .start()
        .await;
    let pid = s.pid().expect("pid");
    let hwm_before = vm_hwm_kib(pid);
    let send = h2_from(&s, "127.0.0.1", None).await.expect("connection");
    // One answered call first: the server's SETTINGS (its stream limit) have then been read,
    // so `advertised` below is the server's, not the unlimited default a client assumes until
    // they arrive (read too early on a loaded machine, it failed this test once).
    health(&send).await.expect("a first call on the connection");
    // 600 streams that each announce a 4 MiB message, send 256 KiB of it and never finish.
    let mut chunk = vec![0u8];
    chunk.extend_from_slice(&(4u32 << 20).to_be_bytes());
    chunk.resize(256 * 1024, b'a');
    let chunk = Bytes::from(chunk);
    let mut streams = Vec::new();
    for _ in 0..600 {
        let Ok(Ok(mut ready)) = tokio::time::timeout(PROMPT, send.clone().ready()).await else {
            break;
        };
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!(
                "https://localhost/{}/get_user",
                leotest_proto::SERVICE_NAME
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-leotest-userid", "admin")
            .header("x-leotest-access-token", leotest_test_support::ADMIN_TOKEN)
            .body(())
            .expect("request");
        let Ok((response, mut body)) = ready.send_request(request, false) else {
            break;
        };
        let _ = body.send_data(chunk.clone(), false);
        streams.push((response, body));
    }
    // What the server advertised: a bound on streams per connection (none before).
    let advertised = send.current_max_send_streams();
    // Let the server read what it is willing to read, then look at its peak.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hwm_after = vm_hwm_kib(pid);
    eprintln!(
        "stalled streams: {} sent, VmHWM {hwm_before} -> {hwm_after} KiB, advertised {advertised}",
        streams.len()
    );
    assert_eq!(new_client_works(&s).await, Ok(()), "a new client meanwhile");
    assert!(
        advertised <= 100,
        "max concurrent streams advertised: {advertised:?}"
    );
    assert!(
        hwm_after <= hwm_before + 64 * 1024,
        "memory peak grew from {hwm_before} to {hwm_after} KiB"
    );
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_idle_sockets_do_not_hold_the_metrics_listener() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = Orchestrator::builder()
        .args(&["--metrics-listen", &listen])
        .start()
        .await;
    let addr: SocketAddr = listen.parse().expect("addr");
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let scrape = tokio::time::timeout(PROMPT, leotest_metrics::get(addr, "/healthz")).await;
    assert_eq!(
        scrape
            .expect("/healthz answered while 200 idle sockets are open")
            .expect("healthz")
            .status,
        200
    );
    drop((idle, s));
}

/// A PROXY protocol v2 header naming `client` as the source.
fn proxy_header(client: &str) -> Vec<u8> {
    let client: SocketAddr = client.parse().expect("addr");
    let server: SocketAddr = "127.0.0.1:50051".parse().expect("addr");
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (client, server),
    )
    .build()
    .expect("header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_proxy_headers_are_believed_only_from_trusted_balancers() {
    // 127.0.0.2 plays the balancer; 127.0.0.1 is anyone else.
    let s = Orchestrator::builder()
        .env("LEOTEST_TRUSTED_PROXIES", "127.0.0.2")
        .env("LEOTEST_MAX_CONNECTIONS_PER_SOURCE", "1")
        .start()
        .await;
    let forged = h2_from(&s, "127.0.0.1", Some(proxy_header("203.0.113.9:4000"))).await;
    assert!(
        forged.is_err(),
        "a PROXY header from an untrusted peer is refused"
    );
    if let Ok(send) = h2_from(&s, "127.0.0.2", None).await {
        assert!(health(&send).await.is_err(), "served without a header");
    }

    // Two clients behind the balancer are two sources: with one connection per source,
    // both stay served.
    let a = h2_from(&s, "127.0.0.2", Some(proxy_header("203.0.113.9:4000")))
        .await
        .expect("client a via the balancer");
    assert_eq!(health(&a).await, Ok(()));
    let b = h2_from(&s, "127.0.0.2", Some(proxy_header("203.0.113.10:4000")))
        .await
        .expect("client b via the balancer");
    assert_eq!(health(&b).await, Ok(()));
    assert_eq!(health(&a).await, Ok(()), "a is its own source");
    // A second connection of a's address displaces a's idle one, not b's.
    let a2 = h2_from(&s, "127.0.0.2", Some(proxy_header("203.0.113.9:4001")))
        .await
        .expect("client a again");
    assert_eq!(health(&a2).await, Ok(()));
    assert!(
        health(&a).await.is_err(),
        "a's older connection was displaced"
    );
    assert_eq!(health(&b).await, Ok(()), "b kept its connection");
    assert_eq!(
        new_client_works(&s).await,
        Ok(()),
        "direct clients still work"
    );
}
