//! The binary's log lines as `docker logs` or journald receive them (stdout is a pipe): no
//! colour codes in either format, one JSON object per line with `--log-format json` (or
//! `LEOTEST_LOG_FORMAT=json`), and no token in them. Needs no Docker: the start-up warning
//! about a token on the command line is logged before the service needs anything else.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leotest-kernel-service"))
        .env_clear()
        .envs(env.iter().copied())
        .args([
            "--nodeid",
            "node-log",
            "--access-token",
            "secret-token-4b1d",
            "--ca-cert",
            "/nonexistent/ca.crt",
        ])
        .args(args)
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn json_and_text_logs_have_no_colour_codes_and_no_token() {
    for (args, env) in [
        (vec!["--log-format", "json"], vec![]),
        (vec![], vec![("LEOTEST_LOG_FORMAT", "json")]),
    ] {
        let (ok, out) = run(&args, &env);
        assert!(!ok, "starts without a CA certificate");
        let lines: Vec<&str> = out.lines().collect();
        assert!(!lines.is_empty(), "no log line on stdout");
        for line in &lines {
            // One object per line (tracing-subscriber's JSON formatter).
            assert!(
                line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":"),
                "{line}"
            );
        }
        assert!(out.contains("--access-token"), "{out}");
        assert!(!out.contains('\u{1b}'), "colour codes: {out:?}");
        assert!(!out.contains("secret-token-4b1d"), "{out}");
    }
    let (_, text) = run(&[], &[]);
    assert!(text.contains(" WARN "), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe: {text:?}");
    assert!(!text.trim_start().starts_with('{'), "{text}");
}
