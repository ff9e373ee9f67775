//! One exit-code table for every command family (0 done, 1 not found / refused by a rule,
//! 2 usage, 3 unreachable or TLS, 4 authentication or permission, 5 other), what each
//! outcome prints, the scheduling checks and `job --action=plan`, and the output formats.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use leotest_test_support::future_year;
use support::*;

fn atq(o: &Orchestrator, jobid: &str, start: &str, end: &str) -> Run {
    o.leotest(&[
        "job",
        "--action=schedule",
        &format!("--jobid={jobid}"),
        "--nodeid=n1",
        "--type=atq",
        &format!("--start-date={start}"),
        &format!("--end-date={end}"),
        "--length=600",
        "--exp-config=/dev/null",
    ])
}

#[test]
fn user_family_codes() {
    let o = orchestrator();
    let token = register_alice(&o);
    // 1: not found is a message on stderr, never a record of defaults.
    let r = o.leotest(&["user", "--action=get", "--id=nobody"]);
    r.expect(1);
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.contains("user \"nobody\" not found"), "{r:?}");
    let r = o.leotest(&["--json", "user", "--action=get", "--id=nobody"]);
    r.expect(1);
    assert_eq!(r.json()["exit_code"], 1);
    // 4: a USER registering someone is a permission failure, not a refusal by a rule.
    let r = o.leotest_as(
        "alice",
        &token,
        &[
            "user",
            "--action=register",
            "--id=eve",
            "--name=E",
            "--role=admin",
        ],
    );
    r.expect(4);
    assert!(r.stderr.contains("permission denied"), "{r:?}");
    // 1: a duplicate is refused by a rule.
    o.leotest(&[
        "user",
        "--action=register",
        "--id=alice",
        "--name=A",
        "--role=user",
    ])
    .expect(1);
    // modify changes only the fields given.
    o.leotest(&["user", "--action=modify", "--id=alice", "--role=user_priv"])
        .expect(0);
    let r = o.leotest(&["--json", "user", "--action=get", "--id=alice"]);
    let v = r.json();
    assert_eq!(
        (v["name"].as_str(), v["team"].as_str(), v["role"].as_str()),
        (Some("Alice"), Some("lab"), Some("USER_PRIV"))
    );
    o.leotest(&["user", "--action=modify", "--id=nobody", "--team=x"])
        .expect(1);
    o.leotest(&["user", "--action=modify", "--id=alice"])
        .expect(2);
    // 4: wrong token.
    o.leotest_as("alice", "wrong", &["user", "--action=get", "--id=alice"])
        .expect(4);
}

#[test]
fn job_family_codes_and_scheduling_checks() {
    let y = future_year();
    let o = orchestrator();
    let token = register_alice(&o);
    // 2: schedules that cannot work, refused before anything is sent.
    let r = atq(
        &o,
        "j",
        &format!("{y}-01-02T00:00:00"),
        &format!("{y}-01-01T00:00:00"),
    );
    r.expect(2);
    assert!(r.stderr.contains("is not after"), "{r:?}");
    atq(&o, "j", "2020-01-01T00:00:00", "2020-01-02T00:00:00").expect(2);
    let r = o.leotest(&[
        "job",
        "--action=schedule",
        "--jobid=j",
        "--nodeid=n1",
        "--type=cron",
        &format!("--start-date={y}-01-01T00:00:00"),
        &format!("--end-date={y}-01-02T00:00:00"),
        "--length=60",
    ]);
    r.expect(2);
    assert!(r.stderr.contains("--schedule"), "{r:?}");
    let r = o.leotest(&[
        "job",
        "--action=schedule",
        "--jobid=j",
        "--nodeid=n1",
        "--type=atq",
        &format!("--start-date={y}-01-01T00:00:00"),
        &format!("--end-date={y}-01-02T00:00:00"),
    ]);
    r.expect(2);
    assert!(r.stderr.contains("--length"), "{r:?}");

    // 0, with a warning for a node that is not registered.
    let r = atq(
        &o,
        "a1",
        &format!("{y}-01-01T10:00:00"),
        &format!("{y}-01-01T11:00:00"),
    );
    r.expect(0);
    assert!(r.stderr.contains("not registered"), "{r:?}");
    // 1: a conflict is a refusal by a rule.
    atq(
        &o,
        "a2",
        &format!("{y}-01-01T10:00:00"),
        &format!("{y}-01-01T11:00:00"),
    )
    .expect(1);

    // Plan: conflicts and the nearest free slot, nothing created.
    let plan = |start: &str| {
        o.leotest(&[
            "--json",
            "job",
            "--action=plan",
            "--nodeid=n1",
            "--type=atq",
            &format!("--start-date={start}"),
            &format!("--end-date={y}-01-01T12:00:00"),
            "--length=600",
        ])
    };
    let r = plan(&format!("{y}-01-01T10:00:00"));
    r.expect(1);
    let v = r.json();
    assert_eq!(v["conflicts"][0]["job"], "a1", "{v}");
    assert_eq!(v["free_slot_start"], format!("{y}-01-01T10:11:00Z"), "{v}");
    plan(&format!("{y}-01-01T10:11:00")).expect(0);
    o.leotest(&["job", "--action=get", "--jobid=plan"])
        .expect(1);

    // Times print in UTC with Z, whatever was sent.
    let r = o.leotest(&["--json", "job", "--action=get", "--jobid=a1"]);
    r.expect(0);
    assert_eq!(r.json()["start_date"], format!("{y}-01-01T10:00:00Z"));
    let r = o.leotest(&["--tz=+05:30", "--json", "job", "--action=get", "--jobid=a1"]);
    assert_eq!(r.json()["start_date"], format!("{y}-01-01T15:30:00+05:30"));

    // Another user's job: not found to read, permission to delete.
    let r = o.leotest_as("alice", &token, &["job", "--action=get", "--jobid=a1"]);
    r.expect(1);
    assert!(
        r.stdout.is_empty() && r.stderr.contains("not found"),
        "{r:?}"
    );
    let r = o.leotest_as("alice", &token, &["job", "--action=delete", "--jobid=a1"]);
    r.expect(4);
    let r = o.leotest_as("alice", &token, &["job", "--action=delete", "--nodeid=n1"]);
    r.expect(4);
    assert!(r.stderr.contains("permission denied"), "{r:?}");
    o.leotest_as("alice", &token, &["job", "--action=get", "--owner=admin"])
        .expect(4);

    // --owner / --all: the listing is separate from the login.
    o.leotest_as(
        "alice",
        &token,
        &[
            "job",
            "--action=schedule",
            "--jobid=b1",
            "--nodeid=n1",
            "--type=atq",
            &format!("--start-date={y}-01-01T11:00:00"),
            &format!("--end-date={y}-01-01T12:00:00"),
            "--length=600",
            "--exp-config=/dev/null",
        ],
    )
    .expect(0);
    let ids = |r: &Run| -> Vec<String> {
        r.json()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    let r = o.leotest(&["--json", "job", "--action=get", "--owner=alice"]);
    assert_eq!(ids(&r), ["b1"]);
    let r = o.leotest(&["--json", "job", "--action=get", "--all"]);
    let mut all = ids(&r);
    all.sort();
    assert_eq!(all, ["a1", "b1"]);

    // Completion of ids from the server: every job for ADMIN, one's own for a user.
    let r = o.leotest(&["__complete-ids", "jobs"]);
    r.expect(0);
    assert_eq!(r.stdout, "a1\nb1\n");
    let r = o.leotest_as("alice", &token, &["__complete-ids", "jobs"]);
    assert_eq!(r.stdout, "b1\n");

    // 1: deleting what does not exist.
    let r = o.leotest(&["job", "--action=delete", "--jobid=nope"]);
    r.expect(1);
    assert!(r.stderr.contains("does not exist"), "{r:?}");
}

#[test]
fn node_config_and_task_families_refuse_users_with_4() {
    let o = orchestrator();
    let token = register_alice(&o);
    let as_alice = |args: &[&str]| o.leotest_as("alice", &token, args);
    as_alice(&["node", "--action=register", "--nodeid=n9"]).expect(4);
    as_alice(&["node", "--action=delete", "--nodeid=n9"]).expect(4);
    std::fs::write(o.cwd().join("c.json"), "{}").unwrap();
    as_alice(&["config", "--action=update", "--path=c.json"]).expect(4);
    as_alice(&[
        "task",
        "--action=schedule",
        "--taskid=t",
        "--runid=r",
        "--jobid=nope",
        "--nodeid=n",
        "--type=SERVER_START",
    ])
    .expect(4);
    o.leotest(&["node", "--action=delete", "--nodeid=n9"])
        .expect(1);
}

#[test]
fn output_formats_and_fields() {
    let o = orchestrator();
    register_alice(&o);
    let r = o.leotest(&["--output=yaml", "user", "--action=get", "--id=alice"]);
    r.expect(0);
    assert!(r.stdout.contains("name: \"Alice\"\n"), "{r:?}");
    let r = o.leotest(&[
        "-o",
        "json",
        "--fields=id,role",
        "user",
        "--action=get",
        "--id=alice",
    ]);
    assert_eq!(r.json(), serde_json::json!({"id": "alice", "role": "USER"}));
    let r = o.leotest(&["--fields=id,team", "user", "--action=get", "--id=alice"]);
    assert!(
        r.stdout.contains("id    alice")
            && r.stdout.contains("team  lab")
            && !r.stdout.contains("role"),
        "{r:?}"
    );
}

#[test]
fn connection_failures_name_the_address_and_the_option() {
    let o = orchestrator();
    // Wrong CA: a TLS error naming the address and --ca-cert.
    let other = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(leotest_support_gen_cert())
        .current_dir(other.path())
        .args(["gen-cert", "--force"])
        .env_clear()
        .status();
    if status.is_ok_and(|s| s.success()) {
        let ca = other.path().join("certs/server.crt");
        let r = o.leotest(&[
            &format!("--ca-cert={}", ca.display()),
            "--retries=0",
            "user",
            "--action=get",
            "--id=admin",
        ]);
        r.expect(3);
        assert!(r.stderr.contains(&format!("127.0.0.1:{}", o.port)), "{r:?}");
        assert!(r.stderr.contains("--ca-cert"), "{r:?}");
    }
    // Name mismatch: mentions --tls-domain.
    let r = o.leotest(&[
        "--retries=0",
        "--tls-domain=other.example",
        "user",
        "--action=get",
        "--id=admin",
    ]);
    r.expect(3);
    assert!(r.stderr.contains("--tls-domain"), "{r:?}");
    // A server that accepts TCP and never speaks TLS: exit 3, naming the address.
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    holder.join().unwrap();
}

/// The orchestrator binary (it has `gen-cert`).
fn leotest_support_gen_cert() -> std::path::PathBuf {
    leotest_test_support::orchestrator_bin()
}
