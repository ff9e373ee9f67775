//! End-to-end tests on the real Docker engine: containers on a user-defined network talk to the
//! kernel-service binary, which asks the real orchestrator binary over TLS.
//!
//! Docker is required: without it these tests FAIL. Set `LEOTEST_SKIP_DOCKER_TESTS=1` to skip
//! them locally on a machine without Docker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::time::{Duration, Instant};

use support::{docker_available, free_port, netns_cca, Env, Roles};

#[test]
fn security_privileged_user_changes_only_its_own_netns_and_others_are_denied() {
    if !docker_available() {
        return;
    }
    let mut env = Env::new("roles");
    let orch = env.start_orchestrator();
    env.register(orch, "alice", Roles::UserPriv);
    env.register(orch, "bob", Roles::User);
    let kport = env.start_kernel(orch, "3s");

    let priv_c = env.container("priv", Some("alice"));
    let user_c = env.container("user", Some("bob"));
    let anon_c = env.container("anon", None);

    let before = netns_cca(&priv_c);
    let reply = env.ask(&priv_c, kport, "cca.check");
    assert_eq!(
        reply,
        format!("net.ipv4.tcp_congestion_control = {before}\n")
    );

    let available =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").unwrap();
    let target = available
        .split_whitespace()
        .find(|a| *a != before)
        .expect("a second congestion control algorithm")
        .to_string();
    let neighbour_before = netns_cca(&user_c);
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
    let reply = env.ask(&priv_c, kport, &format!("cca.change {target}"));
    assert_eq!(
        reply,
        format!("net.ipv4.tcp_congestion_control = {target}\n")
    );
    assert_eq!(netns_cca(&priv_c), target);
    assert_eq!(netns_cca(&user_c), neighbour_before);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap(),
        host_before
    );

    assert_eq!(env.ask(&user_c, kport, "cca.check"), "access_denied");
    assert_eq!(env.ask(&anon_c, kport, "cca.check"), "access_denied");
    let reply = env.ask(&priv_c, kport, "bbr2.param.set ../../../etc/passwd 1");
    assert!(reply.contains("error"), "{reply}");
    // The service keeps serving after bad input, and a check (read through the namespace
    // handles kept since the first connection) sees the changed value.
    assert_eq!(
        env.ask(&priv_c, kport, "cca.check"),
        format!("net.ipv4.tcp_congestion_control = {target}\n")
    );

    // IP reuse in both directions: a privileged owner's address handed to a USER must be
    // denied, and a USER's address handed to a privileged user must be granted.
    let old_ip = env.ip(&priv_c);
    env.remove(&priv_c);
    let reused = env.container("reuse1", Some("bob"));
    assert_eq!(env.ask(&reused, kport, "cca.check"), "access_denied");
    let bob_ip = env.ip(&reused);
    env.remove(&reused);
    let reused2 = env.container("reuse2", Some("alice"));
    assert!(env
        .ask(&reused2, kport, "cca.check")
        .starts_with("net.ipv4.tcp_congestion_control = "));
    if env.ip(&reused2) != bob_ip || bob_ip != old_ip {
        eprintln!("note: docker did not hand out the same address again ({old_ip}, {bob_ip})");
    }
}

#[test]
fn security_orchestrator_down_denies_within_deadline() {
    if !docker_available() {
        return;
    }
    let mut env = Env::new("down");
    let dead_port = free_port();
    let kport = env.start_kernel(dead_port, "2s");
    let c = env.container("priv", Some("alice"));
    let t = Instant::now();
    assert_eq!(env.ask(&c, kport, "cca.check"), "access_denied");
    // Generous bound: the deadline plus docker exec overhead; the point is "not hanging".
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
}
