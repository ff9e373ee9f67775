//! Every decision branch with a fake identity source and a fake orchestrator.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::io::duplex;

use super::*;
use crate::identity::{ContainerMap, Entry, IdentityError};
use crate::oracle::OracleError;

#[derive(Default)]
struct FakeIdentity {
    map: Mutex<ContainerMap>,
    gen: AtomicU64,
}

impl FakeIdentity {
    fn add(&self, ip: &str, id: &str, user: Option<&str>) {
        let ip: IpAddr = ip.parse().unwrap();
        self.map.lock().unwrap().upsert(
            &[ip],
            Entry {
                container_id: id.into(),
                userid: user.map(str::to_string),
                pid: std::process::id(),
            },
        );
        self.gen.fetch_add(1, Ordering::SeqCst);
    }
    fn remove(&self, id: &str) {
        self.map.lock().unwrap().remove(id);
        self.gen.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl IdentitySource for FakeIdentity {
    async fn resolve(&self, peer: SocketAddr, _local: SocketAddr) -> Result<Caller, IdentityError> {
        let m = self.map.lock().unwrap();
        let e = m.get(&peer.ip()).ok_or(IdentityError::Unknown(peer.ip()))?;
        Ok(Caller {
            container_id: e.container_id.clone(),
            userid: e.userid.clone(),
            pid: e.pid,
            netns: None,
        })
    }
    fn generation(&self) -> u64 {
        self.gen.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy)]
enum Answer {
    Yes,
    No,
    Fail,
    Hang,
}

struct FakeOracle {
    users: HashMap<&'static str, Answer>,
    calls: AtomicUsize,
}

#[async_trait]
impl AccessOracle for FakeOracle {
    async fn kernel_access(&self, userid: &str) -> Result<bool, OracleError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.users.get(userid).copied().unwrap_or(Answer::No) {
            Answer::Yes => Ok(true),
            Answer::No => Ok(false),
            Answer::Fail => Err(OracleError::Deadline(Duration::ZERO)),
            Answer::Hang => std::future::pending().await,
        }
    }
}

fn service(ttl: Duration, bbr2_dir: PathBuf) -> (Arc<FakeIdentity>, Arc<FakeOracle>, Arc<Service>) {
    let identity = Arc::new(FakeIdentity::default());
    let oracle = Arc::new(FakeOracle {
        users: HashMap::from([
            ("priv", Answer::Yes),
            ("plain", Answer::No),
            ("broken", Answer::Fail),
            ("slow", Answer::Hang),
        ]),
        calls: AtomicUsize::new(0),
    });
    let svc = Arc::new(Service {
        identity: identity.clone(),
        oracle: oracle.clone(),
        cache: GrantCache::new(ttl),
        jobs: None,
        cfg: ServiceConfig {
            read_timeout: Duration::from_millis(200),
            decision_deadline: Duration::from_millis(200),
            cca_scope: CcaScope::Node,
            bbr2_param_dir: bbr2_dir,
            max_connections: 16,
        },
        metrics: Arc::new(Metrics::default()),
    });
    (identity, oracle, svc)
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40000)
}
const LOCAL: &str = "172.30.0.1:9000";

/// Sends `input` from `ip`, closes the write side, returns the whole reply.
async fn exchange(svc: &Service, ip: &str, input: &[u8]) -> Vec<u8> {
    let (mut client, server) = duplex(1 << 16);
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = client.write_all(&input).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        out
    });
    svc.handle(server, addr(ip), LOCAL.parse().unwrap()).await;
    writer.await.unwrap()
}

#[tokio::test]
async fn privileged_user_gets_the_cca() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("172.30.0.2", "c-priv", Some("priv"));
    let out = exchange(&svc, "172.30.0.2", b"cca.check\n").await;
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("net.ipv4.tcp_congestion_control = "),
        "{out}"
    );
}

#[tokio::test]
async fn every_refusal_says_access_denied() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("172.30.0.3", "c-plain", Some("plain"));
    id.add("172.30.0.4", "c-nolabel", None);
    id.add("172.30.0.5", "c-broken", Some("broken"));
    id.add("172.30.0.6", "c-slow", Some("slow"));
    for ip in [
        "172.30.0.3",
        "172.30.0.4",
        "172.30.0.5",
        "172.30.0.6",
        "172.30.0.99",
    ] {
        assert_eq!(
            exchange(&svc, ip, b"cca.check\n").await,
            ACCESS_DENIED,
            "{ip}"
        );
    }
    assert_eq!(svc.metrics.denied.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn reused_ip_maps_to_the_new_owner() {
    let (id, _, svc) = service(Duration::from_secs(3600), "/nonexistent".into());
    id.add("172.30.0.7", "c-old", Some("priv"));
    assert_ne!(
        exchange(&svc, "172.30.0.7", b"cca.check\n").await,
        ACCESS_DENIED
    );
    id.remove("c-old");
    id.add("172.30.0.7", "c-new", Some("plain"));
    // The grant cached for the old container must not carry over.
    assert_eq!(
        exchange(&svc, "172.30.0.7", b"cca.check\n").await,
        ACCESS_DENIED
    );
}

#[tokio::test]
async fn grant_cache_skips_the_orchestrator_until_a_container_event() {
    let (id, oracle, svc) = service(Duration::from_secs(3600), "/nonexistent".into());
    id.add("172.30.0.8", "c-priv", Some("priv"));
    exchange(&svc, "172.30.0.8", b"cca.check\n").await;
    exchange(&svc, "172.30.0.8", b"cca.check\n").await;
    assert_eq!(oracle.calls.load(Ordering::SeqCst), 1);
    id.add("172.30.0.9", "c-other", Some("plain"));
    exchange(&svc, "172.30.0.8", b"cca.check\n").await;
    assert_eq!(oracle.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bad_input_gets_an_error_reply() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("172.30.0.2", "c-priv", Some("priv"));
    let big = vec![b'a'; 1 << 20];
    let out = String::from_utf8(exchange(&svc, "172.30.0.2", &big).await).unwrap();
    assert!(out.starts_with("error: command line longer"), "{out}");
    let out =
        String::from_utf8(exchange(&svc, "172.30.0.2", &[0xff, 0x00, 0x9c, b'\n']).await).unwrap();
    assert!(out.starts_with("error:"), "{out}");
    let out = exchange(&svc, "172.30.0.2", b"ls /\n").await;
    assert_eq!(out, UNKNOWN_COMMAND);
    let out =
        String::from_utf8(exchange(&svc, "172.30.0.2", b"cca.change nosuchalg\n").await).unwrap();
    assert!(out.contains("not available"), "{out}");
}

#[tokio::test]
async fn bbr2_traversal_is_refused_and_names_work() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("parameters");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("loss_thresh"), "0").unwrap();
    std::fs::write(root.path().join("victim"), "keep").unwrap();
    let (id, _, svc) = service(Duration::ZERO, dir.clone());
    id.add("172.30.0.2", "c-priv", Some("priv"));
    let line = format!("bbr2.param.set {}/../victim 1\n", dir.display());
    let out = String::from_utf8(exchange(&svc, "172.30.0.2", line.as_bytes()).await).unwrap();
    assert_eq!(out, "error: unknown bbr2 parameter\n");
    assert_eq!(
        std::fs::read_to_string(root.path().join("victim")).unwrap(),
        "keep"
    );
    let out = exchange(&svc, "172.30.0.2", b"bbr2.param.set loss_thresh 12\n").await;
    assert_eq!(out, b"BBR2 parameter loss_thresh set to 12");
    assert_eq!(
        std::fs::read_to_string(dir.join("loss_thresh")).unwrap(),
        "12"
    );
}

#[tokio::test]
async fn slowloris_is_cut_off_and_silence_gets_no_reply() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("172.30.0.2", "c-priv", Some("priv"));
    // Client keeps the connection open and sends nothing: handle must still return.
    let (mut client, server) = duplex(1024);
    svc.handle(server, addr("172.30.0.2"), LOCAL.parse().unwrap())
        .await;
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert!(out.is_empty());
    // A partial line without newline, connection held open: treated as the command.
    let (mut client, server) = duplex(1024);
    client.write_all(b"cca.check").await.unwrap();
    svc.handle(server, addr("172.30.0.2"), LOCAL.parse().unwrap())
        .await;
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"net.ipv4.tcp_congestion_control = "));
}

#[tokio::test]
async fn listener_keeps_serving_after_junk_and_stops_on_shutdown() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("127.0.0.1", "c-priv", Some("priv"));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(l, svc, async {
        let _ = stop_rx.await;
    }));
    for junk in [&b"\x00\x01\x02\xff\n"[..], &[b'x'; 100_000][..]] {
        let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
        let _ = s.write_all(junk).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
    }
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(b"cca.check\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("net.ipv4.tcp_congestion_control = "),
        "{out}"
    );
    stop_tx.send(()).unwrap();
    server.await.unwrap();
    assert!(tokio::net::TcpStream::connect(at).await.is_err());
}
