//! `leotest login` / `whoami` / `logout` / `context` against the real orchestrator: a saved
//! profile (mode 0600, CA copied in) makes every command work from any directory, with
//! environment variables and flags overriding it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use support::*;

/// `leotest` with only the given environment (plus a config directory), in `cwd`.
fn lt(cwd: &Path, config: &Path, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Run {
    use std::io::Write;
    let mut cmd = leotest_cmd(cwd);
    cmd.env("XDG_CONFIG_HOME", config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run leotest");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn login_saves_a_private_profile_used_from_any_directory() {
    let o = orchestrator();
    let alice_token = register_alice(&o);
    let config = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let ca = o.cwd().join("certs/server.crt");
    let port = o.port.to_string();
    let token_file = config.path().join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();

    // A wrong token is refused and nothing is saved.
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &[
            "login",
            "--grpc-host=127.0.0.1",
            &format!("--grpc-port={port}"),
            &format!("--ca-cert={}", ca.display()),
            "--userid=admin",
        ],
        "wrong-token\n",
    );
    r.expect(4);
    assert!(!config.path().join("leotest/config.json").exists(), "{r:?}");

    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &[
            "login",
            "--grpc-host=127.0.0.1",
            &format!("--grpc-port={port}"),
            &format!("--ca-cert={}", ca.display()),
            "--userid=admin",
            &format!("--access-token-file={}", token_file.display()),
        ],
        "",
    );
    r.expect(0);
    assert!(r.stdout.contains("Logged in to 127.0.0.1"), "{r:?}");
    assert!(!r.stdout.contains(ADMIN_TOKEN) && !r.stderr.contains(ADMIN_TOKEN));
    let profile = config.path().join("leotest/config.json");
    let mode = std::fs::metadata(&profile).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "profile mode");
    assert!(config.path().join("leotest/ca-default.crt").exists());

    // From a directory without certs/: the profile supplies server, CA and token.
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["--json", "whoami"],
        "",
    );
    r.expect(0);
    assert_eq!(r.json()["role"], "ADMIN", "{r:?}");
    assert_eq!(r.json()["context"], "default");
    lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["user", "--action=get", "--id=alice"],
        "",
    )
    .expect(0);

    // The environment overrides the profile, and flags override the environment.
    let closed = free_port().to_string();
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[("LEOTEST_GRPC_PORT", &closed), ("LEOTEST_RETRIES", "0")],
        &["whoami"],
        "",
    );
    r.expect(3);
    assert!(r.stderr.contains(&format!("127.0.0.1:{closed}")), "{r:?}");
    lt(
        elsewhere.path(),
        config.path(),
        &[("LEOTEST_GRPC_PORT", &closed)],
        &[&format!("--grpc-port={port}"), "whoami"],
        "",
    )
    .expect(0);

    // A second context, token on stdin; it becomes the current one.
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["--context=lab", "login", "--userid=alice"],
        &format!("{alice_token}\n"),
    );
    // No server given for `lab`: the defaults (0.0.0.0:50051) are not where it runs.
    assert_ne!(r.code, 0, "{r:?}");
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &[
            "--context=lab",
            "login",
            "--grpc-host=127.0.0.1",
            &format!("--grpc-port={port}"),
            &format!("--ca-cert={}", ca.display()),
            "--userid=alice",
        ],
        &format!("{alice_token}\n"),
    );
    r.expect(0);
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["--json", "whoami"],
        "",
    );
    assert_eq!(
        (r.json()["userid"].clone(), r.json()["role"].clone()),
        ("alice".into(), "USER".into())
    );
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["--context=default", "--json", "whoami"],
        "",
    );
    assert_eq!(r.json()["userid"], "admin", "{r:?}");
    let r = lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["context", "list"],
        "",
    );
    r.expect(0);
    assert!(
        r.stdout.contains("lab") && r.stdout.contains("default"),
        "{r:?}"
    );
    lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["--context=nope", "whoami"],
        "",
    )
    .expect(2);

    // Logging out removes the token: commands then say how to log in.
    lt(elsewhere.path(), config.path(), &[], &["logout"], "").expect(0);
    let r = lt(elsewhere.path(), config.path(), &[], &["whoami"], "");
    r.expect(4);
    assert!(r.stderr.contains("leotest login"), "{r:?}");
    lt(
        elsewhere.path(),
        config.path(),
        &[],
        &["context", "use", "default"],
        "",
    )
    .expect(0);
    lt(elsewhere.path(), config.path(), &[], &["whoami"], "").expect(0);
}

#[test]
fn access_token_file_and_env_names() {
    let o = orchestrator();
    let file = o.cwd().join("token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let config = tempfile::tempdir().unwrap();
    let port = o.port.to_string();
    let base = [
        ("LEOTEST_GRPC_HOST", "127.0.0.1"),
        ("LEOTEST_GRPC_PORT", port.as_str()),
    ];
    let r = lt(
        o.cwd(),
        config.path(),
        &base,
        &[
            "--access-token-file=token",
            "user",
            "--action=get",
            "--id=admin",
        ],
        "",
    );
    r.expect(0);
    let mut env = base.to_vec();
    let path = file.display().to_string();
    env.push(("LEOTEST_ACCESS_TOKEN_FILE", &path));
    lt(
        o.cwd(),
        config.path(),
        &env,
        &["user", "--action=get", "--id=admin"],
        "",
    )
    .expect(0);
    // A flag beats the environment: a wrong token file given as a flag is used (and refused).
    std::fs::write(o.cwd().join("bad"), "nope\n").unwrap();
    lt(
        o.cwd(),
        config.path(),
        &env,
        &[
            "--access-token-file=bad",
            "user",
            "--action=get",
            "--id=admin",
        ],
        "",
    )
    .expect(4);
    let r = lt(
        o.cwd(),
        config.path(),
        &base,
        &[
            "--access-token-file=missing",
            "user",
            "--action=get",
            "--id=admin",
        ],
        "",
    );
    r.expect(5);
    assert!(r.stderr.contains("missing"), "{r:?}");
}
