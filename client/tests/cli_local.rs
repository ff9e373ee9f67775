//! `leotest` behaviour that needs no orchestrator: help, usage errors, completions, and the
//! kernel-service subcommands against a fake TCP 9000 service.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use support::*;

#[test]
fn help_documents_exit_codes_and_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let r = leotest_plain(dir.path(), &["--help"]);
    r.expect(0);
    for word in [
        "Exit codes",
        "unreachable",
        "config",
        "user",
        "job",
        "run",
        "node",
        "services",
        "task",
        "kernel",
        "completions",
    ] {
        assert!(r.stdout.contains(word), "help lacks {word}: {}", r.stdout);
    }
    for family in [
        "config",
        "user",
        "job",
        "run",
        "node",
        "services",
        "task",
        "kernel",
        "completions",
    ] {
        leotest_plain(dir.path(), &[family, "--help"]).expect(0);
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    leotest_plain(dir.path(), &[]).expect(2);
    leotest_plain(dir.path(), &["user", "--action=explode", "--id=x"]).expect(2);
    leotest_plain(dir.path(), &["user", "--action=get"]).expect(2);
    leotest_plain(
        dir.path(),
        &["job", "--action=get", "--overhead", "--no-overhead"],
    )
    .expect(2);
    leotest_plain(
        dir.path(),
        &["--grpc-port=notaport", "user", "--action=get", "--id=x"],
    )
    .expect(2);
    let r = leotest_plain(dir.path(), &["--access-token=t", "job", "--action=delete"]);
    r.expect(2);
    assert!(r.stderr.contains("--jobid or --nodeid"), "{r:?}");
}

#[test]
fn unsupported_actions_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let r = leotest_plain(
        dir.path(),
        &["--access-token=t", "run", "--action=download"],
    );
    r.expect(5);
    assert!(r.stderr.contains("Azure"), "{r:?}");
    leotest_plain(
        dir.path(),
        &["--access-token=t", "job", "--action=modify", "--jobid=j"],
    )
    .expect(5);
}

#[test]
fn completions_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let r = leotest_plain(dir.path(), &["completions", shell]);
        r.expect(0);
        assert!(
            r.stdout.contains("leotest") && r.stdout.contains("grpc-host"),
            "{shell}"
        );
    }
    let r = leotest_plain(dir.path(), &["completions", "bash"]);
    assert!(
        r.stdout.contains("__complete-ids"),
        "bash completes ids from the server"
    );
    leotest_plain(dir.path(), &["completions", "cmd.exe"]).expect(2);
}

/// A fake kernel service: accepts one connection, returns the line it received, sends `reply`.
fn fake_kernel(reply: &'static [&'static str]) -> (u16, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(sock.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut w = sock;
        for part in reply {
            w.write_all(part.as_bytes()).unwrap();
            w.flush().unwrap();
            thread::sleep(std::time::Duration::from_millis(20));
        }
        line
    });
    (port, handle)
}

fn kernel(port: u16, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["kernel", "--kernel-host", "127.0.0.1"];
    let port = port.to_string();
    argv.extend(["--kernel-port", &port]);
    argv.extend_from_slice(args);
    leotest_plain(dir.path(), &argv)
}

#[test]
fn kernel_check_prints_the_reply() {
    let (port, server) = fake_kernel(&["net.ipv4.tcp_congestion_control = cubic\n"]);
    let r = kernel(port, &["check"]);
    r.expect(0);
    assert_eq!(r.stdout, "net.ipv4.tcp_congestion_control = cubic\n");
    assert_eq!(server.join().unwrap(), "cca.check\n");
}

#[test]
fn kernel_commands_send_protocol_lines() {
    let cases: [(&[&str], &str); 6] = [
        (&["cca", "set", "bbr"], "cca.change bbr\n"),
        (
            &["bbr2", "set", "loss_thresh", "10"],
            "bbr2.param.set loss_thresh 10\n",
        ),
        (
            &["job", "start", "iperf3", "-c", "server", "-t", "5"],
            "job.start iperf3 -c server -t 5\n",
        ),
        (&["job", "status", "j7"], "job.status j7\n"),
        (&["job", "stop", "j7"], "job.stop j7\n"),
        (&["job", "list"], "job.list\n"),
    ];
    for (args, line) in cases {
        let (port, server) = fake_kernel(&["ok\n"]);
        kernel(port, args).expect(0);
        assert_eq!(server.join().unwrap(), line);
    }
}

/// A fake kernel service for `job watch`: the watch stream on the first connection, then the
/// job's status line on the second; returns the lines received.
fn fake_watch(status: &'static str) -> (u16, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let mut lines = Vec::new();
        for reply in [&["line 1\n", "line 2\n", "done\n"][..], &[status][..]] {
            let (sock, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(sock.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line);
            let mut w = sock;
            for part in reply {
                w.write_all(part.as_bytes()).unwrap();
                w.flush().unwrap();
            }
        }
        lines
    });
    (port, handle)
}

#[test]
fn kernel_watch_streams_all_output() {
    let (port, server) = fake_watch("id=j1 state=COMPLETED exit_code=0 owner=a command=\"x\"\n");
    let r = kernel(port, &["job", "watch", "j1"]);
    r.expect(0);
    assert_eq!(r.stdout, "line 1\nline 2\ndone\n");
    assert_eq!(
        server.join().unwrap(),
        ["job.watch j1\n", "job.status j1\n"]
    );
}

#[test]
fn kernel_watch_exits_1_when_the_job_failed() {
    let (port, _server) = fake_watch("id=j1 state=FAILED exit_code=3 owner=a command=\"x\"\n");
    let r = kernel(port, &["job", "watch", "j1"]);
    r.expect(1);
    assert!(r.stderr.contains("ended FAILED (exit_code=3)"), "{r:?}");
}

#[test]
fn kernel_access_denied_exits_4() {
    let (port, _server) = fake_kernel(&["access_denied"]);
    let r = kernel(port, &["cca", "set", "bbr"]);
    r.expect(4);
    assert!(r.stderr.contains("access_denied"), "{r:?}");
}

#[test]
fn kernel_unreachable_exits_3() {
    let r = kernel(free_port(), &["check"]);
    r.expect(3);
    assert!(r.stderr.contains("unreachable"), "{r:?}");
}

#[test]
fn kernel_arguments_with_spaces_are_refused() {
    let r = kernel(free_port(), &["cca", "set", "bbr cubic"]);
    r.expect(2);
}

#[test]
fn kernel_json_wraps_the_reply() {
    let (port, _server) = fake_kernel(&["id=j1 state=running\n"]);
    let r = kernel(port, &["--json", "job", "status", "j1"]);
    r.expect(0);
    assert_eq!(r.json()["reply"], "id=j1 state=running\n");
}
