//! Where the real binary listens: the original's `docker-compose-orchestrator.yaml` flags
//! (`--grpc-hostname=localhost`, port published) reach it on every address, IPv4 and IPv6, and
//! the original's public default admin token is refused on a listener other hosts can reach; the
//! shared harness starts a binary told only `--grpc-port`, as the benchmarks start a baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use leotest_proto::unary::MessageGetUser;
use leotest_proto::LeotestOrchestratorClient;
use leotest_test_support::{free_port, orchestrator_bin, req, Creds, Orchestrator, ADMIN_TOKEN};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

fn gen_cert(dir: &Path) {
    let st = Command::new(orchestrator_bin())
        .current_dir(dir)
        .args(["gen-cert"])
        .stdout(Stdio::null())
        .status()
        .expect("gen-cert");
    assert!(st.success());
}

/// Runs the binary in `dir` with a clean `LEOTEST_*` environment.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    let mut cmd = Command::new(orchestrator_bin());
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("LEOTEST_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn orchestrator")
}

/// Waits (bounded) for the process to exit by itself; kills it if it keeps running.
fn wait_exit(mut child: Child, limit: Duration) -> (bool, Output) {
    let deadline = Instant::now() + limit;
    let exited = loop {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break true;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (exited, child.wait_with_output().expect("output"))
}

async fn get_admin(addr: &str, cert: &Path, token: &str) -> Result<bool, String> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(cert).expect("cert")))
        .domain_name("localhost");
    let ch = Channel::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let r = LeotestOrchestratorClient::new(ch)
        .get_user(req(
            MessageGetUser {
                userid: "admin".into(),
            },
            &Creds::token("admin", token),
        ))
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(r.into_inner().exists)
}

#[tokio::test]
async fn the_original_compose_flags_listen_on_every_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    gen_cert(dir.path());
    let port = free_port();
    let token = "<admin access token>";
    // docker-compose-orchestrator.yaml's command, less the MongoDB server it names.
    let mut child = spawn(
        dir.path(),
        &[
            "--grpc-hostname=localhost",
            &format!("--grpc-port={port}"),
            "--grpc-workers=10",
            "--db-name=leotest",
            &format!("--admin-access-token={token}"),
            "--jwt-secret=<jw secret>",
            "--jwt-algo=HS256",
        ],
    );
    let cert = dir.path().join("certs/server.crt");
    let mut v4 = Err(String::from("not tried"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        v4 = get_admin(&format!("127.0.0.1:{port}"), &cert, token).await;
        if v4.is_ok() || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v6 = get_admin(&format!("[::1]:{port}"), &cert, token).await;
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(v4, Ok(true), "IPv4 loopback: {log}");
    assert_eq!(
        v6,
        Ok(true),
        "IPv6 loopback (so not bound to 127.0.0.1): {log}"
    );
    assert!(log.contains(&format!("[::]:{port}")), "{log}");
}

#[test]
fn the_default_admin_token_is_refused_off_loopback() {
    for listen in [
        vec!["--grpc-hostname", "0.0.0.0"],
        vec!["--listen", "0.0.0.0"],
        vec!["--listen", "[::]"],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port().to_string();
        let mut args = listen.clone();
        args.extend(["--grpc-port", &port]);
        let (exited, out) = wait_exit(spawn(dir.path(), &args), Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            exited && !out.status.success(),
            "{listen:?} started: {stderr}"
        );
        for want in [
            "refusing to listen",
            "default admin token",
            "LEOTEST_ADMIN_ACCESS_TOKEN",
            "--listen 127.0.0.1:",
        ] {
            assert!(stderr.contains(want), "{listen:?}: no {want:?} in {stderr}");
        }
        assert!(
            !dir.path().join("certs").exists() && !dir.path().join("data").exists(),
            "nothing is written before the refusal"
        );
    }
}

#[tokio::test]
async fn the_default_admin_token_still_serves_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    gen_cert(dir.path());
    let port = free_port();
    let mut child = spawn(dir.path(), &["--listen", &format!("127.0.0.1:{port}")]);
    let cert = dir.path().join("certs/server.crt");
    let mut r = Err(String::from("not tried"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        r = get_admin(&format!("127.0.0.1:{port}"), &cert, "leotest-access-token").await;
        if r.is_ok() || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert_eq!(r, Ok(true), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The benchmarks' start through the shared harness (`leotest_test_support::Builder`): a named
/// binary told only `--grpc-port` (as a build from before `--listen` is), `RUST_LOG=warn`
/// (so no "listening" line), ready once the port opens; it answers there.
#[tokio::test]
async fn the_harness_starts_a_quiet_binary_told_only_its_grpc_port() {
    let o = Orchestrator::builder()
        .bin(&orchestrator_bin())
        .grpc_port_flag()
        .log_level("warn")
        .ready_on_port()
        .try_start()
        .await
        .expect("started");
    let answered = get_admin(&o.addr().to_string(), &o.cert_path(), ADMIN_TOKEN).await;
    assert_eq!(answered, Ok(true), "{}", o.log());
    assert!(!o.log().contains("orchestrator listening"), "{}", o.log());
}
