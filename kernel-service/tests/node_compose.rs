//! The kernel section of the original's `docker-compose-node.yaml`, run with our image.
//!
//! The original file gives the kernel container `privileged: true`, `/sys:/sys:rw`, the Docker
//! socket, `--access-token=...` on the command line and no `pid: host`. Privileged containers
//! cannot start on the test machines, so the override below sets `privileged: false` (and fills
//! in the file's `<placeholders>`, points it at our image and mounts the certificate the
//! original baked into its image); everything else is the original's. Without `pid: host`
//! the service cannot enter callers' network namespaces: it must say so at start, fall back to
//! identity by source IP, and still answer a client that sends no newline at once.
//!
//! Uses `$LEOTEST_KERNEL_IMAGE` when set (e.g. the testbed's static image); otherwise builds
//! `docker/kernel-service.Dockerfile` around this build's binary (plus the shared libraries it
//! needs, in a second layer). Needs Docker and docker-compose; the original repository is found
//! at `$LEOTEST_UPSTREAM` or `../shared/upstream/global-testbed` (missing: skipped, but a
//! failure under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{docker, docker_available, docker_ok, kernel_bin, Env, Roles};

const CCA: &str = "net.ipv4.tcp_congestion_control = ";

fn upstream() -> Option<PathBuf> {
    let dir = std::env::var_os("LEOTEST_UPSTREAM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/upstream/global-testbed")
        });
    if dir.join("docker-compose-node.yaml").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the original repository is missing at {} (set LEOTEST_UPSTREAM)",
        dir.display()
    );
    eprintln!("SKIPPED: no original repository at {}", dir.display());
    None
}

/// Builds our kernel-service image around `kernel_bin()`; returns its tag(s) to remove.
fn build_image(tag: &str, dir: &Path) -> Vec<String> {
    if let Ok(img) = std::env::var("LEOTEST_KERNEL_IMAGE") {
        return vec![img];
    }
    let ctx = dir.join("image");
    std::fs::create_dir_all(ctx.join("empty")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(
        root.join("docker/kernel-service.Dockerfile"),
        ctx.join("Dockerfile"),
    )
    .unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    std::fs::copy(kernel_bin(), ctx.join("leotest-kernel-service")).unwrap();
    // The CLI is not exercised here; any executable stands in for it.
    std::fs::copy("/bin/busybox", ctx.join("leotest")).unwrap();
    let base = format!("{tag}-ks:test");
    docker_ok(&["build", "-q", "-t", &base, ctx.to_str().unwrap()]);
    // A debug build links glibc dynamically: add exactly the libraries `ldd` names.
    let ldd = Command::new("ldd").arg(kernel_bin()).output().unwrap();
    let libs: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_string)
        .collect();
    if libs.is_empty() {
        return vec![base];
    }
    let lctx = dir.join("libs");
    for l in &libs {
        let dst = lctx.join("root").join(l.trim_start_matches('/'));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(l, &dst).unwrap();
    }
    std::fs::write(
        lctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY root/ /\n"),
    )
    .unwrap();
    let full = format!("{tag}-ksdyn:test");
    docker_ok(&["build", "-q", "-t", &full, lctx.to_str().unwrap()]);
    vec![full, base]
}

/// A compose project made of the original node file plus our override; `down` on drop.
struct Project {
    name: String,
    files: Vec<PathBuf>,
    images: Vec<String>,
}

impl Project {
    fn compose(&self, args: &[&str]) -> (bool, String) {
        let mut c = Command::new("docker-compose");
        c.args(["-p", &self.name]);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        support::outcome(c.args(args))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
        for i in self.images.iter().filter(|i| i.contains("lkit-kern")) {
            let _ = docker(&["rmi", "-f", i]);
        }
    }
}

/// A /24 no Docker network uses yet (the original's 172.27.0.0/16 may be taken by another
/// testbed on a shared machine).
fn free_subnet() -> String {
    let used: String = docker_ok(&["network", "ls", "-q"])
        .lines()
        .map(|n| {
            docker(&[
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                n,
            ])
            .1
        })
        .collect();
    (0..250u32)
        .map(|i| format!("10.213.{}.0/24", (std::process::id() + i) % 250))
        .find(|s| !used.contains(s.as_str()))
        .expect("a free 10.213.x.0/24")
}

#[allow(clippy::too_many_arguments)]
fn override_file(
    image: &str,
    subnet: &str,
    gw: &str,
    orch: u16,
    token: &str,
    net: &str,
    certs: &Path,
    extra_env: &str,
) -> String {
    format!(
        r#"version: "3.7"
services:
  kernel:
    image: "{image}"
    # The one change to the original's section: these machines cannot start privileged
    # containers ("unable to apply caps").
    privileged: false
    command:
      - "--nodeid=admin"
      - "--grpc-hostname={gw}"
      - "--grpc-port={orch}"
      - "--access-token={token}"
      - "--leotest-net={net}"
    # The original image had certs/server.crt baked in under /leotest.
    volumes:
      - "{certs}:/leotest/certs:ro"
    environment:
      RUST_LOG: info
{extra_env}
networks:
  leotest-net:
    ipam:
      config:
        - subnet: {subnet}
"#,
        certs = certs.display()
    )
}

#[test]
fn the_original_node_compose_kernel_section_works_with_our_image() {
    if !docker_available() {
        return;
    }
    let Some(orig) = upstream() else { return };
    let mut env = Env::new("node");
    let orch = env.start_orchestrator();
    env.register(orch, "alice", Roles::UserPriv);
    env.register(orch, "bob", Roles::User);
    let certs = env.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(env.cert(), certs.join("server.crt")).unwrap();

    let name = format!("{}-c", env.tag);
    let net = format!("{name}_leotest-net");
    let subnet = free_subnet();
    let gw = subnet.replace(".0/24", ".1");
    let images = build_image(&env.tag, env.dir.path());
    let node_file = env.dir.path().join("docker-compose-node.yaml");
    std::fs::copy(orig.join("docker-compose-node.yaml"), &node_file).unwrap();
    let (dir, token) = (env.dir.path().to_path_buf(), env.admin_token.clone());
    let write = |extra: &str| {
        let f = dir.join("override.yml");
        std::fs::write(
            &f,
            override_file(&images[0], &subnet, &gw, orch, &token, &net, &certs, extra),
        )
        .unwrap();
        f
    };
    let project = Project {
        name: name.clone(),
        files: vec![node_file, write("")],
        images: images.clone(),
    };
    let (ok, out) = project.compose(&["up", "-d", "--no-build", "--no-deps", "kernel"]);
    assert!(ok, "compose up: {out}");
    let kernel = format!("{name}_kernel_1");

    // Experiment containers on the compose network, as the node agent starts them (the
    // harness's own network is not needed).
    let _ = docker(&["network", "rm", &env.network]);
    env.network = net.clone();
    let alice = env.container("alice", Some("alice"));
    let bob = env.container("bob", Some("bob"));
    let kip = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &kernel,
    ]);
    let logs = || docker(&["logs", &kernel]).1;
    // Bounded wait for the service to listen.
    let t = Instant::now();
    while !logs().contains("kernel service ready") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never ready:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = logs();
    eprintln!("kernel service start-up log:\n{log}");
    for said in [
        "pid: host",
        "FALLING BACK to identity by source IP only",
        "CAP_NET_RAW",
        "--identity-fallback=deny",
        "cca.check / cca.change act on this service's own network namespace",
        "--access-token on the command line",
    ] {
        assert!(
            log.contains(said),
            "start-up log does not say {said:?}:\n{log}"
        );
    }

    // The original's clients: the command without a newline, then wait (no EOF). The service's
    // read time-out is 10 s; the client gives up after 8.
    let no_newline = |c: &str| {
        env.sh(
            c,
            &format!("(printf cca.check; sleep 9) | busybox timeout 8 busybox nc {kip} 9000"),
        )
    };
    let reply = no_newline(&alice);
    assert!(reply.starts_with(CCA), "alice got {reply:?}\n{}", logs());
    assert_eq!(no_newline(&bob), "access_denied");
    // Answered in the service's own namespace: an error, for want of CAP_NET_ADMIN.
    assert!(
        env.sh(
            &alice,
            &format!("printf 'cca.change reno\\n' | busybox timeout 8 busybox nc {kip} 9000")
        )
        .starts_with("error:"),
        "cca.change without CAP_NET_ADMIN"
    );

    // Fail closed instead, by the operator's choice.
    write("      LEOTEST_IDENTITY_FALLBACK: deny");
    let (ok, out) = project.compose(&[
        "up",
        "-d",
        "--no-build",
        "--no-deps",
        "--force-recreate",
        "kernel",
    ]);
    assert!(ok, "compose up: {out}");
    let t = Instant::now();
    while !logs().contains("kernel service ready") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never ready:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        logs().contains("EVERY connection is answered access_denied"),
        "{}",
        logs()
    );
    let t = Instant::now();
    let reply = loop {
        let r = no_newline(&alice);
        if !r.is_empty() || t.elapsed() > Duration::from_secs(20) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(reply, "access_denied");
}
