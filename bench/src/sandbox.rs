//! Sandboxed job start → first output byte, against a plain fork/exec of the same command.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use leotest_kernel_service::sandbox::{JobManager, JobState, SandboxConfig};

use crate::stats::{ratio_line, table, Row, Samples};
use crate::Settings;

const OWNER: &str = "bench";

fn argv() -> Vec<String> {
    vec!["/bin/echo".into(), "x".into()]
}

/// One sandboxed job: start, then the first chunk of its output stream.
async fn sandboxed(m: &JobManager) -> Result<std::time::Duration> {
    let t0 = Instant::now();
    let id = m.start(OWNER, argv()).await.context("job start")?;
    let mut out = m.watch(OWNER, false, id.as_str()).context("job watch")?;
    let first = out.next().await.context("job wrote nothing")?;
    let took = t0.elapsed();
    if first.first() != Some(&b'x') {
        bail!("unexpected first output {first:?}");
    }
    let st = m
        .wait(OWNER, false, id.as_str())
        .await
        .context("job wait")?;
    if st.state != JobState::Completed {
        bail!("job ended {:?}", st.state);
    }
    Ok(took)
}

/// The baseline: `std::process::Command` with a stdout pipe, no isolation at all.
fn plain() -> Result<std::time::Duration> {
    let t0 = Instant::now();
    let mut child = Command::new("/bin/echo")
        .arg("x")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn /bin/echo")?;
    let mut byte = [0u8; 1];
    let n = child
        .stdout
        .as_mut()
        .context("no stdout pipe")?
        .read(&mut byte)?;
    let took = t0.elapsed();
    child.wait()?;
    if n != 1 || byte[0] != b'x' {
        bail!("unexpected first output");
    }
    Ok(took)
}

/// The `sandbox` subcommand.
pub async fn run(s: &Settings) -> Result<String> {
    let m = JobManager::new(SandboxConfig::default())
        .context("the sandbox needs root, namespaces and cgroups")?;
    // The same sandbox made on demand at each start (no warm one waiting): shows what the
    // default's warm sandboxes buy and what a burst beyond the pool costs.
    let cold = JobManager::new(SandboxConfig {
        prewarm: 0,
        ..SandboxConfig::default()
    })
    .context("the sandbox needs root, namespaces and cgroups")?;
    let n = s.samples;
    let mut base = Samples::with_capacity(n);
    let mut ours = Samples::with_capacity(n);
    let mut on_demand = Samples::with_capacity(n);
    // Warm-up every path (page cache, cgroup parent, spawner thread).
    for _ in 0..5 {
        sandboxed(&m).await?;
        sandboxed(&cold).await?;
        tokio::task::spawn_blocking(plain).await??;
    }
    // Interleaved so all see the same machine state.
    for _ in 0..n {
        ours.push(sandboxed(&m).await?);
        base.push(tokio::task::spawn_blocking(plain).await??);
        on_demand.push(sandboxed(&cold).await?);
    }
    let on_demand_row = Row::new(
        "sandboxed job made on demand (prewarm 0)",
        &mut on_demand,
        None,
    );
    let mut rows = vec![
        Row::new(
            "plain fork/exec, std::process::Command (baseline)",
            &mut base,
            None,
        ),
        Row::new(
            format!(
                "sandboxed job (5 namespaces, cgroup {:?}, seccomp, minimal root, uid 65534, \
                 default prewarm {})",
                m.cgroup_version(),
                SandboxConfig::default().prewarm
            ),
            &mut ours,
            None,
        ),
    ];
    let mut out = table(
        &format!("sandbox: job start -> first output byte (`/bin/echo x`, {n} sequential runs)"),
        &rows
            .iter()
            .cloned()
            .chain([on_demand_row.clone()])
            .collect::<Vec<_>>(),
    );
    let (o, b) = (rows.remove(1), rows.remove(0));
    out.push_str(&ratio_line(
        "sandboxed p50 / plain p50",
        o.p50.as_secs_f64() * 1e3,
        b.p50.as_secs_f64() * 1e3,
        "ms",
    ));
    out.push('\n');
    out.push_str(&ratio_line(
        "sandboxed p99 / plain p99",
        o.p99.as_secs_f64() * 1e3,
        b.p99.as_secs_f64() * 1e3,
        "ms",
    ));
    out.push('\n');
    out.push_str(&ratio_line(
        "sandboxed p50 / on-demand sandbox p50",
        o.p50.as_secs_f64() * 1e3,
        on_demand_row.p50.as_secs_f64() * 1e3,
        "ms",
    ));
    out.push('\n');
    Ok(out)
}
