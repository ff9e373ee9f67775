//! The `docker` CLI calls of the e2e tests that move files or read a container's output
//! (`docker cp`, `docker exec`, `docker logs`: argument vectors, no host shell); queries go
//! through bollard ([`crate::docker`]). Every command is killed when the run is dropped (an
//! interrupt).

use std::path::Path;
use std::process::{Output, Stdio};

use anyhow::{bail, Context, Result};

use crate::child_env;
use crate::scratch::Scratch;

fn docker(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(child_env::command("docker"));
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

async fn output(mut cmd: tokio::process::Command, what: &str) -> Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output()
        .await
        .with_context(|| format!("running {what}"))
}

/// `docker ARGS...` that must succeed; its error output is in the error.
pub(crate) async fn docker_ok(args: &[&str]) -> Result<()> {
    let what = format!("docker {}", args.join(" "));
    let out = output(docker(args), &what).await?;
    if !out.status.success() {
        bail!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// `docker cp FROM TO` (either side may be `CONTAINER:PATH`).
pub(crate) async fn docker_cp(from: &str, to: &Path) -> Result<()> {
    docker_ok(&["cp", from, &to.to_string_lossy()]).await
}

/// `docker cp FROM CONTAINER:PATH`.
pub(crate) async fn docker_cp_into(from: &Path, container: &str, path: &str) -> Result<()> {
    docker_ok(&[
        "cp",
        &from.to_string_lossy(),
        &format!("{container}:{path}"),
    ])
    .await
}

/// The stdout of `docker ARGS...` whatever its status (`2>/dev/null`); empty when it did
/// not run.
pub(crate) async fn docker_stdout(args: &[&str]) -> String {
    match output(docker(args), "docker").await {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(_) => String::new(),
    }
}

/// stdout and stderr of `docker ARGS...` in the order it wrote them (`2>&1`: both go to the
/// same file, so lines keep their order), whatever its status.
pub(crate) async fn docker_combined(args: &[&str]) -> Result<String> {
    let scratch = Scratch::new("leotest-xtask-docker")?;
    let path = scratch.file("out");
    docker_to_file(args, &path).await?;
    let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// stdout and stderr of `docker ARGS...` into `file`, interleaved as they came, whatever its
/// status (`docker logs` writes a container's two streams to both).
pub(crate) async fn docker_to_file(args: &[&str], file: &Path) -> Result<()> {
    let out =
        std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
    let mut cmd = docker(args);
    cmd.stdout(out.try_clone().context("duplicating a file handle")?)
        .stderr(out);
    cmd.status()
        .await
        .with_context(|| format!("running docker {}", args.join(" ")))?;
    Ok(())
}
