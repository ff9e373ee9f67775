//! What held in the adversarial review (issue 15) against the orchestrator's HTTP/2 and gRPC
//! layers, kept as regression tests: malformed protobuf bodies get an error status and the
//! server keeps serving; an HTTP/2 rapid-reset flood (CVE-2023-44487) and a CONTINUATION flood
//! neither take the service away from a concurrent legitimate client nor grow the process
//! without bound. The abusive traffic is written by hand (the `h2` crate, or raw frames over
//! tokio-rustls) because a well-behaved client cannot produce it. Bounded: fixed counts, each
//! phase under a wall-clock cap, loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use leotest_proto::unary::{MessageGetUser, MessageGetUserResponse};
use leotest_test_support::{req, Creds, Orchestrator, ADMIN_TOKEN};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long a legitimate call may take while the server is under attack: generous, so that
/// a slow shared machine does not fail the test, yet far below "the service is gone".
const PROMPT: Duration = Duration::from_secs(4);

/// A TLS session to the orchestrator offering ALPN `h2`, trusting only its certificate.
async fn tls(s: &Orchestrator) -> TlsStream<TcpStream> {
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
    let tcp = TcpStream::connect(("127.0.0.1", s.port))
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// An `h2` client connection; the task driving it yields how the connection ended.
async fn h2_client(
    s: &Orchestrator,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let (send, conn) = h2::client::handshake(tls(s).await)
        .await
        .expect("HTTP/2 handshake");
    (send, tokio::spawn(conn))
}

/// A gRPC POST to `rpc` as admin (so that authentication passes and the body is decoded).
fn grpc_request(rpc: &str) -> http::Request<()> {
    http::Request::builder()
        .method(http::Method::POST)
        .uri(format!(
            "https://localhost/{}/{rpc}",
            leotest_proto::SERVICE_NAME
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-leotest-userid", "admin")
        .header("x-leotest-access-token", ADMIN_TOKEN)
        .body(())
        .expect("request")
}

/// One gRPC length-prefixed message, uncompressed.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(message.len()).expect("len").to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// What the server answered to one raw gRPC call.
#[derive(Debug)]
struct Reply {
    /// `grpc-status` from the trailers (or from the headers of a trailers-only answer).
    status: Option<String>,
    body: Vec<u8>,
}

/// Sends `body` as the whole request body of `rpc` and reads the whole answer (bounded).
async fn grpc_raw(
    send: &mut h2::client::SendRequest<Bytes>,
    rpc: &str,
    body: Bytes,
) -> Result<Reply, h2::Error> {
    let mut ready = send.clone().ready().await?;
    let (response, mut stream) = ready.send_request(grpc_request(rpc), false)?;
    stream.send_data(body, true)?;
    let (parts, mut recv) = response.await?.into_parts();
    let mut status = parts
        .headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
        assert!(data.len() < 1 << 20, "reply body over 1 MiB");
    }
    if let Some(trailers) = recv.trailers().await? {
        if let Some(v) = trailers.get("grpc-status").and_then(|v| v.to_str().ok()) {
            status = Some(v.to_string());
        }
    }
    Ok(Reply { status, body: data })
}

/// A well-formed `get_user("admin")` over the raw connection: it must succeed.
async fn raw_get_user_works(send: &mut h2::client::SendRequest<Bytes>) {
    let msg = MessageGetUser {
        userid: "admin".into(),
    }
    .encode_to_vec();
    let reply = tokio::time::timeout(PROMPT, grpc_raw(send, "get_user", grpc_frame(&msg)))
        .await
        .expect("well-formed call answered in time")
        .expect("well-formed call on the same connection");
    assert_eq!(reply.status.as_deref(), Some("0"), "{reply:?}");
    let r = MessageGetUserResponse::decode(reply.body.get(5..).expect("framed reply"))
        .expect("reply decodes");
    assert!(r.exists);
}

/// `get_user("admin")` over a fresh tonic connection, within [`PROMPT`].
async fn new_client_works(s: &Orchestrator) -> Result<(), String> {
    let call = async {
        let mut c = s.client().await;
        c.get_user(req(
            MessageGetUser {
                userid: "admin".into(),
            },
            &Creds::admin(),
        ))
        .await
    };
    match tokio::time::timeout(PROMPT, call).await {
        Ok(Ok(r)) if r.get_ref().exists => Ok(()),
        Ok(Ok(_)) => Err("admin not found".into()),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => Err("no answer within the deadline".into()),
    }
}

/// A legitimate client calling `get_user` in a loop on its own connection while an attack
/// runs; [`Prober::calls`] counts the answered calls, [`Prober::finish`] says whether any call
/// failed or took longer than [`PROMPT`].
struct Prober {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Prober {
    async fn start(s: &Orchestrator) -> Prober {
        let mut client = s.client().await;
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&calls));
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                let n = count.load(Ordering::Relaxed);
                let call = client.get_user(req(
                    MessageGetUser {
                        userid: "admin".into(),
                    },
                    &Creds::admin(),
                ));
                match tokio::time::timeout(PROMPT, call).await {
                    Ok(Ok(r)) if r.get_ref().exists => count.fetch_add(1, Ordering::Relaxed),
                    Ok(Ok(_)) => return Err(format!("call {n}: admin not found")),
                    Ok(Err(e)) => return Err(format!("call {n}: {e:?}")),
                    Err(_) => return Err(format!("call {n}: no answer within {PROMPT:?}")),
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        });
        Prober { stop, calls, task }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Whether the prober is still calling (it stops at its first failure).
    fn alive(&self) -> bool {
        !self.task.is_finished()
    }

    async fn finish(self) -> Result<usize, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.map_err(|e| e.to_string())??;
        Ok(self.calls.load(Ordering::Relaxed))
    }
}

/// An attack runs until it has done its `total` and the prober has been answered
/// [`PROBES_DURING`] times meanwhile (so that "served during the attack" is observed, not
/// assumed), capped by [`ATTACK_CAP`].
const PROBES_DURING: usize = 5;
const ATTACK_CAP: Duration = Duration::from_secs(20);

/// The process's resident set now and its peak so far, in KiB, from /proc/PID/status.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_malformed_protobuf_gets_an_error_status_and_serving_goes_on() {
    let mut s = Orchestrator::start(&[]).await;
    let (mut send, conn) = h2_client(&s).await;
    raw_get_user_works(&mut send).await;

    // Every target message has a string field 1, so the same bytes are wrong for each.
    let garbage = [0xffu8; 16];
    let bodies: [(&str, Bytes); 5] = [
        ("garbage", grpc_frame(&garbage)),
        // Field 1, length-delimited, its length varint cut off after continuation bytes.
        ("truncated varint", grpc_frame(&[0x0a, 0xff, 0xff])),
        // Field 1 (a string) sent as fixed32.
        ("wrong wire type", grpc_frame(&[0x0d, 1, 2, 3, 4])),
        // Field 1 says 100 bytes; two follow.
        (
            "field length beyond the body",
            grpc_frame(&[0x0a, 100, b'a', b'b']),
        ),
        // The gRPC length prefix says 1 000 bytes; the stream ends after 10.
        ("gRPC length prefix beyond the body", {
            let mut b = vec![0u8];
            b.extend_from_slice(&1000u32.to_be_bytes());
            b.extend_from_slice(&[0x0a, 8, b'a', b'd', b'm', b'i', b'n', 0, 0, 0]);
            Bytes::from(b)
        }),
    ];
    for rpc in ["get_user", "schedule_job", "kernel_access"] {
        for (what, body) in &bodies {
            let reply = tokio::time::timeout(PROMPT, grpc_raw(&mut send, rpc, body.clone()))
                .await
                .unwrap_or_else(|_| panic!("{rpc} / {what}: no answer in time"))
                .unwrap_or_else(|e| panic!("{rpc} / {what}: {e:?}"));
            eprintln!("{rpc} / {what}: {reply:?}");
            // tonic answers a body it cannot decode with INTERNAL (13).
            assert_eq!(
                reply.status.as_deref(),
                Some("13"),
                "{rpc} / {what}: {reply:?}"
            );
            assert!(
                reply.body.is_empty(),
                "{rpc} / {what}: no message with an error"
            );
        }
        // The same connection keeps serving right after.
        raw_get_user_works(&mut send).await;
    }
    assert!(!conn.is_finished(), "the connection was not closed");
    assert_eq!(new_client_works(&s).await, Ok(()), "a new connection");
    assert!(s.is_running(), "the orchestrator is still up");
}

/// One abusive connection (CVE-2023-44487): opens up to `max` streams, resetting each at once,
/// as fast as the client can; returns how many it opened and the error that stopped it.
async fn rapid_reset_connection(s: &Orchestrator, max: usize) -> (usize, Option<h2::Error>) {
    let (mut send, conn) = h2_client(s).await;
    let mut opened = 0;
    let mut stopped = None;
    while opened < max {
        send = match tokio::time::timeout(PROMPT, send.clone().ready()).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                stopped = Some(e);
                break;
            }
            Err(_) => panic!("the client could not open stream {opened} in time"),
        };
        match send.send_request(grpc_request("get_user"), false) {
            Ok((_response, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
        opened += 1;
        // Let the connection task write the frames out (it shares the runtime).
        if opened % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    drop(send);
    // How the connection itself ended, when the server closed it.
    if let Ok(Ok(Err(e))) = tokio::time::timeout(PROMPT, conn).await {
        stopped.get_or_insert(e);
    }
    (opened, stopped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_rapid_reset_is_cut_off_and_others_are_served() {
    let mut s = Orchestrator::start(&[]).await;
    let prober = Prober::start(&s).await;
    let before = prober.calls();

    // 20 000 streams in all; an attacker whose connection is closed opens another.
    const STREAMS: usize = 20_000;
    let deadline = Instant::now() + ATTACK_CAP;
    let (mut total, mut connections, mut goaways) = (0, 0, 0);
    while (total < STREAMS || prober.calls() < before + PROBES_DURING)
        && prober.alive()
        && Instant::now() < deadline
    {
        let (opened, stopped) = rapid_reset_connection(&s, STREAMS).await;
        connections += 1;
        total += opened;
        // What hyper/h2 do (h2's reset-stream limit): GOAWAY ENHANCE_YOUR_CALM after a few
        // hundred resets, long before the connection's 20 000, and close. A client still
        // writing may see the close (broken pipe, reset) before it reads the GOAWAY.
        let e = stopped.unwrap_or_else(|| panic!("{opened} streams reset and not cut off"));
        if e.is_go_away() {
            assert!(e.is_remote(), "connection {connections}: {e:?}");
            assert_eq!(e.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{e:?}");
            goaways += 1;
        } else {
            let kind = e.get_io().map(std::io::Error::kind);
            assert!(
                matches!(
                    kind,
                    Some(std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
                ),
                "connection {connections}: neither GOAWAY nor closed: {e:?}"
            );
        }
        assert!(opened < STREAMS / 4, "cut off only after {opened} streams");
    }
    let during = prober.calls() - before;
    eprintln!(
        "rapid reset: {total} streams over {connections} connections ({goaways} GOAWAY), \
         {during} calls served meanwhile"
    );

    let probed = prober.finish().await;
    assert!(s.is_running(), "the orchestrator is still up");
    assert!(
        probed.is_ok(),
        "a concurrent client kept being served: {probed:?}"
    );
    assert!(
        total >= STREAMS,
        "the attack ran to the end: {total} streams"
    );
    assert!(goaways > 0, "no connection saw the server's GOAWAY");
    assert!(
        during >= PROBES_DURING,
        "{during} calls served during the attack"
    );
    assert_eq!(
        new_client_works(&s).await,
        Ok(()),
        "a new client after the flood"
    );
}

/// One raw HTTP/2 frame: 24-bit length, type, flags, stream id.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("len");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// How the server ended a raw connection, as its reader saw it.
#[derive(Debug)]
struct Ending {
    /// The error code of a GOAWAY frame, if one came.
    goaway: Option<u32>,
    /// `None`: a clean end of stream; else the read error.
    error: Option<std::io::ErrorKind>,
}

/// Reads frames until the connection ends, noting a GOAWAY; the buffer holds at most one
/// frame beyond what was read (a frame is at most 16 MiB by its 24-bit length).
async fn read_until_end(mut rd: impl tokio::io::AsyncRead + Unpin) -> Ending {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut goaway = None;
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) => {
                return Ending {
                    goaway,
                    error: None,
                }
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return Ending {
                    goaway,
                    error: Some(e.kind()),
                }
            }
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == 7 && len >= 8 {
                goaway = Some(u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]));
            }
            buf.drain(..9 + len);
        }
    }
}

/// GOAWAY's error code ENHANCE_YOUR_CALM (RFC 9113, 7).
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One abusive connection: the preface, SETTINGS, a HEADERS frame without END_HEADERS, then
/// up to `max` CONTINUATION frames of 16 KiB; returns how many were written, the write error
/// that stopped it and how the server ended the connection.
async fn continuation_connection(
    s: &Orchestrator,
    max: usize,
) -> (usize, Option<std::io::ErrorKind>, Ending) {
    let (rd, mut wr) = tokio::io::split(tls(s).await);
    let reader = tokio::spawn(read_until_end(rd));
    wr.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    wr.write_all(&h2_frame(4, 0, 0, &[]))
        .await
        .expect("SETTINGS");
    // :method POST, :scheme https, :path /, then a literal header `x-a` whose value (HPACK
    // length 2^28) the CONTINUATION frames carry, never finished.
    let mut block = vec![0x83, 0x87, 0x84, 0x00, 3, b'x', b'-', b'a', 0x7f];
    block.extend_from_slice(&[0x81, 0xff, 0xff, 0x7f]);
    wr.write_all(&h2_frame(1, 0, 1, &block))
        .await
        .expect("HEADERS");

    let continuation = h2_frame(9, 0, 1, &[b'a'; 16 * 1024]);
    let mut written = 0;
    let mut write_error = None;
    while written < max && !reader.is_finished() {
        match tokio::time::timeout(PROMPT, wr.write_all(&continuation)).await {
            Ok(Ok(())) => written += 1,
            Ok(Err(e)) => {
                write_error = Some(e.kind());
                break;
            }
            // The server neither reads nor closes: reported as such by the caller's asserts.
            Err(_) => {
                write_error = Some(std::io::ErrorKind::TimedOut);
                break;
            }
        }
    }
    let ending = tokio::time::timeout(PROMPT, reader)
        .await
        .expect("the server ends the connection")
        .expect("reader");
    (written, write_error, ending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_continuation_flood_is_cut_off_with_bounded_memory() {
    let mut s = Orchestrator::start(&[]).await;
    let pid = s.pid().expect("pid");
    let prober = Prober::start(&s).await;
    let before = prober.calls();
    let (rss_before, hwm_before) = memory_kib(pid);

    // 10 000 frames x 16 KiB = 160 MiB of header block in all, one connection after another.
    const FRAMES: usize = 10_000;
    let deadline = Instant::now() + ATTACK_CAP;
    let (mut total, mut connections) = (0, 0);
    while (total < FRAMES || prober.calls() < before + PROBES_DURING)
        && prober.alive()
        && Instant::now() < deadline
    {
        let (written, write_error, ending) = continuation_connection(&s, FRAMES).await;
        connections += 1;
        total += written;
        // What h2 does: GOAWAY ENHANCE_YOUR_CALM once the header block passes its limit (a
        // few dozen frames), then the connection closes. The count written includes what the
        // kernel buffered before the server stopped reading.
        assert_eq!(
            ending.goaway,
            Some(ENHANCE_YOUR_CALM),
            "connection {connections}: {written} frames, {write_error:?}, {ending:?}"
        );
        assert!(written < 1_000, "cut off only after {written} frames");
        // ... and the connection ends: cleanly, or reset if our unread frames were pending.
        assert!(
            matches!(
                ending.error,
                None | Some(std::io::ErrorKind::ConnectionReset)
            ),
            "connection {connections}: {ending:?}"
        );
    }
    let (rss_after, hwm_after) = memory_kib(pid);
    let during = prober.calls() - before;
    eprintln!(
        "CONTINUATION flood: {total} frames over {connections} connections, {during} calls \
         served meanwhile; VmRSS {rss_before} -> {rss_after} KiB, VmHWM {hwm_before} -> {hwm_after} KiB"
    );

    let probed = prober.finish().await;
    assert!(s.is_running(), "the orchestrator is still up");
    assert!(
        probed.is_ok(),
        "a concurrent client kept being served: {probed:?}"
    );
    assert!(total >= FRAMES, "the attack ran to the end: {total} frames");
    assert!(
        during >= PROBES_DURING,
        "{during} calls served during the attack"
    );
    assert_eq!(
        new_client_works(&s).await,
        Ok(()),
        "a new client after the flood"
    );
    // The peak, not only the end: buffering the header blocks would have raised VmHWM.
    assert!(
        hwm_after <= hwm_before + 64 * 1024,
        "memory peak grew from {hwm_before} to {hwm_after} KiB"
    );
}
