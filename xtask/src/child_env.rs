//! The commands a task starts: their environment, without what `cargo run` (the `cargo
//! xtask` alias) added for this binary, and running one to the end. ring's build script declares `CARGO_PKG_NAME`,
//! `CARGO_MANIFEST_DIR` and their kind as inputs (`rerun-if-env-changed`), so a nested `cargo
//! build` (scripts/testbed.sh's release build, the security group's tests) that saw xtask's
//! values would rebuild ring and everything above it, once on the way in and once again on
//! the next build from a plain shell.

use std::ffi::OsStr;
use std::process::Command;

/// What `cargo run` sets for the binary it runs, beyond `CARGO` itself.
fn set_by_cargo_run(key: &OsStr) -> bool {
    let Some(key) = key.to_str() else {
        return false;
    };
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_BIN_NAME"
                | "CARGO_CRATE_NAME"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

/// `program` with this process's environment minus what `cargo run` added.
pub(crate) fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if set_by_cargo_run(&key) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `cmd` to the end (killed if the task is dropped first, e.g. interrupted); an error
/// naming `what` unless it succeeded.
pub(crate) async fn run(cmd: Command, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let status = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        anyhow::bail!("{what}: {status}");
    }
    Ok(())
}

/// The cargo that runs this task (`$CARGO`, else `cargo` from the path), as [`command`].
pub(crate) fn cargo() -> Command {
    command(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_runs_variables_are_recognised() {
        for k in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_PRE",
            "CARGO_MANIFEST_DIR",
        ] {
            assert!(set_by_cargo_run(OsStr::new(k)), "{k}");
        }
        for k in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_by_cargo_run(OsStr::new(k)), "{k}");
        }
    }

    #[test]
    fn children_do_not_inherit_them() {
        // cargo test sets CARGO_PKG_NAME for this test binary, as cargo run does for xtask.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let cmd = command("env");
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_os_string())
            .collect();
        assert!(removed.iter().any(|k| k == "CARGO_PKG_NAME"), "{removed:?}");
    }
}
