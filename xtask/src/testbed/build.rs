//! `testbed build`: static release binaries (`x86_64-unknown-linux-gnu`, `crt-static`) staged
//! in target/testbed/ with busybox, the link image of a multi-site testbed, the `mongo`/`ha`
//! base images and nx-27017 when a profile needs them, then `compose build` of the FROM-scratch
//! images (no registry is needed).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::apt::apt_install;
use super::{images, log, Testbed, STAGE};

/// The target of the static binaries.
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The binaries every testbed stages.
const BINARIES: [&str; 3] = ["leotest-orchestrator", "leotest-kernel-service", "leotest"];
/// The busybox the images' shells and `nc` come from.
const BUSYBOX: &str = "/bin/busybox";

/// A busybox with `nc` (the images copy it), installed when missing.
async fn need_busybox(tb: &Testbed) -> Result<()> {
    let mut list = tb.cmd(BUSYBOX);
    list.arg("--list");
    let has_nc = tokio::process::Command::from(list)
        .kill_on_drop(true)
        .output()
        .await
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == "nc")
        });
    if !has_nc {
        apt_install(tb, &["busybox-static"]).await?;
    }
    Ok(())
}

/// `cargo build --release --locked --target TARGET ARGS...`, statically linked.
async fn cargo_build(args: &[&str]) -> Result<()> {
    let mut cargo = crate::child_env::cargo();
    cargo
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--release", "--locked", "--target", TARGET])
        .args(args);
    super::run(cargo, "cargo build").await
}

/// Where cargo put the release binaries of [`TARGET`].
fn release_dir() -> PathBuf {
    PathBuf::from(crate::settings::env_or("CARGO_TARGET_DIR", "target"))
        .join(TARGET)
        .join("release")
}

/// leotest-bench's binary `bin`, built static like the testbed's own (so that it runs in any
/// container and the builds share their artefacts), copied into `dir` with mode 0755: the
/// link emulator of the sites, the e2e tests' load generator and probe.
pub(crate) async fn bench_binary(bin: &str, dir: &Path) -> Result<PathBuf> {
    cargo_build(&["-p", "leotest-bench", "--bin", bin]).await?;
    let to = dir.join(bin);
    copy(&release_dir().join(bin), &to)?;
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 755 {}", to.display()))?;
    Ok(to)
}

/// `cp FROM TO`, with both names in the error.
fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cp {} {}", from.display(), to.display()))
}

/// Everything `up` needs before `compose up`.
pub(crate) async fn build(tb: &Testbed) -> Result<()> {
    need_busybox(tb).await?;
    log(format!("building static binaries (release, {TARGET})"));
    cargo_build(&[
        "-p",
        "leotest-orchestrator",
        "-p",
        "leotest-kernel-service",
        "-p",
        "leotest-client",
    ])
    .await?;
    let stage = Path::new(STAGE);
    if stage.exists() {
        std::fs::remove_dir_all(stage).with_context(|| format!("rm -rf {STAGE}"))?;
    }
    // empty/: the build context of images that need none.
    std::fs::create_dir_all(stage.join("empty"))
        .with_context(|| format!("mkdir -p {STAGE}/empty"))?;
    let release = release_dir();
    for b in BINARIES {
        copy(&release.join(b), &stage.join(b))?;
    }
    if tb.sites.is_some() {
        bench_binary("leotest-link", stage).await?;
        let tag = tb.var("LEOTEST_IMAGE_TAG").unwrap_or_else(|| "dev".into());
        let mut docker = tb.cmd("docker");
        docker
            .args(["build", "-q", "-f", "docker/link.Dockerfile", "-t"])
            .arg(format!("leotest-rs/link:{tag}"))
            .arg(STAGE)
            .stdout(std::process::Stdio::null());
        super::run(docker, "docker build of the link image").await?;
    }
    copy(Path::new(BUSYBOX), &stage.join("busybox"))?;
    if tb.var("COMPOSE_PROFILES").is_some() {
        images::stage_mongo(tb).await?;
    }
    if tb.ha() {
        images::haproxy_base(tb).await?;
    }
    log("building images");
    // single-node: a multi-site testbed parks the single-node services there; their images
    // are its images.
    let profiles = match tb.var("COMPOSE_PROFILES") {
        Some(p) => format!("{p},single-node"),
        None => "single-node".to_string(),
    };
    let mut compose = tb.compose.command(["build"]);
    compose.env("COMPOSE_PROFILES", profiles);
    super::run(compose, "compose build").await
}
