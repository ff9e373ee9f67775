//! Harness for the kernel-service tests on the real Docker engine: a busybox image, a network,
//! labeled containers, the orchestrator binary over TLS (the shared harness of
//! leotest-test-support) and the kernel-service binary. Every
//! object is named `lkit-kern-<test>-<pid>...` and removed on drop, even when the test fails.
//!
//! Docker is required: without it these tests FAIL. Set `LEOTEST_SKIP_DOCKER_TESTS=1` to skip
//! them locally on a machine without Docker.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leotest_proto::unary::{MessageRegisterUser, UserRoles};
use leotest_rpc::{ClientConfig, Credentials, LeotestClient};
use leotest_test_support::Orchestrator;

pub(crate) fn docker(args: &[&str]) -> (bool, String) {
    outcome(Command::new("docker").args(args).stderr(Stdio::piped()))
}

/// Runs `cmd` to its end: whether it succeeded, and its stdout then stderr.
pub(crate) fn outcome(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

pub(crate) fn docker_ok(args: &[&str]) -> String {
    let (ok, out) = docker(args);
    assert!(ok, "docker {args:?} failed: {out}");
    out.trim().to_string()
}

/// Returns false (skip) only when the caller explicitly opted out; otherwise panics.
pub(crate) fn docker_available() -> bool {
    if docker(&["info", "--format", "{{.ServerVersion}}"]).0 {
        return true;
    }
    if std::env::var_os("LEOTEST_SKIP_DOCKER_TESTS").is_some() {
        eprintln!("SKIPPED: docker unavailable and LEOTEST_SKIP_DOCKER_TESTS is set");
        return false;
    }
    panic!("docker engine unavailable; set LEOTEST_SKIP_DOCKER_TESTS=1 to skip these tests");
}

pub(crate) use leotest_test_support::{free_port, wait_listening};

/// The kernel-service binary under test: this build's, or `LEOTEST_KERNEL_BIN` (e.g. an older
/// build, to check that a test fails without the fix it covers).
pub(crate) fn kernel_bin() -> PathBuf {
    std::env::var_os("LEOTEST_KERNEL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_leotest-kernel-service")))
}

/// Everything created by a test, removed on drop even when the test fails.
pub(crate) struct Env {
    pub tag: String,
    pub image: String,
    pub network: String,
    pub containers: Vec<String>,
    pub children: Vec<Child>,
    /// Orchestrators started for the test (killed on drop).
    pub orchestrators: Vec<Orchestrator>,
    pub dir: tempfile::TempDir,
    /// The orchestrator's admin token (not the original's default: the orchestrator listens on
    /// every address so that containers can reach it).
    pub admin_token: String,
    /// Undone on drop (e.g. a neighbour entry a test poisoned): `ip` arguments.
    pub undo_ip: Vec<Vec<String>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for args in &self.undo_ip {
            let _ = Command::new("ip").args(args).status();
        }
        // SIGTERM first: a service that shuts down cleanly also removes its pre-started
        // sandboxes' cgroups; SIGKILL only if it does not exit in time.
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["network", "rm", &self.network]);
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

/// Which kernel-service flags a test adds.
#[derive(Debug, Clone, Default)]
pub(crate) struct KernelOpts {
    pub deadline: Option<&'static str>,
    pub extra: Vec<String>,
}

/// A started kernel service on the host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel {
    pub port: u16,
    pub metrics_port: u16,
}

impl Env {
    pub(crate) fn new(name: &str) -> Self {
        let tag = format!("lkit-kern-{name}-{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy("/bin/busybox", dir.path().join("busybox")).expect("busybox-static");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n",
        )
        .unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let env = Env {
            image: format!("{tag}:test"),
            network: format!("{tag}-net"),
            tag,
            containers: Vec::new(),
            children: Vec::new(),
            orchestrators: Vec::new(),
            dir,
            admin_token: format!("kern-admin-{}-{nanos}", std::process::id()),
            undo_ip: Vec::new(),
        };
        let ctx = env.dir.path().to_str().unwrap().to_string();
        docker_ok(&["build", "-q", "-t", &env.image, &ctx]);
        docker_ok(&["network", "create", &env.network]);
        env
    }

    pub(crate) fn gateway(&self) -> String {
        docker_ok(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Gateway}}",
            &self.network,
        ])
    }

    /// The Linux bridge behind the network (`br-` + the first 12 digits of its id).
    pub(crate) fn bridge(&self) -> String {
        let id = docker_ok(&["network", "inspect", "-f", "{{.Id}}", &self.network]);
        format!("br-{}", &id[..12])
    }

    /// A running busybox container on the network (`sleep 600`), with `extra` `docker run` flags.
    pub(crate) fn container_with(
        &mut self,
        name: &str,
        userid: Option<&str>,
        extra: &[&str],
    ) -> String {
        let full = format!("{}-{name}", self.tag);
        let mut args = vec!["run", "-d", "--name", &full, "--network", &self.network];
        let label;
        if let Some(u) = userid {
            label = format!("userid={u}");
            args.extend(["--label", &label]);
        }
        args.extend(extra);
        args.extend([self.image.as_str(), "sleep", "600"]);
        docker_ok(&args);
        self.containers.push(full.clone());
        full
    }

    pub(crate) fn container(&mut self, name: &str, userid: Option<&str>) -> String {
        self.container_with(name, userid, &[])
    }

    pub(crate) fn remove(&mut self, full: &str) {
        docker_ok(&["rm", "-f", full]);
        self.containers.retain(|c| c != full);
    }

    /// Runs a busybox shell script inside the container; returns its output.
    pub(crate) fn sh(&self, container: &str, script: &str) -> String {
        docker(&["exec", container, "busybox", "sh", "-c", script]).1
    }

    /// Sends `line` and a newline from inside the container; returns the reply.
    pub(crate) fn ask(&self, container: &str, port: u16, line: &str) -> String {
        let script = format!(
            "printf '%s\\n' '{line}' | busybox timeout 20 busybox nc -w 8 {} {port}",
            self.gateway()
        );
        self.sh(container, &script)
    }

    pub(crate) fn ip(&self, container: &str) -> String {
        docker_ok(&[
            "inspect",
            "-f",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
                self.network
            ),
            container,
        ])
    }

    pub(crate) fn mac(&self, container: &str) -> String {
        docker_ok(&[
            "inspect",
            "-f",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").MacAddress}}}}",
                self.network
            ),
            container,
        ])
    }

    pub(crate) fn pid(&self, container: &str) -> u32 {
        docker_ok(&["inspect", "-f", "{{.State.Pid}}", container])
            .parse()
            .unwrap()
    }

    fn gen_cert(&self) -> PathBuf {
        let cert = self.cert();
        if !cert.exists() {
            Orchestrator::gen_cert_at(&cert, &self.dir.path().join("server.key"));
        }
        cert
    }

    pub(crate) fn cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    /// The orchestrator binary on every address of the host (containers reach it at the
    /// network's gateway), certificate for `localhost`, admin token in the environment as the
    /// compose files pass it.
    pub(crate) fn start_orchestrator(&mut self) -> u16 {
        let cert = self.gen_cert();
        let key = self.dir.path().join("server.key");
        let orch = Orchestrator::builder()
            .host("0.0.0.0")
            .cert(&cert, &key)
            .admin_token(&self.admin_token)
            .admin_token_in_env()
            .start_blocking();
        let port = orch.port;
        self.orchestrators.push(orch);
        port
    }

    /// The kernel-service binary on the host, as the admin node, for this network.
    pub(crate) fn start_kernel_with(&mut self, orch_port: u16, opts: KernelOpts) -> Kernel {
        let cert = self.gen_cert();
        // A port taken by a parallel test between free_port and the bind costs one attempt.
        for _attempt in 0..5 {
            let (port, metrics_port) = (free_port(), free_port());
            let mut child = Command::new(kernel_bin())
                .args(["--nodeid", "admin", "--grpc-hostname", "localhost"])
                .args(["--grpc-port", &orch_port.to_string()])
                .args(["--leotest-net", &self.network])
                .args(["--listen", &format!("0.0.0.0:{port}")])
                .args(["--decision-deadline", opts.deadline.unwrap_or("3s")])
                .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
                .args(&opts.extra)
                .arg("--ca-cert")
                .arg(&cert)
                .env("LEOTEST_ACCESS_TOKEN", &self.admin_token)
                .spawn()
                .unwrap();
            let up = wait_listening(&mut child, port);
            self.children.push(child);
            if up {
                return Kernel { port, metrics_port };
            }
        }
        panic!("the kernel service did not start (see its output above)");
    }

    pub(crate) fn start_kernel(&mut self, orch_port: u16, deadline: &'static str) -> u16 {
        self.start_kernel_with(
            orch_port,
            KernelOpts {
                deadline: Some(deadline),
                ..Default::default()
            },
        )
        .port
    }

    /// Registers a user through the orchestrator's `register_user` as admin.
    pub(crate) fn register(&self, orch_port: u16, id: &str, role: UserRoles) {
        let mut cfg = ClientConfig::new(
            format!("localhost:{orch_port}"),
            Credentials::Static {
                userid: "admin".into(),
                access_token: self.admin_token.clone(),
            },
        );
        cfg.ca_cert = Some(self.cert());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = LeotestClient::connect(cfg).await.unwrap();
            client
                .register_user(MessageRegisterUser {
                    id: id.into(),
                    name: id.into(),
                    role: role as i32,
                    team: "it".into(),
                })
                .await
                .unwrap();
        });
    }
}

/// Opens `n` TCP connections to `addr` from inside the network namespace of `pid` and keeps
/// them open (idle: nothing is sent).
pub(crate) fn idle_connections_from(pid: u32, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    leotest_kernel_service::sys::ns::run_in_pid(pid, move || {
        (0..n)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
            .collect::<Vec<_>>()
    })
    .unwrap()
}

/// A counter from the kernel service's `/metrics`.
pub(crate) fn metric(metrics_port: u16, name: &str) -> u64 {
    let mut s = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{out}"))
}

/// The congestion control the container's own network namespace sees.
pub(crate) fn netns_cca(container: &str) -> String {
    docker_ok(&[
        "exec",
        container,
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/tcp_congestion_control",
    ])
}

pub(crate) use leotest_proto::unary::UserRoles as Roles;
