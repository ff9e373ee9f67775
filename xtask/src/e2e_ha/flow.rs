//! The failover test's steps, in the script's order: build the load generator, up the `ha`
//! testbed, check the balancer and the replicas, pick the replica that serves the kernel
//! service, kill it under load, then read the load's report and the runs it wrote. Bringing
//! the testbed down is the caller's (mod.rs), on every exit.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::models::{NetworkConnectRequest, NetworkDisconnectRequest};
use bollard::Docker;

use super::balancer::{self, Balancer, FIELD_SESSIONS};
use super::{load, Settings, DEADLINE_MS};
use crate::checks::Checks;
use crate::compose::Compose;
use crate::docker_cli;
use crate::scratch::Scratch;
use crate::{docker, segmentation};

/// The streams of leotest-ha-load's report.
const STREAMS: [&str; 3] = ["kernel", "update_run", "get_runs"];

/// The CLI built by `testbed.sh up` (target/testbed/leotest), as the node's user through the
/// balancer.
struct Cli {
    port: u16,
    ca_cert: String,
    token: String,
}

impl Cli {
    /// `leotest ARGS...`: stdout, then stderr when `with_stderr` (`2>&1`), trailing newlines
    /// removed; a failure to run is the answer.
    async fn run(&self, args: &[&str], with_stderr: bool) -> String {
        let mut cmd =
            tokio::process::Command::from(crate::child_env::command("target/testbed/leotest"));
        cmd.arg("--grpc-host=127.0.0.1")
            .arg(format!("--grpc-port={}", self.port))
            .arg(format!("--ca-cert={}", self.ca_cert))
            .arg("--userid=node-1")
            .arg(format!("--access-token={}", self.token))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match cmd.output().await {
            Ok(out) => {
                let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
                if with_stderr {
                    s.push_str(&String::from_utf8_lossy(&out.stderr));
                }
                s.trim_end_matches('\n').to_string()
            }
            Err(e) => format!("target/testbed/leotest: {e}"),
        }
    }
}

fn chmod(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Every step; the checks are recorded in `checks`, an `Err` is a step that could not run.
pub(super) async fn run(
    s: &Settings,
    compose: &Compose,
    engine: &Docker,
    checks: &mut Checks,
) -> Result<()> {
    let tmp = Scratch::new("leotest-e2e-ha")?;
    checks.log("building the load generator (static, like the testbed's binaries)");
    let load_bin = crate::testbed::bench_binary("leotest-ha-load", tmp.path()).await?;

    // The README's command.
    crate::testbed::invoke(compose, &["up", "--ha"]).await?;
    let ctr = |service: &'static str| docker::container_id(engine, &s.project, service);
    let lb = Balancer {
        id: ctr("orchestrator-lb").await?,
    };
    // Experiments reach the kernel service's port 9000 and nothing else: not the balancer,
    // its status page, either replica or the database (issue 21 item 6).
    segmentation::run(
        compose,
        engine,
        "experiment-user",
        &s.network,
        "kernel-service",
    )
    .await?
    .record(checks);

    for server in ["orchestrator-1", "orchestrator-2"] {
        checks.check_ms(
            &format!("the balancer has {server} up"),
            &lb.wait_state(server, &["UP"], 30).await,
        );
    }
    let admins = compose
        .exec(
            "mongo",
            "python3 -c \"import pymongo; print(pymongo.MongoClient('mongodb://127.0.0.1:27017')\
             .leotest.users.count_documents({'id': 'admin'}))\"",
        )
        .await;
    checks.check(
        "two replicas starting at once leave one admin user",
        "1",
        &admins,
    );

    // Credentials for the load and the CLI: the node's own token and the orchestrator's CA.
    let cert = tmp.file("server.crt");
    let orchestrator = ctr("orchestrator").await?;
    docker_cli::docker_cp(
        &format!("{orchestrator}:/var/lib/leotest/certs/server.crt"),
        &cert,
    )
    .await?;
    let token_out = tokio::process::Command::from(compose.command([
        "exec",
        "-T",
        "kernel-service",
        "cat",
        "/secrets/node-token",
    ]))
    .stdin(Stdio::null())
    .stderr(Stdio::inherit())
    .kill_on_drop(true)
    .output()
    .await
    .context("reading the node token")?;
    if !token_out.status.success() {
        bail!("reading the node token: {}", token_out.status);
    }
    let token_file = tmp.file("node-token");
    std::fs::write(&token_file, &token_out.stdout).context("writing the node token")?;
    chmod(&cert, 0o644)?;
    chmod(&token_file, 0o644)?;
    let cli = Cli {
        port: s.lb_port,
        ca_cert: cert.to_string_lossy().into_owned(),
        token: String::from_utf8_lossy(&token_out.stdout)
            .trim_end_matches('\n')
            .to_string(),
    };
    checks.check(
        "the CLI reaches the orchestrator through the balancer",
        "node-1",
        &cli.run(&["user", "--action=get", "--id=node-1"], true)
            .await,
    );

    // A first decision opens the kernel service's channel; the balancer's log says which
    // replica it landed on, and that replica is the one killed below.
    checks.check(
        "USER_PRIV gets the congestion control through the balancer",
        "net.ipv4.tcp_congestion_control = ",
        &compose
            .exec(
                "experiment-priv",
                "echo cca.check | nc -w 5 kernel-service 9000",
            )
            .await,
    );
    let control = s.control_net();
    let ks_ip = docker::containers(engine, &s.project, Some("kernel-service"))
        .await?
        .iter()
        .find_map(|c| c.address_on(&control).map(str::to_string))
        .unwrap_or_default();
    let found = balancer::victim_server(&lb.log().await?, &ks_ip).unwrap_or_default();
    checks.check(
        "the kernel service's channel goes through the balancer",
        "orchestrator-",
        &found,
    );
    let (victim_server, victim) = balancer::victim(&found);

    let load_ctr = ctr("experiment-priv").await?;
    // The load also calls the balancer, which experiments cannot reach: for this test only,
    // the load's container joins the control network too; its kernel decisions still come
    // from its experiment-network address (`kernel` is an alias on that network only).
    engine
        .connect_network(
            &control,
            NetworkConnectRequest {
                container: load_ctr.clone(),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("connecting the load's container to {control}"))?;
    docker_cli::docker_cp_into(&load_bin, &load_ctr, "/usr/local/bin/leotest-ha-load").await?;
    docker_cli::docker_cp_into(&cert, &load_ctr, "/server.crt").await?;
    docker_cli::docker_cp_into(&token_file, &load_ctr, "/node-token").await?;
    checks.log(&format!(
        "load for {}s; killing {victim} ({victim_server}) after {}s",
        s.load_seconds, s.kill_after
    ));
    let run = Run {
        s,
        compose,
        engine,
        tmp: &tmp,
        lb: &lb,
    };
    let output = failover(&run, checks, &load_ctr, victim_server, victim).await?;
    let _ = engine
        .disconnect_network(
            &control,
            NetworkDisconnectRequest {
                container: load_ctr.clone(),
                ..Default::default()
            },
        )
        .await;

    report(s, checks, &cli, &output).await;

    let victim_id = output.victim_id;
    let inspected = engine
        .inspect_container(&victim_id, None)
        .await
        .context("inspecting the killed replica")?;
    let status = inspected
        .state
        .and_then(|st| st.status)
        .map(|st| st.to_string())
        .unwrap_or_default();
    let restarts = format!(
        "{status} (restarts: {})",
        inspected.restart_count.unwrap_or_default()
    );
    checks.log(&format!("killed replica after the load: {restarts}"));
    if !restarts.starts_with("running") {
        engine
            .start_container(&victim_id, None)
            .await
            .context("starting the killed replica")?;
    }
    checks.check_ms(
        "the replica rejoins the balancer when it is back",
        &lb.wait_state(victim_server, &["UP"], 60).await,
    );
    Ok(())
}

/// What the load phase leaves for the checks after it.
struct LoadOutput {
    /// leotest-ha-load's output (stdout and stderr).
    text: String,
    /// The killed replica's container.
    victim_id: String,
}

/// What the load phase works with.
struct Run<'a> {
    s: &'a Settings,
    compose: &'a Compose,
    engine: &'a Docker,
    tmp: &'a Scratch,
    lb: &'a Balancer,
}

/// Runs the load in the background, kills `victim` (compose service; `victim_server` on the
/// balancer) after `KILL_AFTER` seconds, tells the load when (its kill-at file), and waits for
/// the balancer to notice and the load to end.
async fn failover(
    run: &Run<'_>,
    checks: &mut Checks,
    load_ctr: &str,
    victim_server: &str,
    victim: &str,
) -> Result<LoadOutput> {
    let Run {
        s,
        compose,
        engine,
        tmp,
        lb,
    } = run;
    let out_path = tmp.file("load.out");
    let out = std::fs::File::create(&out_path).context("creating load.out")?;
    let mut cmd = tokio::process::Command::from(compose.command([
        "exec",
        "-T",
        "experiment-priv",
        "leotest-ha-load",
        "--ca-cert=/server.crt",
        "--access-token-file=/node-token",
        "--kernel=kernel:9000",
        &format!("--duration={}", s.load_seconds),
        &format!("--deadline={}", DEADLINE_MS / 1000),
        "--event-file=/kill-at",
        &format!("--job=e2e-ha-{}", crate::scratch::now_ms()),
    ]));
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().context("duplicating a file handle")?)
        .stderr(out)
        .kill_on_drop(true);
    let mut load = cmd.spawn().context("starting leotest-ha-load")?;
    tokio::time::sleep(Duration::from_secs(s.kill_after)).await;

    let victim_id = docker::container_id(engine, &s.project, victim).await?;
    let sessions = lb.stat(victim_server, FIELD_SESSIONS).await;
    checks.check_le(
        "the replica to kill carries 2 connections or more (the kernel service's, the load's)",
        "2",
        if sessions.is_empty() { "0" } else { &sessions },
    );
    let kill_sent = crate::scratch::now_ms();
    engine
        .kill_container(&victim_id, None)
        .await
        .with_context(|| format!("killing {victim}"))?;
    // Requests under way at any moment between calling `docker kill` and its return count as
    // in flight: the replica dies somewhere in between, and a request it had stored may fail
    // before the call returns.
    let killed_at = crate::scratch::now_ms();
    let kill_at = tmp.file("kill-at");
    std::fs::write(&kill_at, format!("{kill_sent} {killed_at}\n")).context("writing kill-at")?;
    docker_cli::docker_cp_into(&kill_at, load_ctr, "/kill-at").await?;
    let took = lb.wait_state(victim_server, &["DOWN", "MAINT"], 10).await;
    checks.check_ms("the balancer takes the killed replica out", &took);
    let down_at = balancer::down_at_ms(&lb.log().await?, victim_server);
    checks.log(&format!(
        "killed {victim} at {kill_sent}; the balancer marked it down {} ms later (its log)",
        down_at.unwrap_or(kill_sent).saturating_sub(kill_sent)
    ));
    let status = load.wait().await.context("waiting for leotest-ha-load")?;
    let text = std::fs::read_to_string(&out_path).context("reading load.out")?;
    eprint!("{text}");
    checks.check(
        "the load ran to the end",
        "0",
        &exit_code(status).to_string(),
    );
    Ok(LoadOutput { text, victim_id })
}

/// A shell's `$?`: the exit code, or 128 + the signal that ended the process.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// The checks on the load's report and on the runs it wrote.
async fn report(s: &Settings, checks: &mut Checks, cli: &Cli, load: &LoadOutput) {
    let result = |stream: &str, key: &str| load::result(&load.text, stream, key);
    let deadline = DEADLINE_MS.to_string();
    for stream in STREAMS {
        checks.check_le(
            &format!("{stream}: no failure beyond the requests in flight at the kill"),
            &result(stream, "failed_other"),
            "0",
        );
        checks.check_le(
            &format!("{stream}: answers kept coming within the deadline (longest gap, ms)"),
            &result(stream, "max_gap_ms"),
            &deadline,
        );
        checks.check_le(
            &format!("{stream}: every answer within the deadline (max latency, ms)"),
            &result(stream, "max_latency_ms"),
            &deadline,
        );
    }
    checks.check_le(
        "update_run: no acknowledged write lost",
        &result("writes", "lost"),
        "0",
    );
    for stream in STREAMS {
        checks.log(&format!(
            "{stream} in the 5 s after the kill: max latency {} ms, longest gap {} ms",
            result(stream, "kill_max_latency_ms"),
            result(stream, "kill_max_gap_ms")
        ));
    }
    let acked = result("writes", "acked");
    checks.check_le(
        "update_run: a steady load was acknowledged (acked >= 10 per second of load)",
        &(s.load_seconds * 10).to_string(),
        if acked.is_empty() { "0" } else { &acked },
    );
    let job = load::job(&load.text);
    let stored = load::stored_runs(
        &cli.run(
            &[
                "--json",
                "run",
                "--action=get",
                &format!("--jobid={job}"),
                "--limit=0",
            ],
            false,
        )
        .await,
    );
    let unacked_stored = result("writes", "unacked_stored");
    let expected = match (
        load::number_or_zero(&acked),
        load::number_or_zero(&unacked_stored),
    ) {
        (Some(a), Some(u)) => (a + u).to_string(),
        _ => format!("{acked} + {unacked_stored}"),
    };
    checks.check(
        "the CLI reads every acknowledged run through the balancer",
        &expected,
        &stored,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_codes_read_as_a_shells() {
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(1 << 8)), 1);
        // Killed by SIGKILL (9): 137.
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }
}
