//! Issue 23 at the service level: a connection taken over from a victim's socket is refused
//! before its command runs, and the unix socket serves the same commands.

use super::*;

fn own_netns() -> NetnsRef {
    NetnsRef(Arc::new(NetnsHandles::open(std::process::id()).unwrap()))
}

/// Sends `cca.check` over real TCP to `at`, returns the reply.
async fn cca_over_tcp(at: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(b"cca.check\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Issue 23: a neighbour that reset the service's side of a victim's connection and connected
/// again from its 4-tuple. The identity finds the victim's live socket (here: a victim
/// connection that had been reading output), but this connection is not that socket: refused
/// before the command runs. The caller's own socket passes.
#[tokio::test]
async fn security_a_connection_taken_over_from_a_victims_socket_is_refused() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("127.0.0.1", "c-priv", Some("priv"));
    let (at, _stop) = serve(svc.clone()).await;
    *id.conn.lock().unwrap() = Some(FakeConn::Real(own_netns()));
    let out = cca_over_tcp(at).await;
    assert!(
        out.starts_with("net.ipv4.tcp_congestion_control = "),
        "{out}"
    );

    // The victim's connection (to another listener standing in for the service's old socket).
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut victim = tokio::net::TcpStream::connect(l.local_addr().unwrap())
        .await
        .unwrap();
    let (mut old_side, _) = l.accept().await.unwrap();
    victim
        .write_all(b"job.watch 0123456789abcdef\n")
        .await
        .unwrap();
    old_side
        .write_all(b"output the victim read\n")
        .await
        .unwrap();
    let mut buf = [0u8; 23];
    victim.read_exact(&mut buf).await.unwrap();
    *id.conn.lock().unwrap() = Some(FakeConn::Fixed(ConnCheck::Counters {
        netns: own_netns(),
        client: victim.local_addr().unwrap(),
        server: victim.peer_addr().unwrap(),
    }));
    assert_eq!(cca_over_tcp(at).await, "access_denied");
    // Handles that could not be opened fail closed as well.
    *id.conn.lock().unwrap() = Some(FakeConn::Fixed(ConnCheck::Unavailable));
    assert_eq!(cca_over_tcp(at).await, "access_denied");
    let scrape = svc.metrics().render();
    assert!(
        scrape.contains("connection counters do not match the caller's socket"),
        "{scrape}"
    );
}

/// The unix socket serves the same commands with the same replies; the caller is the
/// connecting process (here: this test process, known to the fake identity).
#[tokio::test]
async fn the_unix_socket_serves_the_same_commands() {
    let (_, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernel.sock");
    std::fs::write(&path, b"not a socket").unwrap();
    assert!(
        unix::listen_unix(&path).is_err(),
        "other files are never replaced"
    );
    std::fs::remove_file(&path).unwrap();
    let l = unix::listen_unix(&path).unwrap();
    drop(l);
    // A stale socket from an earlier run is replaced.
    let l = unix::listen_unix(&path).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(unix::run_unix(l, svc, async {
        let _ = stop_rx.await;
    }));
    let ask = |line: &'static [u8]| {
        let path = path.clone();
        async move {
            let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
            s.write_all(line).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let out = ask(b"cca.check\n").await;
    assert!(
        out.starts_with("net.ipv4.tcp_congestion_control = "),
        "{out}"
    );
    assert_eq!(ask(b"ls /\n").await.as_bytes(), UNKNOWN_COMMAND);
    stop_tx.send(()).unwrap();
    server.await.unwrap();
}
