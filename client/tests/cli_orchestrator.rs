//! `leotest` against the real orchestrator binary over TLS: users, nodes, config, services,
//! and every error path a script must be able to tell apart by exit code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use support::*;

#[test]
fn original_cli_test_user_sequence() {
    // cli/cli-test.sh of the original, user part, with `leotest` in place of `python3 cli.py`.
    let o = orchestrator();
    for (id, name, role, team) in [
        ("user-id-1", "Admin", "admin", "Project Leapord - MSRI"),
        (
            "user-id-2",
            "MSR test node",
            "node",
            "Project Leapord - MSRI",
        ),
        ("user-id-3", "Surrey node", "node", "University of Surrey"),
    ] {
        let r = o.leotest(&[
            "user",
            "--action=register",
            &format!("--id={id}"),
            &format!("--name={name}"),
            &format!("--role={role}"),
            &format!("--team={team}"),
        ]);
        r.expect(0);
        assert!(r.stdout.contains("SUCCESS"), "{r:?}");
    }

    let r = o.leotest(&["user", "--action=get", "--id=user-id-2"]);
    r.expect(0);
    assert!(
        r.stdout.contains("MSR test node") && r.stdout.contains("NODE"),
        "{r:?}"
    );

    o.leotest(&[
        "user",
        "--action=modify",
        "--id=user-id-1",
        "--name=Admin",
        "--role=user",
        "--team=Proj. Leopard",
    ])
    .expect(0);
    let r = o.leotest(&["--json", "user", "--action=get", "--id=user-id-1"]);
    r.expect(0);
    let v = r.json();
    assert_eq!(v["role"], "USER");
    assert_eq!(v["team"], "Proj. Leopard");

    for id in ["user-id-1", "user-id-2", "user-id-3"] {
        o.leotest(&["user", "--action=delete", &format!("--id={id}")])
            .expect(0);
    }
    for id in ["user-id-1", "user-id-2", "user-id-3"] {
        let r = o.leotest(&["--json", "user", "--action=get", &format!("--id={id}")]);
        r.expect(1);
        // Not found is an error object, never a record of default values.
        assert_eq!(r.json()["exit_code"], 1);
        assert!(
            r.json()["error"].as_str().unwrap().contains("not found"),
            "{r:?}"
        );
    }
}

#[test]
fn registering_an_existing_user_fails_with_exit_1() {
    let o = orchestrator();
    let args = [
        "user",
        "--action=register",
        "--id=dup",
        "--name=D",
        "--role=user",
        "--team=t",
    ];
    o.leotest(&args).expect(0);
    let r = o.leotest(&[
        "--json", args[0], args[1], args[2], args[3], args[4], args[5],
    ]);
    r.expect(1);
    assert_eq!(r.json()["state"], "FAILED");
}

#[test]
fn register_without_role_is_a_usage_error() {
    let o = orchestrator();
    let r = o.leotest(&["user", "--action=register", "--id=x", "--name=X"]);
    r.expect(2);
    assert!(r.stderr.contains("--role"), "{r:?}");
}

#[test]
fn wrong_token_exits_4_with_a_clear_message() {
    let o = orchestrator();
    let r = o.leotest_as(
        "admin",
        "not-the-token",
        &["user", "--action=get", "--id=admin"],
    );
    r.expect(4);
    assert!(r.stderr.contains("authentication failed"), "{r:?}");
    assert!(!r.stderr.contains("not-the-token"), "token echoed: {r:?}");

    let r = o.leotest_as(
        "nobody",
        ADMIN_TOKEN,
        &["user", "--action=get", "--id=admin"],
    );
    r.expect(4);

    // A JWT the server cannot verify is rejected the same way.
    let out = leotest_cmd(o.cwd())
        .args([
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            &o.port.to_string(),
        ])
        .args([
            "--jwt-access-token",
            "e30.e30.sig",
            "user",
            "--action=get",
            "--id=admin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn missing_token_exits_4_without_contacting_the_server() {
    // No orchestrator at all: the error must be about credentials, not reachability.
    let dir = tempfile::tempdir().unwrap();
    let r = leotest_plain(dir.path(), &["user", "--action=get", "--id=admin"]);
    r.expect(4);
    assert!(r.stderr.contains("no access token"), "{r:?}");
}

#[test]
fn unreachable_server_exits_3() {
    let o = orchestrator();
    let closed = free_port();
    let out = leotest_cmd(o.cwd())
        .env("LEOTEST_ACCESS_TOKEN", ADMIN_TOKEN)
        .args([
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            &closed.to_string(),
        ])
        .args(["--retries", "1", "user", "--action=get", "--id=admin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");

    // JSON mode reports the error on stdout for scripts.
    let out = leotest_cmd(o.cwd())
        .env("LEOTEST_ACCESS_TOKEN", ADMIN_TOKEN)
        .args([
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            &closed.to_string(),
        ])
        .args([
            "--retries",
            "0",
            "--json",
            "user",
            "--action=get",
            "--id=admin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 3);
}

#[test]
fn certificate_name_mismatch_is_refused() {
    let o = orchestrator();
    let r = o.leotest(&[
        "--retries=0",
        "--tls-domain=other.example",
        "user",
        "--action=get",
        "--id=admin",
    ]);
    r.expect(3);
    assert!(r.stderr.contains("certificate"), "{r:?}");
}

#[test]
fn missing_ca_certificate_is_reported() {
    let o = orchestrator();
    let r = o.leotest(&["--ca-cert=nope.crt", "user", "--action=get", "--id=admin"]);
    r.expect(5);
    assert!(r.stderr.contains("nope.crt"), "{r:?}");

    std::fs::write(o.cwd().join("garbage.crt"), "not a certificate\n").unwrap();
    let r = o.leotest(&[
        "--ca-cert=garbage.crt",
        "user",
        "--action=get",
        "--id=admin",
    ]);
    r.expect(5);
    assert!(r.stderr.contains("no PEM certificate"), "{r:?}");
}

#[test]
fn a_plain_user_is_refused_admin_actions() {
    let o = orchestrator();
    let r = o.leotest(&[
        "--json",
        "user",
        "--action=register",
        "--id=alice",
        "--name=A",
        "--role=user",
        "--team=t",
    ]);
    r.expect(0);
    let token = token_from_message(r.json()["message"].as_str().unwrap());

    let r = o.leotest_as(
        "alice",
        &token,
        &[
            "--json",
            "user",
            "--action=register",
            "--id=eve",
            "--name=E",
            "--role=admin",
            "--team=t",
        ],
    );
    // A permission refusal is exit 4 (authentication or permission), not a rule's refusal.
    r.expect(4);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{r:?}"
    );

    // kernel access needs a privileged role.
    let r = o.leotest(&[
        "services",
        "--name=kernel",
        "--action=verify",
        "--verify-userid=alice",
    ]);
    r.expect(1);
    let r = o.leotest(&[
        "services",
        "--name=kernel",
        "--action=verify",
        "--verify-userid=admin",
    ]);
    r.expect(0);
}

#[test]
fn node_lifecycle() {
    let o = orchestrator();
    let r = o.leotest(&[
        "--json",
        "node",
        "--action=register",
        "--nodeid=node-1",
        "--name=Node One",
        "--location=Bangalore",
        "--coords=12.9,77.5",
        "--provider=starlink",
        "--description=roof",
    ]);
    r.expect(0);
    let node_token = token_from_message(r.json()["message"].as_str().unwrap());

    let r = o.leotest(&["node", "--action=get"]);
    r.expect(0);
    assert!(
        r.stdout.contains("nodes (1):") && r.stdout.contains("Bangalore"),
        "{r:?}"
    );

    o.leotest(&[
        "node",
        "--action=update",
        "--nodeid=node-1",
        "--location=Delhi",
        "--public-ip=192.0.2.7",
    ])
    .expect(0);
    let r = o.leotest(&["--json", "node", "--action=get", "--nodeid=node-1"]);
    let node = &r.json()["nodes"][0];
    assert_eq!(node["location"], "Delhi");
    assert_eq!(node["public_ip"], "192.0.2.7");

    o.leotest(&["node", "--action=scavenger-set", "--nodeid=node-1"])
        .expect(0);
    let r = o.leotest(&[
        "--json",
        "node",
        "--action=scavenger-get",
        "--nodeid=node-1",
    ]);
    assert_eq!(r.json()["scavenger_mode_active"], true);
    o.leotest(&["node", "--action=scavenger-unset", "--nodeid=node-1"])
        .expect(0);
    let r = o.leotest(&[
        "--json",
        "node",
        "--action=scavenger-get",
        "--nodeid=node-1",
    ]);
    assert_eq!(r.json()["scavenger_mode_active"], false);

    // The node itself reports heartbeats with its own token.
    let r = o.leotest_as(
        "node-1",
        &node_token,
        &["--json", "node", "--action=heartbeat", "--nodeid=node-1"],
    );
    r.expect(0);
    assert_eq!(r.json()["received"], true);

    o.leotest(&[
        "node",
        "--action=delete",
        "--nodeid=node-1",
        "--delete-jobs",
    ])
    .expect(0);
    let r = o.leotest(&["--json", "node", "--action=get", "--nodeid=node-1"]);
    assert_eq!(r.json()["nodes"].as_array().map(Vec::len), Some(0));
    let r = o.leotest(&["node", "--action=delete", "--nodeid=node-1"]);
    r.expect(1);
}

#[test]
fn node_actions_that_name_a_node_require_nodeid() {
    let o = orchestrator();
    o.leotest(&["node", "--action=update"]).expect(2);
    o.leotest(&["node", "--action=scavenger-set"]).expect(2);
}

#[test]
fn global_config_roundtrip() {
    let o = orchestrator();
    let path = o.cwd().join("global_config.json");
    std::fs::write(
        &path,
        r#"{"datastore":{"blob":{"connectionString":"DefaultEndpointsProtocol=https","container":"leotest","artifactPath":"jobs"}},"weather":{"apikey":"k1"}}"#,
    )
    .unwrap();
    o.leotest(&["config", "--action=update", "--path=global_config.json"])
        .expect(0);
    let r = o.leotest(&["--json", "config", "--action=get"]);
    r.expect(0);
    let v = r.json();
    assert_eq!(v["config"]["datastore"]["blob"]["container"], "leotest");
    assert_eq!(v["config"]["weather"]["apikey"], "k1");

    let r = o.leotest(&["config", "--action=update"]);
    r.expect(2);
    std::fs::write(&path, "{not json").unwrap();
    o.leotest(&["config", "--action=update", "--path=global_config.json"])
        .expect(2);
    o.leotest(&["config", "--action=update", "--path=missing.json"])
        .expect(5);
}

#[test]
fn table_output_is_readable() {
    let o = orchestrator();
    let r = o.leotest(&["user", "--action=get", "--id=admin"]);
    r.expect(0);
    let first = r.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("exists") && first.ends_with("true"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("role") && l.ends_with("ADMIN")),
        "{r:?}"
    );
}

#[test]
fn silent_server_times_out_with_exit_3() {
    // Accepts TCP but never speaks TLS: the call must end at --timeout, not hang.
    let o = orchestrator();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(conns);
    });
    let out = leotest_cmd(o.cwd())
        .env("LEOTEST_ACCESS_TOKEN", ADMIN_TOKEN)
        .args(["--grpc-host", "127.0.0.1", "--grpc-port", &port.to_string()])
        .args([
            "--timeout",
            "1",
            "--retries",
            "0",
            "user",
            "--action=get",
            "--id=admin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    holder.join().unwrap();
}
