//! docker-compose (v1, or whatever `$COMPOSE` names, e.g. `docker compose`) run as the bash
//! harness ran it: from the workspace root, with the caller's environment plus the variables a
//! task sets (project name, profiles, store), so that `scripts/testbed.sh` and every compose
//! command of a run see the same testbed.

use std::process::{Command, Output, Stdio};

use tokio::io::AsyncWriteExt;

use crate::child_env;

/// The compose command line and the environment every command of a run gets.
#[derive(Debug, Clone)]
pub(crate) struct Compose {
    program: Vec<String>,
    env: Vec<(String, String)>,
}

impl Compose {
    /// `$COMPOSE` (split on whitespace), else `docker-compose` when it is on `PATH`, else
    /// `docker compose`; with `env` added to the caller's.
    pub(crate) fn new(env: Vec<(String, String)>) -> Self {
        let program = std::env::var("COMPOSE")
            .ok()
            .map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| {
                let path = std::env::var_os("PATH").unwrap_or_default();
                if on_path("docker-compose", &path) {
                    vec!["docker-compose".to_string()]
                } else {
                    vec!["docker".to_string(), "compose".to_string()]
                }
            });
        Self { program, env }
    }

    /// Sets `key` for every later command of the run.
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// What the run sets on top of the caller's environment, in order (a later one wins).
    pub(crate) fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The value a run sets for `key`, else the caller's.
    pub(crate) fn var(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(key).ok())
    }

    /// Any program (e.g. `scripts/testbed.sh`) with the run's environment.
    pub(crate) fn program(&self, program: &str) -> Command {
        let mut cmd = child_env::command(program);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `compose ARGS...` with the run's environment.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let (first, rest) = self
            .program
            .split_first()
            .map_or(("docker-compose", &[][..]), |(f, r)| (f.as_str(), r));
        let mut cmd = self.program(first);
        cmd.args(rest).args(args);
        cmd
    }

    /// `compose exec -T SERVICE sh -c SCRIPT`: stdout then stderr, trailing newlines removed
    /// (what `$(... 2>&1 || true)` gave). A failure to run is part of the answer, as there.
    pub(crate) async fn exec(&self, service: &str, script: &str) -> String {
        self.exec_with_input(service, script, "").await
    }

    /// [`Compose::exec`] with `input` on the command's stdin. Async so that an interrupted
    /// run stops at once (the command is killed when the future is dropped).
    pub(crate) async fn exec_with_input(&self, service: &str, script: &str, input: &str) -> String {
        let mut cmd = tokio::process::Command::from(
            self.command(["exec", "-T", service, "sh", "-c", script]),
        );
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return format!("{}: {e}", self.program.join(" ")),
        };
        if let Some(mut stdin) = child.stdin.take() {
            // Concurrently: the command may fill its output pipes before reading all input.
            let input = input.as_bytes().to_vec();
            tokio::spawn(async move { stdin.write_all(&input).await });
        }
        match child.wait_with_output().await {
            Ok(out) => combined(&out),
            Err(e) => e.to_string(),
        }
    }
}

/// Whether an executable file `name` is in one of `path`'s directories (`command -v`).
fn on_path(name: &str, path: &std::ffi::OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// stdout then stderr of a finished command, trailing newlines removed.
fn combined(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s.trim_end_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_variables_win_over_the_callers() {
        let c = Compose::new(vec![
            ("LEOTEST_XTASK_TEST_VAR".into(), "a".into()),
            ("LEOTEST_XTASK_TEST_VAR".into(), "b".into()),
        ]);
        assert_eq!(c.var("LEOTEST_XTASK_TEST_VAR").as_deref(), Some("b"));
        assert_eq!(c.var("LEOTEST_XTASK_TEST_UNSET_VAR"), None);
    }

    #[test]
    fn a_program_is_found_on_the_path_only_when_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("some-compose");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths(["/nonexistent-dir".into(), dir.clone()]).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!on_path("some-compose", &path));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(on_path("some-compose", &path));
        assert!(!on_path("other-compose", &path));
        assert!(!on_path("some-compose", std::ffi::OsStr::new("")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_answers_with_its_error() {
        let c = Compose {
            program: vec!["/nonexistent/compose".into()],
            env: Vec::new(),
        };
        assert!(c
            .exec("svc", "true")
            .await
            .starts_with("/nonexistent/compose: "));
    }
}
