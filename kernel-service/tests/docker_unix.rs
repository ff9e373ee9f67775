//! The unix socket listener from real containers (issue 23): the caller is the connecting
//! process's container (SO_PEERCRED/SO_PEERPIDFD → cgroup → container → `userid` label), so a
//! process of another container that can reach the socket file is still identified as itself.
//!
//! Docker is required: without it these tests FAIL. Set `LEOTEST_SKIP_DOCKER_TESTS=1` to skip
//! them locally on a machine without Docker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use leotest_kernel_service::sys::privs;
use support::{docker, docker_available, docker_ok, kernel_bin, Env, KernelOpts, Roles};

const CCA: &str = "net.ipv4.tcp_congestion_control = ";
/// Where the test containers see the socket's directory.
const IN_CONTAINER: &str = "/run/leotest/kernel.sock";

/// Removes an image on drop (declared before the `Env`, so it goes after its containers).
struct Rmi(Option<String>);

impl Drop for Rmi {
    fn drop(&mut self) {
        if let Some(i) = &self.0 {
            let _ = docker(&["rmi", "-f", i]);
        }
    }
}

/// The shared libraries `bin` links (absolute paths, from `ldd`).
fn libraries(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// An image `FROM` the test's busybox image with the kernel-service binary at `/ask` (its
/// `ask` subcommand is the in-container unix-socket client) and the libraries it links.
fn client_image(env: &Env) -> String {
    let ctx = env.dir.path().join("ask-image");
    let root = ctx.join("root");
    std::fs::create_dir_all(&root).unwrap();
    for lib in libraries(&kernel_bin()) {
        let dst = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &dst).unwrap();
    }
    std::fs::copy(kernel_bin(), root.join("ask")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nCOPY root/ /\n", env.image),
    )
    .unwrap();
    let image = format!("{}-ask:test", env.tag);
    docker_ok(&["build", "-q", "-t", &image, ctx.to_str().unwrap()]);
    image
}

/// Runs the `ask` client inside `container`; returns its output.
fn ask(container: &str, line: &str) -> String {
    docker(&[
        "exec",
        container,
        "busybox",
        "timeout",
        "30",
        "/ask",
        "ask",
        "--socket",
        IN_CONTAINER,
        line,
    ])
    .1
}

#[test]
fn security_unix_socket_callers_are_identified_by_their_own_container() {
    if !docker_available() {
        return;
    }
    let mut base = Rmi(None);
    let mut env = Env::new("unix");
    base.0 = Some(env.image.clone());
    env.image = client_image(&env);
    let orch = env.start_orchestrator();
    env.register(orch, "alice", Roles::UserPriv);
    env.register(orch, "bob", Roles::User);
    let dir = env.dir.path().join("sock");
    std::fs::create_dir(&dir).unwrap();
    let sock = dir.join("kernel.sock");
    env.start_kernel_with(
        orch,
        KernelOpts {
            deadline: Some("3s"),
            extra: vec!["--unix-socket".into(), sock.to_str().unwrap().into()],
        },
    );
    // Least privilege (issue 23): the service runs with no_new_privs and only the
    // capabilities it uses (it was uid 0 with every capability but one).
    let pid = env.children.last().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let caps = |k: &str| {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim();
        u64::from_str_radix(v, 16).unwrap()
    };
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert_eq!(caps("CapBnd:"), privs::daemon_mask(), "{status}");
    assert_eq!(caps("CapEff:") & !privs::daemon_mask(), 0, "{status}");
    assert_eq!(caps("CapEff:") & (1 << 13), 0, "NET_RAW: {status}");
    let t = Instant::now();
    while !sock.exists() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Read-only, as the testbed mounts it: a container cannot replace the socket.
    let mount = format!("{}:/run/leotest:ro", dir.display());
    let alice = env.container_with("alice", Some("alice"), &["-v", &mount]);
    let bob = env.container_with("bob", Some("bob"), &["-v", &mount]);
    let nobody = env.container_with("unlabeled", None, &["-v", &mount]);

    // Grant: alice's container (USER_PRIV) gets its own namespace's CCA, as over TCP.
    let out = ask(&alice, "cca.check");
    assert!(out.starts_with(CCA), "{out}");
    // Deny: bob (USER) and an unlabeled container hold the same socket and are themselves.
    assert_eq!(ask(&bob, "cca.check"), "access_denied");
    assert_eq!(ask(&nobody, "cca.check"), "access_denied");
    // A host process that is not in any container is refused too.
    let host = Command::new(kernel_bin())
        .args(["ask", "--socket", sock.to_str().unwrap(), "cca.check"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout), "access_denied");
    // The same commands as on TCP: a sandboxed job for alice.
    let out = ask(&alice, "job.list");
    assert!(!out.contains("access_denied"), "{out}");
}
