//! Every decision branch with a fake identity source and a fake orchestrator.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::io::duplex;

use super::*;
use crate::identity::{ConnCheck, ContainerMap, Entry, IdentityError};
use crate::netns::{NetnsHandles, NetnsRef};
use crate::oracle::OracleError;
use tokio::io::AsyncReadExt;

#[derive(Default)]
struct FakeIdentity {
    map: Mutex<ContainerMap>,
    gen: AtomicU64,
    conn: Mutex<Option<FakeConn>>,
}

/// What the fake identity asks the service to check the connection against.
enum FakeConn {
    /// The caller's real socket (`peer` → `local` in `netns`), as the Docker identity does.
    Real(NetnsRef),
    /// Whatever socket the test names (a victim's, for the takeover).
    Fixed(ConnCheck),
}

impl FakeIdentity {
    fn add(&self, ip: &str, id: &str, user: Option<&str>) {
        self.add_with_caps(ip, id, user, CapSet::docker_default());
    }
    fn add_with_caps(&self, ip: &str, id: &str, user: Option<&str>, caps: CapSet) {
        let ip: IpAddr = ip.parse().unwrap();
        self.map.lock().unwrap().upsert(
            &[ip],
            Entry {
                container_id: id.into(),
                userid: user.map(str::to_string),
                pid: std::process::id(),
                caps,
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
    async fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Result<Caller, IdentityError> {
        let m = self.map.lock().unwrap();
        let e = m.get(&peer.ip()).ok_or(IdentityError::Unknown(peer.ip()))?;
        Ok(Caller {
            container_id: e.container_id.clone(),
            userid: e.userid.clone(),
            pid: e.pid,
            netns: None,
            caps: e.caps,
            conn: match &*self.conn.lock().unwrap() {
                None => ConnCheck::NotApplicable,
                Some(FakeConn::Real(netns)) => ConnCheck::Counters {
                    netns: netns.clone(),
                    client: peer,
                    server: local,
                },
                Some(FakeConn::Fixed(c)) => c.clone(),
            },
        })
    }
    /// Unix-socket callers: this test process is the container "c-unix" of user `priv`,
    /// anyone else is unknown.
    async fn resolve_process(
        &self,
        pid: u32,
        pidfd: &std::os::fd::OwnedFd,
    ) -> Result<Caller, IdentityError> {
        if pid != std::process::id()
            || !crate::sys::peercred::pidfd_alive(std::os::fd::AsFd::as_fd(pidfd)).unwrap()
        {
            return Err(IdentityError::NotAContainer);
        }
        Ok(Caller {
            container_id: "c-unix".into(),
            userid: Some("priv".into()),
            pid,
            netns: None,
            caps: CapSet::docker_default(),
            conn: ConnCheck::NotApplicable,
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

fn config(bbr2_dir: PathBuf) -> ServiceConfig {
    ServiceConfig {
        read_timeout: Duration::from_millis(200),
        decision_deadline: Duration::from_millis(200),
        cca_scope: CcaScope::Node,
        bbr2_param_dir: bbr2_dir,
        max_connections: 16,
        max_per_source: 4,
        max_per_user: 8,
        refuse_caps: CapSet::parse_list("NET_ADMIN,SYS_ADMIN").unwrap(),
    }
}

fn service(ttl: Duration, bbr2_dir: PathBuf) -> (Arc<FakeIdentity>, Arc<FakeOracle>, Arc<Service>) {
    service_with(ttl, Duration::ZERO, config(bbr2_dir))
}

fn service_with(
    ttl: Duration,
    deny_ttl: Duration,
    cfg: ServiceConfig,
) -> (Arc<FakeIdentity>, Arc<FakeOracle>, Arc<Service>) {
    let identity = Arc::new(FakeIdentity::default());
    let oracle = Arc::new(FakeOracle {
        users: HashMap::from([
            ("priv", Answer::Yes),
            ("priv2", Answer::Yes),
            ("plain", Answer::No),
            ("broken", Answer::Fail),
            ("slow", Answer::Hang),
        ]),
        calls: AtomicUsize::new(0),
    });
    let svc = Arc::new(Service::new(
        identity.clone(),
        oracle.clone(),
        DecisionCache::new(ttl, deny_ttl),
        None,
        cfg,
        Arc::new(Metrics::default()),
    ));
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
async fn security_every_refusal_says_access_denied() {
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
    let denied = crate::metrics::Outcome { outcome: "denied" };
    assert_eq!(svc.metrics().decisions.get_or_create(&denied).get(), 5);
    let m = svc.metrics().render();
    // Unknown address, no label, orchestrator error, deadline: each its own fixed reason.
    assert!(
        m.contains("leotest_kernel_denials_total{reason=\"no_userid_label\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("leotest_kernel_decision_seconds_count{outcome=\"denied\"} 5\n"),
        "{m}"
    );
}

#[tokio::test]
async fn security_reused_ip_maps_to_the_new_owner() {
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
async fn security_bbr2_traversal_is_refused_and_names_work() {
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
async fn security_slowloris_is_cut_off_and_silence_gets_no_reply() {
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
async fn security_listener_keeps_serving_after_junk_and_stops_on_shutdown() {
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

/// Starts `run` on a loopback listener; returns its address and the shutdown trigger.
async fn serve(svc: Arc<Service>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(l, svc, async {
        let _ = stop_rx.await;
    }));
    (at, stop_tx)
}

/// The original's clients: `s.sendall(b"cca.check")`, no newline, no EOF, then wait for the
/// answer. It must come at once, not when the read time-out expires.
#[tokio::test]
async fn a_command_without_newline_is_answered_before_the_read_timeout() {
    let mut cfg = config("/nonexistent".into());
    cfg.read_timeout = Duration::from_secs(30);
    let (id, _, svc) = service_with(Duration::ZERO, Duration::ZERO, cfg);
    id.add("127.0.0.1", "c-priv", Some("priv"));
    let (at, _stop) = serve(svc).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(b"cca.check").await.unwrap();
    let mut buf = [0u8; 1024];
    // Well inside the 30 s read time-out, where the old framing would still be waiting.
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered before the read time-out")
        .unwrap();
    let out = String::from_utf8_lossy(&buf[..n]);
    assert!(
        out.starts_with("net.ipv4.tcp_congestion_control = "),
        "{out}"
    );
}

/// Idle clients stay idle for the whole test (an hour-long read time-out).
fn idle_config() -> ServiceConfig {
    let mut cfg = config("/nonexistent".into());
    cfg.read_timeout = Duration::from_secs(3600);
    cfg
}

/// Idle connections from one source hold its slots only: another source is served at once.
#[tokio::test]
async fn security_idle_connections_from_one_source_do_not_block_another() {
    let (id, _, svc) = service_with(Duration::ZERO, Duration::ZERO, idle_config());
    id.add("172.30.0.2", "c-flood", Some("priv"));
    id.add("172.30.0.3", "c-other", Some("priv2"));
    let mut idle = Vec::new();
    for _ in 0..4 {
        let (client, server) = duplex(1024);
        let svc = svc.clone();
        idle.push(client);
        tokio::spawn(async move {
            svc.handle(server, addr("172.30.0.2"), LOCAL.parse().unwrap())
                .await
        });
    }
    // Let the four reach their read of the command (they hold a source slot each).
    while svc.limits().held_by_source("172.30.0.2".parse().unwrap()) < 4 {
        tokio::task::yield_now().await;
    }
    let out = String::from_utf8(exchange(&svc, "172.30.0.2", b"cca.check\n").await).unwrap();
    assert_eq!(
        out,
        "error: too many connections from this address (limit 4)\n"
    );
    let out = exchange(&svc, "172.30.0.3", b"cca.check\n").await;
    assert!(out.starts_with(b"net.ipv4.tcp_congestion_control = "));
    let source = crate::metrics::Limit { limit: "source" };
    assert_eq!(svc.metrics().over_limit.get_or_create(&source).get(), 1);
    drop(idle);
}

/// One user's containers together are bounded too.
#[tokio::test]
async fn security_one_user_cannot_take_every_slot() {
    let (id, _, svc) = service_with(Duration::ZERO, Duration::ZERO, idle_config());
    for i in 0..3 {
        id.add(&format!("172.30.1.{i}"), &format!("c{i}"), Some("priv"));
    }
    id.add("172.30.2.1", "c-other", Some("priv2"));
    let mut idle = Vec::new();
    for i in 0..8 {
        let (client, server) = duplex(1024);
        let svc = svc.clone();
        idle.push(client);
        let ip = format!("172.30.1.{}", i % 3);
        tokio::spawn(async move { svc.handle(server, addr(&ip), LOCAL.parse().unwrap()).await });
    }
    while svc.limits().held_by_user("priv") < 8 {
        tokio::task::yield_now().await;
    }
    let out = String::from_utf8(exchange(&svc, "172.30.1.0", b"cca.check\n").await).unwrap();
    assert_eq!(
        out,
        "error: too many connections from this user (limit 8)\n"
    );
    let out = exchange(&svc, "172.30.2.1", b"cca.check\n").await;
    assert!(out.starts_with(b"net.ipv4.tcp_congestion_control = "));
    drop(idle);
}

/// A caller whose container holds NET_ADMIN (or SYS_ADMIN, or is privileged) is refused even
/// when its user may use the service.
#[tokio::test]
async fn security_callers_with_forging_capabilities_are_refused() {
    let (id, oracle, svc) = service(Duration::ZERO, "/nonexistent".into());
    let with = |c: &str| CapSet::docker_default().union(CapSet::parse_list(c).unwrap());
    id.add_with_caps("172.30.0.2", "c-netadmin", Some("priv"), with("NET_ADMIN"));
    id.add_with_caps("172.30.0.3", "c-privileged", Some("priv"), CapSet::ALL);
    id.add_with_caps("172.30.0.4", "c-netraw", Some("priv"), with("NET_RAW"));
    assert_eq!(
        exchange(&svc, "172.30.0.2", b"cca.check\n").await,
        ACCESS_DENIED
    );
    assert_eq!(
        exchange(&svc, "172.30.0.3", b"cca.check\n").await,
        ACCESS_DENIED
    );
    assert_eq!(
        oracle.calls.load(Ordering::SeqCst),
        0,
        "refused before asking"
    );
    // Docker's default set (with NET_RAW) is served: the 4-tuple check covers forgery there.
    assert_ne!(
        exchange(&svc, "172.30.0.4", b"cca.check\n").await,
        ACCESS_DENIED
    );
}

/// A refused container that reconnects in a loop costs the orchestrator one call per deny
/// period, and an implausible label none at all.
#[tokio::test]
async fn security_denials_are_remembered_briefly_and_bad_labels_never_asked() {
    let cfg = config("/nonexistent".into());
    let (id, oracle, svc) = service_with(Duration::ZERO, Duration::from_secs(3600), cfg);
    id.add("172.30.0.3", "c-plain", Some("plain"));
    for _ in 0..20 {
        assert_eq!(
            exchange(&svc, "172.30.0.3", b"cca.check\n").await,
            ACCESS_DENIED
        );
    }
    assert_eq!(oracle.calls.load(Ordering::SeqCst), 1);
    id.add("172.30.0.5", "c-long", Some(&"u".repeat(8192)));
    id.add("172.30.0.6", "c-ctl", Some("priv\nforged"));
    assert_eq!(
        exchange(&svc, "172.30.0.5", b"cca.check\n").await,
        ACCESS_DENIED
    );
    assert_eq!(
        exchange(&svc, "172.30.0.6", b"cca.check\n").await,
        ACCESS_DENIED
    );
    assert_eq!(oracle.calls.load(Ordering::SeqCst), 1);
}

mod help_audit;
mod takeover;
