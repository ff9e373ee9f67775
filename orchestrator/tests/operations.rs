//! Day-two operations on the real binary: `jwt` tokens the server accepts and refusals that
//! say why, certificate rotation by SIGHUP, the audit line of state-changing RPCs, the
//! `result` label of refusals, and `/metrics` in both formats through `promtool check
//! metrics` (Debian's `prometheus` package).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use leotest_proto::unary::*;
use leotest_test_support::calls::user;
use leotest_test_support::scrape::{promtool_available, promtool_check, scrape, value};
use leotest_test_support::{orchestrator_bin, req, Creds, Orchestrator, ADMIN_TOKEN};
use tonic::transport::{Certificate, ClientTlsConfig};

const SECRET: &str = "operations-test-jwt-secret-5d21";

fn jwt_flags() -> [&'static str; 4] {
    ["--jwt-algo", "HS256", "--jwt-secret", SECRET]
}

/// `leotest-orchestrator [server flags] jwt ARGS` in `dir`: (exit ok, stdout, stderr).
fn jwt_cmd(dir: &Path, server: &[&str], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(orchestrator_bin())
        .current_dir(dir)
        .env_clear()
        .args(server)
        .arg("jwt")
        .args(args)
        .output()
        .expect("run jwt");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn get_admin(s: &Orchestrator, creds: &Creds) -> Result<(), tonic::Status> {
    let mut c = s.client().await;
    c.get_user(req(
        MessageGetUser {
            userid: "admin".into(),
        },
        creds,
    ))
    .await
    .map(|_| ())
}

#[tokio::test]
async fn jwt_subcommand_makes_tokens_the_server_accepts() {
    let s = Orchestrator::start(&jwt_flags()).await;
    let (ok, token, err) = jwt_cmd(
        s.cwd(),
        &jwt_flags(),
        &["--userid", "admin", "--ttl", "10m"],
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    get_admin(&s, &Creds::Jwt(token.clone()))
        .await
        .expect("the printed JWT authenticates");

    // A token for a user that does not exist is made, but refused with the reason.
    let (ok, ghost, _) = jwt_cmd(s.cwd(), &jwt_flags(), &["--userid", "ghost"]);
    assert!(ok);
    let st = get_admin(&s, &Creds::Jwt(ghost.trim().into()))
        .await
        .expect_err("unknown user");
    assert_eq!(st.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        st.message(),
        "Invalid token: the JWT's userid is not a registered user"
    );

    // Signed with another secret: refused, and the message names neither secret.
    let other = [
        "--jwt-algo",
        "HS256",
        "--jwt-secret",
        "another-secret-of-enough-length",
    ];
    let (ok, forged, _) = jwt_cmd(s.cwd(), &other, &["--userid", "admin"]);
    assert!(ok);
    let st = get_admin(&s, &Creds::Jwt(forged.trim().into()))
        .await
        .expect_err("forged");
    assert_eq!(
        st.message(),
        "Invalid token: JWT signature does not verify with this server's key"
    );
    assert!(!st.message().contains(SECRET));

    // A static token refusal says nothing more than the original did.
    let st = get_admin(&s, &Creds::token("admin", "wrong"))
        .await
        .expect_err("bad token");
    assert_eq!(st.message(), "Invalid token");

    // Refusals of the subcommand itself.
    let (ok, _, err) = jwt_cmd(s.cwd(), &[], &["--userid", "admin"]);
    assert!(!ok);
    assert!(err.contains("JWT authentication is off"), "{err}");
    let (ok, _, err) = jwt_cmd(s.cwd(), &jwt_flags(), &["--userid", "admin", "--ttl", "2y"]);
    assert!(!ok);
    assert!(err.contains("unknown unit"), "{err}");
    assert!(!err.contains(SECRET) && !token.is_empty());
}

fn gen_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    Orchestrator::gen_cert_at(&cert, &key);
    (cert, key)
}

fn sighup(s: &Orchestrator) {
    let pid = s.pid().expect("running");
    let st = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

/// Waits (bounded) until the log holds `needle` `n` times.
async fn wait_log(s: &Orchestrator, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.log().matches(needle).count() < n {
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn trusting(pem: &[u8]) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem))
        .domain_name("localhost")
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_it_when_the_new_one_is_bad() {
    let mut s = Orchestrator::start(&[]).await;
    let old = std::fs::read(s.cert_path()).expect("cert");
    let old_key = std::fs::read(s.key_path()).expect("key");

    // A half-copied certificate: refused, logged, the old one still served.
    std::fs::write(s.cert_path(), b"-----BEGIN CERTIFICATE-----\nAAAA\n").expect("write");
    sighup(&s);
    wait_log(&s, "TLS certificate reload failed", 1).await;
    assert!(s.is_running());
    s.channel_with(trusting(&old))
        .await
        .expect("the old certificate is still served");

    // A new pair: served from the next connection on, the process unchanged.
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = gen_pair(dir.path(), "new");
    let new = std::fs::read(&cert).expect("cert");
    std::fs::copy(&key, s.key_path()).expect("key");
    std::fs::copy(&cert, s.cert_path()).expect("cert");
    let pid = s.pid();
    sighup(&s);
    wait_log(&s, "TLS certificate reloaded", 1).await;
    assert_eq!(s.pid(), pid);
    let ch = s
        .channel_with(trusting(&new))
        .await
        .expect("the new certificate is served");
    let mut c = leotest_proto::LeotestOrchestratorClient::new(ch);
    c.get_user(req(
        MessageGetUser {
            userid: "admin".into(),
        },
        &Creds::admin(),
    ))
    .await
    .expect("RPC over the new certificate");
    assert!(
        s.channel_with(trusting(&old)).await.is_err(),
        "a client trusting only the old certificate must now fail"
    );
    // Put the first pair back so the harness's own client keeps working after a restart.
    std::fs::write(s.key_path(), old_key).expect("key");
    std::fs::write(s.cert_path(), &old).expect("cert");
    sighup(&s);
    wait_log(&s, "TLS certificate reloaded", 2).await;
    s.client().await;
    s.stop();
}

/// The metrics address the server logged (it was started on port 0).
fn metrics_addr(s: &Orchestrator) -> SocketAddr {
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("metrics endpoint listening"))
        .unwrap_or_else(|| panic!("no metrics listener in the log:\n{log}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no addr in {line:?}"))
}

#[tokio::test]
async fn refusals_are_counted_as_refused_and_audited() {
    let s = Orchestrator::start(&["--metrics-listen", "127.0.0.1:0"]).await;
    let addr = metrics_addr(&s);
    let before = scrape(addr).await;
    let series = |m: &str, method: &str, code: &str, result: &str| {
        value(
            m,
            &format!(
                "leotest_orchestrator_rpc_requests_total{{method=\"{method}\",code=\"{code}\",\
                 result=\"{result}\"}}"
            ),
        )
    };
    // Zero from the start, for every RPC.
    assert_eq!(series(&before, "schedule_job", "OK", "refused"), 0.0);
    assert_eq!(series(&before, "delete_node", "OK", "ok"), 0.0);

    let alice = user(&s, "alice-ops", UserRoles::User).await;
    let Creds::Token(_, alice_token) = &alice else {
        panic!("static credentials expected")
    };
    let mut c = s.client().await;
    // A USER may not register users: OK status, FAILED state (the original's answer).
    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: "mallory".into(),
                name: "m".into(),
                role: UserRoles::Admin as i32,
                team: "t".into(),
            },
            &alice,
        ))
        .await
        .expect("OK status")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    let m = scrape(addr).await;
    assert_eq!(series(&m, "register_user", "OK", "refused"), 1.0);
    assert_eq!(
        series(&m, "register_user", "OK", "ok"),
        1.0,
        "alice herself"
    );

    // One audit line per state-changing RPC: who, what, result; never the reply's token.
    let log = s.log();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("state-changing rpc"))
        .collect();
    assert_eq!(audit.len(), 2, "{log}");
    assert!(
        audit[0].contains("rpc=\"register_user\"")
            && audit[0].contains("userid=admin")
            && audit[0].contains("id=alice-ops")
            && audit[0].contains("result=\"ok\""),
        "{}",
        audit[0]
    );
    assert!(audit[1].contains("userid=alice-ops"), "{}", audit[1]);
    assert!(audit[1].contains("id=mallory"), "{}", audit[1]);
    assert!(audit[1].contains("result=\"refused\""), "{}", audit[1]);
    assert!(audit.iter().all(|l| l.contains(" INFO ")), "{audit:?}");
    assert!(!log.contains(alice_token.as_str()), "token in the log");
    assert!(!log.contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn text_format_scrapes_pass_promtool() {
    let s = Orchestrator::start(&["--metrics-listen", "127.0.0.1:0"]).await;
    let addr = metrics_addr(&s);
    let _ = s.client().await;
    let text = leotest_metrics::get_text(addr, "/metrics")
        .await
        .expect("scrape");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!text.body.contains("# EOF"));
    for name in [
        "\nprocess_resident_memory_bytes ",
        "\nprocess_open_fds ",
        "\nprocess_start_time_seconds ",
        "\nprocess_cpu_seconds_total ",
        "\nleotest_orchestrator_build_info{version=\"",
        "\n# TYPE leotest_orchestrator_rpc_requests_total counter\n",
    ] {
        assert!(text.body.contains(name), "{name:?} not in:\n{}", text.body);
    }
    // Prometheus itself asks for OpenMetrics and gets it.
    let om = scrape(addr).await;
    assert!(om.ends_with("# EOF\n"));
    if promtool_available() {
        promtool_check(&text.body).unwrap_or_else(|e| panic!("promtool: {e}\n{}", text.body));
    }
}
