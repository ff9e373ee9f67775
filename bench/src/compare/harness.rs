//! The ORIGINAL's processes, started through the harness in compat-tests/original (its venv,
//! `servers.py original-orchestrator`, `shim_kernel.py`, `load_original.py`) and its database
//! (nx-27017 via scripts/start-mongo-wire.sh on a free port). Nothing of the original is copied
//! or changed: the shims live in the harness and are listed in BENCHMARKS.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::sysstat::wait_child;
use crate::procs::{free_port, Proc};

/// Files of the original the comparison runs; a checkout without them is not the original.
const REQUIRED: [&str; 5] = [
    "orchestrator/__main__.py",
    "orchestrator/datastore.py",
    "services/kernel/__main__.py",
    "common/client.py",
    "common/leotest_pb2_grpc.py",
];

/// Where the original and the harness around it are, and the venv's interpreter.
#[derive(Debug, Clone)]
pub(crate) struct Harness {
    /// compat-tests/original
    pub dir: PathBuf,
    /// The repository root (scripts/start-mongo-wire.sh).
    pub repo: PathBuf,
    /// The original's checkout (`--orig`).
    pub upstream: PathBuf,
    /// compat-tests/.venv-original/bin/python (made by venv.sh).
    pub python: PathBuf,
}

/// compat-tests/original of the working directory (scripts/bench.sh runs from the repository
/// root), else of the source tree this binary was built from.
fn default_dir() -> PathBuf {
    let here = PathBuf::from("compat-tests/original");
    if here.join("servers.py").is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/original")
}

impl Harness {
    /// Checks the checkout and the harness, then makes (or reuses) the venv with the
    /// original's Python stack from PyPI.
    pub(crate) fn prepare(orig: &Path, dir: Option<&Path>) -> Result<Self> {
        let upstream = orig
            .canonicalize()
            .with_context(|| format!("--orig {}", orig.display()))?;
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|f| !upstream.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            bail!(
                "--orig {} is not a checkout of leoscope-testbed/global-testbed: no {}",
                upstream.display(),
                missing.join(", ")
            );
        }
        let dir = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(default_dir)
            .canonicalize()
            .context("compat-tests/original (pass --harness DIR)")?;
        for f in [
            "servers.py",
            "shim_kernel.py",
            "load_original.py",
            "venv.sh",
        ] {
            if !dir.join(f).is_file() {
                bail!("{} has no {f}", dir.display());
            }
        }
        let repo = dir
            .parent()
            .and_then(Path::parent)
            .context("harness directory has no repository root")?
            .to_path_buf();
        let out = Command::new(dir.join("venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .context("run compat-tests/original/venv.sh")?;
        if !out.status.success() {
            bail!("venv.sh failed: {}", out.status);
        }
        let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !python.is_file() {
            bail!("venv.sh printed {python:?}, not an interpreter");
        }
        Ok(Harness {
            dir,
            repo,
            upstream,
            python,
        })
    }

    /// A Python process of the venv, in `cwd`, with the original on PYTHONPATH. `env -C`
    /// sets the directory and variables and then execs the interpreter, so the PID is its.
    fn python(
        &self,
        cwd: &Path,
        env: &[(&str, String)],
        script: &str,
        args: &[String],
        log: &Path,
    ) -> Result<Proc> {
        let mut argv = vec!["-C".to_string(), cwd.display().to_string()];
        let base = [
            ("PYTHONPATH", self.upstream.display().to_string()),
            ("LEOTEST_UPSTREAM", self.upstream.display().to_string()),
            ("PYTHONDONTWRITEBYTECODE", "1".to_string()),
            ("PYTHONUNBUFFERED", "1".to_string()),
        ];
        for (k, v) in base
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(env.iter().map(|(k, v)| (*k, v)))
        {
            argv.push(format!("{k}={v}"));
        }
        argv.push(self.python.display().to_string());
        argv.push(self.dir.join(script).display().to_string());
        argv.extend(args.iter().cloned());
        Proc::spawn(Path::new("/usr/bin/env"), &argv, log)
    }
}

/// An nx-27017 of the comparison's own on a free port; stopped when dropped.
pub(super) struct MongoWire {
    pub uri: String,
    pub port: u16,
    pub pid: u32,
    repo: PathBuf,
    dir: PathBuf,
}

impl MongoWire {
    pub(super) fn start(repo: &Path, work: &Path) -> Result<Self> {
        let port = free_port()?;
        let dir = work.join(format!("mongo-wire-{port}"));
        let out = Command::new(repo.join("scripts/start-mongo-wire.sh"))
            .env("PORT", port.to_string())
            .env("MONGO_WIRE_DIR", &dir)
            .stderr(Stdio::inherit())
            .output()
            .context("run scripts/start-mongo-wire.sh")?;
        if !out.status.success() {
            bail!("start-mongo-wire.sh failed: {}", out.status);
        }
        let uri = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut m = MongoWire {
            uri,
            port,
            pid: 0,
            repo: repo.to_path_buf(),
            dir,
        };
        let pidfile = m.dir.join("nx-27017.pid");
        m.pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("no PID in {}", pidfile.display()))?;
        Ok(m)
    }
}

impl Drop for MongoWire {
    fn drop(&mut self) {
        let _ = Command::new(self.repo.join("scripts/start-mongo-wire.sh"))
            .arg("stop")
            .env("PORT", self.port.to_string())
            .env("MONGO_WIRE_DIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The original orchestrator: `servers.py original-orchestrator` (the wrapper) and the
/// orchestrator process it runs (`shim_orchestrator.py`, whose CPU and memory are measured).
pub(super) struct OriginalOrchestrator {
    pub addr: SocketAddr,
    pub pid: u32,
    pub log: PathBuf,
    wrapper: Proc,
}

impl OriginalOrchestrator {
    /// Starts it on `mongo` (database `db_name`) with `cert`/`key` (the pair ours uses, so the
    /// TLS cost is the same on both sides).
    pub(super) fn start(
        h: &Harness,
        work: &Path,
        cert: &Path,
        key: &Path,
        mongo: &MongoWire,
        db_name: &str,
        admin_token: &str,
    ) -> Result<Self> {
        let port = free_port()?;
        let wd = work.join("original-orchestrator");
        std::fs::create_dir_all(&wd)?;
        let args: Vec<String> = vec![
            "original-orchestrator".into(),
            "--workdir".into(),
            wd.display().to_string(),
            "--port".into(),
            port.to_string(),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
            "--mongo-uri".into(),
            mongo.uri.clone(),
            "--db-name".into(),
            db_name.into(),
            "--admin-token".into(),
            admin_token.into(),
            "--jwt-secret".into(),
            crate::orch::random_hex(16)?,
        ];
        let mut wrapper = h.python(&wd, &[], "servers.py", &args, &wd.join("servers.log"))?;
        let pid = match wait_child(wrapper.pid(), "python", Duration::from_secs(60)) {
            Ok(p) => p,
            Err(e) => {
                wrapper.check_alive()?;
                return Err(e);
            }
        };
        Ok(OriginalOrchestrator {
            addr: ([127, 0, 0, 1], port).into(),
            pid,
            log: wd.join("original.log"),
            wrapper,
        })
    }

    pub(super) fn check_alive(&mut self) -> Result<()> {
        self.wrapper.check_alive()
    }

    pub(super) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// The last lines of a log, for an error message.
pub(super) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Starts the original kernel service (`shim_kernel.py` → `services.kernel`) on `listen`,
/// asking the orchestrator at `orch` as `node_id`; its working directory holds
/// `certs/server.crt`, where its client reads the orchestrator's certificate.
pub(super) fn start_original_kernel(
    h: &Harness,
    work: &Path,
    cert: &Path,
    orch: SocketAddr,
    node: (&str, &str),
    network: &str,
    listen: SocketAddr,
) -> Result<(Proc, PathBuf)> {
    let wd = work.join("original-kernel");
    std::fs::create_dir_all(wd.join("certs"))?;
    std::fs::copy(cert, wd.join("certs/server.crt")).context("copy the certificate")?;
    let args: Vec<String> = vec![
        format!("--nodeid={}", node.0),
        format!("--grpc-hostname={}", orch.ip()),
        format!("--grpc-port={}", orch.port()),
        format!("--access-token={}", node.1),
        format!("--leotest-net={network}"),
    ];
    let env = [("LEOTEST_ORIGINAL_KERNEL_LISTEN", listen.to_string())];
    let log = wd.join("kernel.log");
    Ok((h.python(&wd, &env, "shim_kernel.py", &args, &log)?, log))
}

/// Loads `data` (the JSON `load_original.py` reads) into the original's database.
pub(super) fn load_original(
    h: &Harness,
    work: &Path,
    mongo: &MongoWire,
    db_name: &str,
    admin_token: &str,
    data: &serde_json::Value,
) -> Result<()> {
    let input = work.join("original-data.json");
    std::fs::write(&input, serde_json::to_vec(data)?)?;
    let out = Command::new(&h.python)
        .arg(h.dir.join("load_original.py"))
        .args(["--db-server", "127.0.0.1", "--db-port"])
        .arg(mongo.port.to_string())
        .args(["--db-name", db_name, "--admin-token", admin_token])
        .env("PYTHONPATH", &h.upstream)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::fs::File::open(&input)?)
        .output()
        .context("run load_original.py")?;
    if !out.status.success() {
        bail!(
            "load_original.py failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}
