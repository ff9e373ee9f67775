//! The probe phase of `cargo xtask e2e-sites`: leotest-sites-probe built static (like the
//! testbed's binaries) and copied into each site's USER_PRIV container, run there for
//! `LOAD_SECONDS` while site 1's uplink is cut (`scripts/testbed.sh link cut 1`) at `CUT_AT`
//! for `CUT_SECONDS` and the user alice is revoked (USER_PRIV -> USER) `REVOKE_AT` seconds in;
//! then what `E2E_SITES_OUT` keeps. Each mark is taken when its action has landed: the cut and
//! the restore when the signal was sent, the revocation when the orchestrator acknowledged it
//! (a decision sent while the `user modify` call was still on its way may be answered
//! "granted", and is counted as late).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::checks::Checks;
use crate::compose::Compose;
use crate::docker_cli;
use crate::scrape;
use crate::scratch::now_ms;
use crate::settings::port_env;

use super::summary::Marks;
use super::Settings;

/// The probe's binary, in the containers too.
pub(crate) const PROBE: &str = "leotest-sites-probe";

/// How long the probes run, how often, and when the cut and the revocation come.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Seconds of load (`LOAD_SECONDS`).
    load_seconds: f64,
    /// Seconds from the probes' start to the cut (`CUT_AT`).
    cut_at: u64,
    /// Seconds the uplink stays cut (`CUT_SECONDS`).
    cut_seconds: u64,
    /// Seconds from the probes' start to the revocation (`REVOKE_AT`).
    revoke_at: u64,
    /// Rounds per second (`RATE`).
    rate: f64,
    /// Connections per round (`CONCURRENT`).
    concurrent: u32,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            load_seconds: 90.0,
            cut_at: 20,
            cut_seconds: 10,
            revoke_at: 75,
            rate: 10.0,
            concurrent: 1,
        }
    }
}

impl Plan {
    pub(crate) fn from_env() -> Result<Self> {
        let d = Self::default();
        Self {
            load_seconds: port_env("LOAD_SECONDS", d.load_seconds)?,
            cut_at: port_env("CUT_AT", d.cut_at)?,
            cut_seconds: port_env("CUT_SECONDS", d.cut_seconds)?,
            revoke_at: port_env("REVOKE_AT", d.revoke_at)?,
            rate: port_env("RATE", d.rate)?,
            concurrent: port_env("CONCURRENT", d.concurrent)?,
        }
        .checked()
    }

    /// The revocation must come after the restore (the bash harness's `sleep` of a negative
    /// count failed half-way through the run).
    fn checked(self) -> Result<Self> {
        if self.cut_at + self.cut_seconds > self.revoke_at {
            bail!(
                "REVOKE_AT={} comes before the restore (CUT_AT={} + CUT_SECONDS={})",
                self.revoke_at,
                self.cut_at,
                self.cut_seconds
            );
        }
        Ok(self)
    }

    /// The probe's command line after `leotest-sites-probe`.
    fn probe_args(&self) -> Vec<String> {
        vec![
            format!("--duration={}", self.load_seconds),
            format!("--rate={}", self.rate),
            format!("--concurrent={}", self.concurrent),
        ]
    }

    fn announcement(&self) -> String {
        format!(
            "probes for {}s at {}/s x {}; site 1 cut at {}s for {}s; alice revoked at {}s",
            self.load_seconds,
            self.rate,
            self.concurrent,
            self.cut_at,
            self.cut_seconds,
            self.revoke_at
        )
    }
}

/// The marks of a run, with the probes' start (kept in `E2E_SITES_OUT/times`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunMarks {
    pub(crate) t0: i64,
    pub(crate) marks: Marks,
}

impl RunMarks {
    /// `t0=.. cut_from=.. cut_to=.. revoked=..` (E2E_SITES_OUT/times).
    fn times_line(&self) -> String {
        format!(
            "t0={} cut_from={} cut_to={} revoked={}\n",
            self.t0, self.marks.cut_from, self.marks.cut_to, self.marks.revoked
        )
    }
}

/// The container of `service` (`compose ps -q`).
async fn container(compose: &Compose, service: &str) -> Result<String> {
    let out = tokio::process::Command::from(compose.command(["ps", "-q", service]))
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running compose ps -q {service}"))?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || id.is_empty() {
        bail!(
            "no container for {service}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(id)
}

/// `docker cp SERVICE:FROM TO`.
pub(crate) async fn copy_from(
    compose: &Compose,
    service: &str,
    from: &str,
    to: &Path,
) -> Result<()> {
    let id = container(compose, service).await?;
    docker_cli::docker_cp(&format!("{id}:{from}"), to).await
}

/// `docker cp FROM SERVICE:TO`.
pub(crate) async fn copy_into(
    compose: &Compose,
    from: &Path,
    service: &str,
    to: &str,
) -> Result<()> {
    let id = container(compose, service).await?;
    docker_cli::docker_cp_into(from, &id, to).await
}

/// `docker logs -t SERVICE`, stdout and stderr interleaved as they came, into `file`.
async fn logs_into(compose: &Compose, service: &str, file: &Path) -> Result<()> {
    let id = container(compose, service).await?;
    docker_cli::docker_to_file(&["logs", "-t", &id], file).await
}

/// The `leotest` admin command line that revokes alice (USER_PRIV -> USER); the token from
/// `token_file` (not on the command line, which anyone may read), else from the environment.
fn revoke_args(port: u16, ca: &Path, token_file: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "--grpc-host=127.0.0.1".to_string(),
        format!("--grpc-port={port}"),
        format!("--ca-cert={}", ca.display()),
        "--userid=admin".to_string(),
    ];
    args.extend(token_file.map(|f| format!("--access-token-file={}", f.display())));
    args.extend(
        [
            "user",
            "--action=modify",
            "--id=alice",
            "--name=Alice (privileged)",
            "--role=user",
            "--team=leotest-rs",
        ]
        .map(str::to_string),
    );
    args
}

/// Revokes alice; what it said on stderr (nothing when it worked).
async fn revoke(s: &Settings, compose: &Compose, ca: &Path) -> String {
    let mut cmd = compose.program("target/testbed/leotest");
    // The caller's LEOTEST_ADMIN_TOKEN wins (scripts/testbed.sh then writes no token file).
    match std::env::var("LEOTEST_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        Some(token) => {
            cmd.args(revoke_args(s.host_port, ca, None))
                .env("LEOTEST_ACCESS_TOKEN", token)
                .env_remove("LEOTEST_JWT_ACCESS_TOKEN");
        }
        None => {
            let file = PathBuf::from(format!("target/testbed-secrets/{}/admin-token", s.project));
            cmd.args(revoke_args(s.host_port, ca, Some(&file)));
        }
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    match tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .output()
        .await
    {
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr)
                .trim_end_matches('\n')
                .to_string();
            match (out.status.success(), err.is_empty()) {
                (false, true) => format!("leotest user --action=modify: {}", out.status),
                _ => err,
            }
        }
        Err(e) => format!("running target/testbed/leotest: {e}"),
    }
}

/// Runs the probes in the USER_PRIV containers of `sites` (output in `tmp/site-K.out`) with
/// the cut of the first site's uplink and the revocation on the way; returns the marks.
pub(crate) async fn run(
    s: &Settings,
    compose: &Compose,
    sites: &[usize],
    tmp: &Path,
    ca: &Path,
    checks: &mut Checks,
) -> Result<RunMarks> {
    let plan = &s.load;
    let cut_site = sites.first().copied().unwrap_or(1).to_string();
    checks.log(&plan.announcement());
    let t0 = now_ms();
    let mut probes = Vec::new();
    for k in sites {
        let out = tmp.join(format!("site-{k}.out"));
        let file = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        let err = file.try_clone().context("duplicating a file handle")?;
        let service = format!("experiment-priv-{k}");
        let mut cmd = tokio::process::Command::from(
            compose.command(
                ["exec", "-T", &service, PROBE]
                    .map(str::to_string)
                    .into_iter()
                    .chain(plan.probe_args()),
            ),
        );
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the probe in {service}"))?;
        probes.push(child);
    }
    tokio::time::sleep(Duration::from_secs(plan.cut_at)).await;
    crate::testbed::invoke(compose, &["link", "cut", &cut_site]).await?;
    let cut_from = now_ms();
    tokio::time::sleep(Duration::from_secs(plan.cut_seconds)).await;
    crate::testbed::invoke(compose, &["link", "restore", &cut_site]).await?;
    let cut_to = now_ms();
    let rest = plan.revoke_at - plan.cut_at - plan.cut_seconds;
    tokio::time::sleep(Duration::from_secs(rest)).await;
    let revoke_out = revoke(s, compose, ca).await;
    let revoked = now_ms();
    checks.check_empty("alice revoked (USER_PRIV -> USER)", &revoke_out);
    // As `wait` did: how a probe ended shows in its output, which the figures read.
    for mut p in probes {
        let _ = p.wait().await;
    }
    Ok(RunMarks {
        t0,
        marks: Marks {
            cut_from,
            cut_to,
            revoked,
        },
    })
}

/// The probes' outputs, by site; on the way, site 1's link events on stderr and, with
/// `E2E_SITES_OUT`, the raw lines, the marks and the kernel services' logs kept there.
pub(crate) async fn keep(
    s: &Settings,
    compose: &Compose,
    sites: &[usize],
    tmp: &Path,
    marks: &RunMarks,
) -> Result<Vec<String>> {
    let outputs = sites
        .iter()
        .map(|k| {
            let f = tmp.join(format!("site-{k}.out"));
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))
        })
        .collect::<Result<Vec<String>>>()?;
    if let Some(dir) = &s.out {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
        for (k, out) in sites.iter().zip(&outputs) {
            let f = dir.join(format!("site-{k}.out"));
            std::fs::write(&f, out).with_context(|| format!("writing {}", f.display()))?;
        }
        let f = dir.join("times");
        std::fs::write(&f, marks.times_line())
            .with_context(|| format!("writing {}", f.display()))?;
    }
    let cut_site = sites.first().copied().unwrap_or(1);
    let link_log = tmp.join(format!("link-{cut_site}.log"));
    // Informational, as `|| true` was: the figures say what the link did to the decisions.
    if logs_into(compose, &format!("link-{cut_site}"), &link_log)
        .await
        .is_ok()
    {
        let log = std::fs::read_to_string(&link_log).unwrap_or_default();
        let events = scrape::lines_with(&log, &["handover", "cut", "restored"]);
        if !events.is_empty() {
            eprintln!("{events}");
        }
    }
    if let Some(dir) = &s.out {
        for k in sites {
            let service = format!("kernel-service-{k}");
            let _ = logs_into(compose, &service, &dir.join(format!("{service}.log"))).await;
        }
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_is_the_harnesss() {
        let p = Plan::default();
        assert_eq!(
            p.announcement(),
            "probes for 90s at 10/s x 1; site 1 cut at 20s for 10s; alice revoked at 75s"
        );
        assert_eq!(
            p.probe_args(),
            ["--duration=90", "--rate=10", "--concurrent=1"]
        );
        let p = Plan {
            load_seconds: 2.5,
            rate: 0.5,
            ..Plan::default()
        };
        assert_eq!(p.probe_args()[..2], ["--duration=2.5", "--rate=0.5"]);
    }

    #[test]
    fn a_revocation_before_the_restore_is_refused() {
        assert!(Plan::default().checked().is_ok());
        let p = Plan {
            cut_at: 20,
            cut_seconds: 10,
            revoke_at: 30,
            ..Plan::default()
        };
        assert!(p.clone().checked().is_ok());
        let e = Plan { revoke_at: 29, ..p }.checked().unwrap_err();
        assert!(e.to_string().contains("REVOKE_AT=29"), "{e}");
    }

    #[test]
    fn the_times_file_names_each_mark() {
        let m = RunMarks {
            t0: 10,
            marks: Marks {
                cut_from: 20,
                cut_to: 30,
                revoked: 40,
            },
        };
        assert_eq!(m.times_line(), "t0=10 cut_from=20 cut_to=30 revoked=40\n");
    }

    #[test]
    fn the_revocation_keeps_the_token_off_the_command_line() {
        let ca = Path::new("/tmp/x/server.crt");
        let args = revoke_args(
            23201,
            ca,
            Some(Path::new("target/testbed-secrets/p/admin-token")),
        );
        assert_eq!(
            args,
            [
                "--grpc-host=127.0.0.1",
                "--grpc-port=23201",
                "--ca-cert=/tmp/x/server.crt",
                "--userid=admin",
                "--access-token-file=target/testbed-secrets/p/admin-token",
                "user",
                "--action=modify",
                "--id=alice",
                "--name=Alice (privileged)",
                "--role=user",
                "--team=leotest-rs",
            ]
        );
        assert!(!revoke_args(1, ca, None).iter().any(|a| a.contains("token")));
    }
}
