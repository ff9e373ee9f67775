//! `leotest-bench sites --orig DIR`: kernel decisions over an emulated satellite link, leotest-rs
//! next to the Python original in one run (issue 22 item 3).
//!
//! Each side is a kernel service on the host asking its orchestrator through an emulated link
//! (`leotest-link`, bench/src/link, the relay the multi-site testbed puts on a site's uplink):
//! ours (embedded store) and the ORIGINAL kernel service (`shim_kernel.py` → `services.kernel`)
//! with the ORIGINAL orchestrator (`servers.py original-orchestrator`, on nx-27017). The
//! experiments are labeled containers on a Docker network (the same scene for both sides), and
//! each decision is made from inside a container's network namespace: `cca.check` without a
//! newline and a half-close, the bytes both services accept.
//!
//! For every number of containers connecting at once (1: one container of 9 on the network, as
//! in compare-original; 50: each of 50 containers opens one connection in the same round) and
//! every profile (lan, wan, leo, leo with an obstruction) each side gets one phase, one after
//! the other (never both at once: 2 cores), with a fresh link and a fresh kernel service started the same way, so both
//! see the same gap schedule at the same phase times. In a phase: rounds of decisions at a
//! steady rate; for `leo+obstruction` the link is cut (SIGUSR1) for 10 s and restored
//! (SIGUSR2); then the user is revoked (USER_PRIV → USER, by the admin in the cloud, not over
//! the link) and the decisions go on; the role is given back after the phase.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use leotest_proto::unary::{MessageModifyUser, ResponseState, UserRoles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::harness::{log_tail, start_original_kernel, Harness, MongoWire, OriginalOrchestrator};
use super::target::{connect, wait_answering};
use super::{gen_cert, NODE, PRIV};
use crate::docker_env::Scene;
use crate::kernel::{in_netns, start_kernel_via};
use crate::orch::{authed_client, random_hex, register, AuthedClient, Backend, Orchestrator};
use crate::procs::{binary, free_port, Proc};
use crate::Settings;

/// Containers on the scene's network at least (with one connecting: the measured one and 8
/// others, as in compare-original).
const CONTAINERS: usize = 9;
/// Most containers connecting at once.
const MAX_AT_ONCE: usize = 100;
const REQUEST: &[u8] = b"cca.check";
const REPLY_PREFIX: &[u8] = b"net.ipv4.tcp_congestion_control";
const DENIED: &[u8] = b"access_denied";
/// Where the link's gap schedule starts: its 2 s gap (period 5, at 75 s) comes 13 s after the
/// link starts, i.e. 5 s into a phase that starts [`ALIGN`] after the link.
const CLOCK_OFFSET: f64 = 62.0;
/// A phase starts this long after its link (both sides alike, unless a service is slower to
/// get ready: the report says so).
const ALIGN: Duration = Duration::from_secs(8);
/// The obstruction of `leo+obstruction`.
const OBSTRUCTION: Duration = Duration::from_secs(10);

/// Options of `sites`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Where the original's code and its harness are.
    #[command(flatten)]
    pub source: super::OriginalSource,

    /// Seconds per phase (one side, one profile, one burst size) [default: 30, smoke 12].
    #[arg(long)]
    pub phase_seconds: Option<f64>,

    /// Profiles to run, of lan, wan, leo, leo+obstruction.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lan,wan,leo,leo+obstruction"
    )]
    pub profiles: Vec<String>,

    /// Containers connecting at once: each opens one connection per round (at most 100).
    #[arg(long, value_delimiter = ',', default_value = "1,50")]
    pub containers: Vec<usize>,

    /// Rounds per second with one container connecting.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,

    /// Rounds per second with more containers connecting at once.
    #[arg(long, default_value_t = 1.0)]
    pub burst_rate: f64,

    /// Answer deadline of one decision, seconds (an unanswered one counts as not granted).
    #[arg(long, default_value_t = 10.0)]
    pub deadline: f64,
}

/// What a phase does when, from its start.
#[derive(Debug, Clone, Copy)]
struct Plan {
    duration: Duration,
    cut: Option<(Duration, Duration)>,
    revoke_at: Duration,
    rate: f64,
    burst: usize,
    deadline: Duration,
}

impl Plan {
    fn new(o: &Options, phase: Duration, obstruction: bool, burst: usize) -> Plan {
        let cut_len = OBSTRUCTION.min(phase / 3);
        Plan {
            duration: phase,
            // after the 2 s handover gap (5–7 s in), ending before the revocation
            cut: obstruction.then(|| (phase.mul_f64(0.27), phase.mul_f64(0.27) + cut_len)),
            revoke_at: phase.mul_f64(0.73),
            rate: if burst > 1 { o.burst_rate } else { o.rate }.clamp(0.05, 100.0),
            burst: burst.clamp(1, MAX_AT_ONCE),
            deadline: Duration::from_secs_f64(o.deadline.clamp(0.5, 120.0)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Granted,
    Denied,
    /// No answer within the deadline, a reset, or an answer that is neither.
    Error,
}

/// One decision, times from the phase's start.
#[derive(Debug, Clone, Copy)]
struct Decision {
    start: Duration,
    took: Duration,
    outcome: Outcome,
}

impl Decision {
    fn end(&self) -> Duration {
        self.start + self.took
    }
}

/// When the phase's events took effect, from its start.
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    /// From when the cut signal was sent to when the restore signal was.
    cut: Option<(Duration, Duration)>,
    /// When the orchestrator answered the revocation.
    revoked: Duration,
    /// How late the phase started after its link (above [`ALIGN`]: the service was slow).
    start_after_link: Duration,
}

/// What became of the decisions started while the link was cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CutFigures {
    started: usize,
    /// Granted before the link was back: a grant the orchestrator cannot have made (must be 0
    /// with stale grants off).
    granted_while_cut: usize,
    /// Granted once the link was back (the orchestrator answered then).
    granted_after: usize,
    denied: usize,
    unanswered: usize,
}

/// The figures of one phase.
#[derive(Debug, Clone, Default)]
struct Figures {
    decisions: usize,
    /// Granted decisions before the revocation, outside the cut: latencies.
    p50: Option<Duration>,
    p99: Option<Duration>,
    /// Started before the revocation, outside the cut: granted / all, and the others by kind.
    granted: (usize, usize),
    not_granted: (usize, usize),
    /// Decisions started during the cut.
    cut: Option<CutFigures>,
    /// Started after the revocation: not granted / all, of which unanswered; the latest end of
    /// a granted one.
    revoked_denied: (usize, usize),
    revoked_unanswered: usize,
    revoked_late: Option<Duration>,
    start_after_link: Duration,
    /// The kernel service died during the phase: why, from its log. (The original's
    /// `kernel_access` has no retry: a call past its 5 s timeout raises out of its accept loop.)
    exited: Option<String>,
}

/// The gRPC status a dead Python service's traceback ends with, else its last line.
fn death_reason(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("status = "))
        .or(lines.last())
        .map_or("exited".into(), |l| l.to_string())
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * sorted.len() as f64) as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// The figures, counted as scripts/e2e-sites.sh counts them.
fn figures(d: &[Decision], m: &Marks) -> Figures {
    let overlaps_cut = |x: &Decision| m.cut.is_some_and(|(a, b)| x.end() >= a && x.start <= b);
    // Started before the revocation; one denied after it may rightly have been (its call can
    // have come after the revocation): left out. Unanswered ones are failures either way.
    let before: Vec<&Decision> = d
        .iter()
        .filter(|x| x.start < m.revoked && !overlaps_cut(x))
        .filter(|x| !(x.end() >= m.revoked && x.outcome == Outcome::Denied))
        .collect();
    let mut lat: Vec<Duration> = before
        .iter()
        .filter(|x| x.outcome == Outcome::Granted)
        .map(|x| x.took)
        .collect();
    lat.sort();
    let count = |v: &[&Decision], o: Outcome| v.iter().filter(|x| x.outcome == o).count();
    let after: Vec<&Decision> = d.iter().filter(|x| x.start > m.revoked).collect();
    let cut = m.cut.map(|(a, b)| {
        let started: Vec<&Decision> = d.iter().filter(|x| x.start >= a && x.start <= b).collect();
        let granted = |x: &&&Decision| x.outcome == Outcome::Granted;
        CutFigures {
            started: started.len(),
            granted_while_cut: started
                .iter()
                .filter(granted)
                .filter(|x| x.end() < b)
                .count(),
            granted_after: started
                .iter()
                .filter(granted)
                .filter(|x| x.end() >= b)
                .count(),
            denied: count(&started, Outcome::Denied),
            unanswered: count(&started, Outcome::Error),
        }
    });
    Figures {
        decisions: d.len(),
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        granted: (count(&before, Outcome::Granted), before.len()),
        not_granted: (
            count(&before, Outcome::Denied),
            count(&before, Outcome::Error),
        ),
        cut,
        revoked_denied: (after.len() - count(&after, Outcome::Granted), after.len()),
        revoked_unanswered: count(&after, Outcome::Error),
        revoked_late: after
            .iter()
            .filter(|x| x.outcome == Outcome::Granted)
            .map(|x| x.end().saturating_sub(m.revoked))
            .max(),
        start_after_link: m.start_after_link,
        exited: None,
    }
}

/// One decision from the container: connect, `cca.check`, half-close, the reply to EOF.
async fn decide(addr: SocketAddr, deadline: Duration, t0: Instant) -> Decision {
    let start = Instant::now();
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        s.write_all(REQUEST).await?;
        s.shutdown().await?;
        // The original answers `access_denied` and closes without reading the request, so
        // the kernel resets the connection after those bytes: what came before a reset counts.
        let mut reply = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(_) if !reply.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok::<_, std::io::Error>(reply)
    };
    let outcome = match tokio::time::timeout(deadline, exchange).await {
        Ok(Ok(r)) if r.starts_with(REPLY_PREFIX) => Outcome::Granted,
        Ok(Ok(r)) if r.starts_with(DENIED) => Outcome::Denied,
        _ => Outcome::Error,
    };
    Decision {
        start: start.duration_since(t0),
        took: start.elapsed(),
        outcome,
    }
}

/// One container's decisions, made on a thread in its network namespace: one connection every
/// 1/`plan.rate` s from `t0` for `plan.duration` (every container on the same ticks); answers
/// are awaited up to the deadline after that.
fn drive_one(pid: u32, addr: SocketAddr, plan: Plan, t0: Instant) -> Result<Vec<Decision>> {
    in_netns(pid, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let mut tick = tokio::time::interval_at(t0, Duration::from_secs_f64(1.0 / plan.rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut tasks = tokio::task::JoinSet::new();
            let mut out = Vec::new();
            loop {
                tick.tick().await;
                if t0.elapsed() >= plan.duration {
                    break;
                }
                tasks.spawn(decide(addr, plan.deadline, t0));
                while let Some(r) = tasks.try_join_next() {
                    out.push(r?);
                }
            }
            while let Some(r) = tasks.join_next().await {
                out.push(r?);
            }
            Ok(out)
        })
    })
}

/// The phase's decisions from the first `plan.burst` containers of the scene, all together.
fn drive(pids: &[u32], addr: SocketAddr, plan: Plan, t0: Instant) -> Result<Vec<Decision>> {
    let workers: Vec<_> = pids
        .iter()
        .take(plan.burst)
        .map(|&pid| std::thread::spawn(move || drive_one(pid, addr, plan, t0)))
        .collect();
    let mut out = Vec::new();
    for w in workers {
        out.extend(
            w.join()
                .map_err(|_| anyhow::anyhow!("decision thread panicked"))??,
        );
    }
    out.sort_by_key(|d| d.start);
    Ok(out)
}

/// One sequential decision; for readiness.
async fn granted_once(pid: u32, addr: SocketAddr) -> bool {
    let d = tokio::task::spawn_blocking(move || {
        in_netns(pid, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(decide(addr, Duration::from_secs(10), Instant::now())))
        })
    })
    .await;
    matches!(d, Ok(Ok(d)) if d.outcome == Outcome::Granted)
}

/// One of the two systems under comparison.
struct Side<'a> {
    name: &'static str,
    admin: AuthedClient,
    orch_addr: SocketAddr,
    kind: SideKind<'a>,
}

enum SideKind<'a> {
    Ours {
        bin_dir: &'a Path,
        orch: &'a Orchestrator,
    },
    Original {
        harness: &'a Harness,
        cert: &'a Path,
        node_token: String,
    },
}

impl Side<'_> {
    /// Starts the side's kernel service asking its orchestrator through `link`.
    fn start_kernel(
        &self,
        work: &Path,
        link: SocketAddr,
        network: &str,
        port: u16,
    ) -> Result<(Proc, PathBuf)> {
        match &self.kind {
            SideKind::Ours { bin_dir, orch } => {
                let log = work.join("kernel-service.log");
                let bin = binary(bin_dir, "leotest-kernel-service")?;
                Ok((
                    start_kernel_via(&bin, orch, link.port(), network, port, &log)?,
                    log,
                ))
            }
            SideKind::Original {
                harness,
                cert,
                node_token,
            } => start_original_kernel(
                harness,
                work,
                cert,
                link,
                (NODE, node_token),
                network,
                SocketAddr::from(([0, 0, 0, 0], port)),
            ),
        }
    }

    async fn set_role(&self, role: UserRoles) -> Result<()> {
        let r = self
            .admin
            .clone()
            .modify_user(MessageModifyUser {
                id: PRIV.into(),
                name: format!("bench {PRIV}"),
                role: role as i32,
                team: "bench".into(),
            })
            .await
            .with_context(|| format!("{}: modify_user {PRIV}", self.name))?
            .into_inner();
        if r.state != ResponseState::Success as i32 {
            bail!("{}: modify_user {PRIV} answered {:?}", self.name, r.message);
        }
        Ok(())
    }
}

/// The profiles this benchmark knows: (label, link profile, obstruction).
fn profile(label: &str) -> Result<(&'static str, bool)> {
    Ok(match label {
        "lan" => ("lan", false),
        "wan" => ("wan", false),
        "leo" => ("leo", false),
        "leo+obstruction" => ("leo", true),
        _ => bail!("--profiles: {label:?} is not lan, wan, leo or leo+obstruction"),
    })
}

/// Runs one phase of `side` over a fresh `link_profile` link.
#[allow(clippy::too_many_arguments)]
async fn phase(
    s: &Settings,
    work: &Path,
    side: &Side<'_>,
    scene: &Scene,
    link_profile: &str,
    plan: Plan,
) -> Result<Figures> {
    let pid = scene.containers[0].pid;
    let link_port = free_port()?;
    let link_addr = SocketAddr::from(([127, 0, 0, 1], link_port));
    let link_log = work.join(format!("link-{}.log", side.name.replace(' ', "-")));
    let link = Proc::spawn(
        &binary(&s.bin_dir, "leotest-link")?,
        &[
            format!("--listen={link_addr}"),
            format!("--upstream={}", side.orch_addr),
            format!("--profile={link_profile}"),
            "--seed=1".into(),
            format!("--clock-offset={CLOCK_OFFSET}"),
        ],
        &link_log,
    )?;
    let link_start = Instant::now();
    let port = free_port()?;
    let addr = SocketAddr::new(scene.gateway.into(), port);
    let (mut kernel, log) = side.start_kernel(work, link_addr, &scene.network, port)?;
    // Ready: one granted decision (the original imports its stack for a few seconds).
    let ready_by = Instant::now() + Duration::from_secs(90);
    while !granted_once(pid, addr).await {
        if let Err(e) = kernel.check_alive() {
            bail!("{}: {e:#}\n{}", side.name, log_tail(&log));
        }
        if Instant::now() > ready_by {
            bail!(
                "{}: its kernel service grants nothing over the {link_profile} link\n{}",
                side.name,
                log_tail(&log)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for _ in 0..3 {
        granted_once(pid, addr).await;
    }
    let t0 = Instant::now().max(link_start + ALIGN);
    let mut marks = Marks {
        start_after_link: t0.duration_since(link_start),
        ..Marks::default()
    };
    let pids: Vec<u32> = scene.containers.iter().map(|c| c.pid).collect();
    let driver = tokio::task::spawn_blocking(move || drive(&pids, addr, plan, t0));
    if let Some((from, to)) = plan.cut {
        tokio::time::sleep_until(t0 + from).await;
        link.signal(rustix::process::Signal::USR1)?;
        let cut_from = t0.elapsed();
        tokio::time::sleep_until(t0 + to).await;
        link.signal(rustix::process::Signal::USR2)?;
        marks.cut = Some((cut_from, t0.elapsed()));
    }
    tokio::time::sleep_until(t0 + plan.revoke_at).await;
    side.set_role(UserRoles::User).await?;
    marks.revoked = t0.elapsed();
    let decisions = driver.await??;
    side.set_role(UserRoles::UserPriv).await?;
    let exited = kernel
        .check_alive()
        .err()
        .map(|_| death_reason(&log_tail(&log)));
    drop(kernel);
    drop(link);
    let mut f = figures(&decisions, &marks);
    f.exited = exited;
    eprintln!("leotest-bench sites: {} {f:?}", side.name);
    Ok(f)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| {
        let v = d.as_secs_f64() * 1000.0;
        if v < 10.0 {
            format!("{v:.2} ms")
        } else {
            format!("{v:.0} ms")
        }
    })
}

fn share(part: usize, all: usize) -> String {
    if all == 0 {
        "-".into()
    } else {
        format!("{:.2} % of {all}", part as f64 * 100.0 / all as f64)
    }
}

fn ratio(ours: Option<f64>, orig: Option<f64>) -> String {
    match (ours, orig) {
        (Some(a), Some(b)) if b > 0.0 => {
            let r = a / b;
            if r >= 0.1 {
                format!("{r:.2}")
            } else {
                format!("{r:.4}")
            }
        }
        _ => "-".into(),
    }
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn frac((part, all): (usize, usize)) -> Option<f64> {
    (all > 0).then(|| part as f64 / all as f64)
}

/// The rows of one (profile, burst) pair.
fn rows(out: &mut String, label: &str, burst: usize, ours: &Figures, orig: &Figures) {
    let head = format!("{label}, {burst} at once");
    let mut row = |what: &str, r: String, a: String, b: String| {
        let _ = writeln!(out, "| {head} | {what} | {r} | {a} | {b} |");
    };
    row(
        "decision p50 (granted)",
        ratio(secs(ours.p50), secs(orig.p50)),
        ms(ours.p50),
        ms(orig.p50),
    );
    row(
        "decision p99 (granted)",
        ratio(secs(ours.p99), secs(orig.p99)),
        ms(ours.p99),
        ms(orig.p99),
    );
    let why = |f: &Figures| {
        format!(
            "{} ({} denied, {} unanswered)",
            share(f.granted.0, f.granted.1),
            f.not_granted.0,
            f.not_granted.1
        )
    };
    let revoked = |f: &Figures| {
        format!(
            "{} ({} of them unanswered)",
            share(f.revoked_denied.0, f.revoked_denied.1),
            f.revoked_unanswered
        )
    };
    row(
        "granted user: decisions granted (started before the revocation, outside the cut)",
        ratio(frac(ours.granted), frac(orig.granted)),
        why(ours),
        why(orig),
    );
    if ours.cut.is_some() || orig.cut.is_some() {
        let c = |f: &Figures| {
            f.cut.map_or("-".into(), |c| {
                format!(
                    "{} started: {} granted while cut, {} granted after, {} denied, {} unanswered",
                    c.started, c.granted_while_cut, c.granted_after, c.denied, c.unanswered
                )
            })
        };
        row(
            "decisions started during the obstruction",
            "-".into(),
            c(ours),
            c(orig),
        );
    }
    row(
        "revoked user: decisions not granted after the revocation",
        ratio(frac(ours.revoked_denied), frac(orig.revoked_denied)),
        revoked(ours),
        revoked(orig),
    );
    row(
        "revoked user: longest still let in after the revocation",
        "-".into(),
        ours.revoked_late.map_or("0 (none)".into(), |d| ms(Some(d))),
        orig.revoked_late.map_or("0 (none)".into(), |d| ms(Some(d))),
    );
    if ours.exited.is_some() || orig.exited.is_some() {
        let e = |f: &Figures| {
            f.exited
                .as_ref()
                .map_or("no".into(), |why| format!("yes: {why}"))
        };
        row(
            "kernel service died during the phase (later decisions unanswered)",
            "-".into(),
            e(ours),
            e(orig),
        );
    }
}

/// The `sites` subcommand.
pub async fn run(s: &Settings, o: &Options) -> Result<String> {
    let cases: Vec<(String, &'static str, bool)> = o
        .profiles
        .iter()
        .map(|p| profile(p).map(|(l, ob)| (p.clone(), l, ob)))
        .collect::<Result<_>>()?;
    let phase_len = Duration::from_secs_f64(
        o.phase_seconds
            .unwrap_or(if s.smoke { 12.0 } else { 30.0 })
            .clamp(3.0, 600.0),
    );
    crate::kernel::raise_nofile();
    let work = tempfile::Builder::new()
        .prefix("leotest-bench-sites")
        .tempdir()?;
    let work = work.path();
    let h = o.source.prepare()?;
    let mongo = MongoWire::start(&h.repo, work)?;
    let ours = Orchestrator::start(&s.bin_dir, &Backend::Embedded).await?;
    if ours.node_id != NODE || ours.priv_id != PRIV {
        bail!("the bench's users are not {NODE} and {PRIV}");
    }
    let (cert, key) = gen_cert(&s.bin_dir, work)?;
    let admin_token = random_hex(16)?;
    let db = format!("leotest_sites_{}", random_hex(4)?);
    let mut original =
        OriginalOrchestrator::start(&h, work, &cert, &key, &mongo, &db, &admin_token)?;
    if let Err(e) = wait_answering(
        original.addr,
        &cert,
        &admin_token,
        Duration::from_secs(120),
        || original.check_alive(),
    )
    .await
    {
        bail!("the original orchestrator: {e:#}\n{}", original.log_tail());
    }
    let orig_admin = authed_client(&connect(original.addr, &cert).await?, "admin", &admin_token)?;
    let node_token = register(&orig_admin, NODE, UserRoles::Node).await?;
    register(&orig_admin, PRIV, UserRoles::UserPriv).await?;
    let sides = [
        Side {
            name: "leotest-rs",
            admin: ours.admin_clients(1).await?.remove(0),
            orch_addr: ours.addr(),
            kind: SideKind::Ours {
                bin_dir: &s.bin_dir,
                orch: &ours,
            },
        },
        Side {
            name: "Python original",
            admin: orig_admin,
            orch_addr: original.addr,
            kind: SideKind::Original {
                harness: &h,
                cert: &cert,
                node_token,
            },
        },
    ];
    if std::process::Command::new("sysctl")
        .arg("net.ipv4.tcp_congestion_control")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        bail!(
            "the original kernel service runs `sysctl`, which is missing (apt-get install procps)"
        );
    }
    let docker = crate::docker_env::connect().await?;
    let mut results = Vec::new();
    let mut failed = None;
    'all: for &burst in &o.containers {
        let burst = burst.clamp(1, MAX_AT_ONCE);
        // a scene per count: the original inspects every container on the network per decision
        let mut scene = Scene::create(docker.clone(), burst.max(CONTAINERS), PRIV).await?;
        for (label, link, obstruction) in &cases {
            let plan = Plan::new(o, phase_len, *obstruction, burst);
            let mut pair = Vec::new();
            for side in &sides {
                eprintln!(
                    "leotest-bench sites: {label}, {burst} at once: {} ({:?})",
                    side.name, plan.duration
                );
                match phase(s, work, side, &scene, link, plan).await {
                    Ok(f) => pair.push(f),
                    Err(e) => {
                        failed = Some(e);
                        scene.cleanup().await;
                        break 'all;
                    }
                }
            }
            results.push((label.clone(), burst, pair));
        }
        scene.cleanup().await;
    }
    drop(original);
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(report(o, phase_len, &results))
}

fn report(o: &Options, phase: Duration, results: &[(String, usize, Vec<Figures>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Kernel decisions over an emulated link: leotest-rs vs the Python original, same run\n"
    );
    let _ = writeln!(
        out,
        "ratio = leotest-rs / original: below 1 is better for latency, above 1 for shares \
         granted or denied.\n"
    );
    let _ = writeln!(
        out,
        "| profile, containers connecting at once | figure | ratio | leotest-rs | Python original |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for (label, burst, pair) in results {
        if let [ours, orig] = &pair[..] {
            rows(&mut out, label, *burst, ours, orig);
        }
    }
    let plan1 = Plan::new(o, phase, true, 1);
    let _ = writeln!(
        out,
        "\nSetup: per side and case one {phase:?} phase with a fresh link (`leotest-link`, its gap \
         schedule started {CLOCK_OFFSET} s in: on `leo` the 2 s handover gap comes ~5 s into the \
         phase) and a fresh kernel service on the host asking its orchestrator through it; \
         decisions from labeled containers, one connection each per round ({CONTAINERS} on the \
         network when one connects, else as many as connect), {} rounds/s with one container, \
         {} rounds/s with more; each answered within {:?} or counted unanswered; \
         obstruction (link cut) {:?}–{:?}; revocation USER_PRIV → USER at {:?}.",
        o.rate,
        o.burst_rate,
        plan1.deadline,
        plan1.cut.map(|c| c.0).unwrap_or_default(),
        plan1.cut.map(|c| c.1).unwrap_or_default(),
        plan1.revoke_at
    );
    let _ = writeln!(
        out,
        "\nPer phase (decisions made; phase start after its link):"
    );
    for (label, burst, pair) in results {
        if let [ours, orig] = &pair[..] {
            let _ = writeln!(
                out,
                "- {label}, {burst} at once: leotest-rs {} ({:.1} s), original {} ({:.1} s)",
                ours.decisions,
                ours.start_after_link.as_secs_f64(),
                orig.decisions,
                orig.start_after_link.as_secs_f64()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(start_ms: u64, took_ms: u64, outcome: Outcome) -> Decision {
        Decision {
            start: Duration::from_millis(start_ms),
            took: Duration::from_millis(took_ms),
            outcome,
        }
    }

    #[test]
    fn decisions_are_counted_against_the_cut_and_the_revocation() {
        use Outcome::*;
        let marks = Marks {
            cut: Some((Duration::from_secs(10), Duration::from_secs(20))),
            revoked: Duration::from_secs(30),
            start_after_link: Duration::from_secs(8),
        };
        let all = [
            d(1_000, 50, Granted),
            d(2_000, 70, Granted),
            d(3_000, 60, Error),
            d(9_990, 50, Denied), // overlaps the cut: left out of the granted share
            d(12_000, 50, Error), // inside the cut
            d(15_000, 50, Denied), // inside the cut
            d(19_000, 2_000, Granted), // started in the cut, granted once the link was back
            d(29_990, 50, Granted), // ends after the revocation, started before: counted
            d(29_900, 300, Denied), // denied after the revocation, started before: left out
            d(30_100, 200, Granted), // let in after the revocation
            d(31_000, 50, Denied),
        ];
        let f = figures(&all, &marks);
        assert_eq!(f.decisions, 11);
        assert_eq!(f.granted, (3, 4));
        assert_eq!(f.not_granted, (0, 1));
        assert_eq!(
            f.cut,
            Some(CutFigures {
                started: 3,
                granted_after: 1,
                denied: 1,
                unanswered: 1,
                ..CutFigures::default()
            })
        );
        assert_eq!(f.revoked_denied, (1, 2));
        assert_eq!(f.revoked_late, Some(Duration::from_millis(300)));
        assert_eq!(f.p50, Some(Duration::from_millis(50)));
        assert_eq!(f.revoked_unanswered, 0);
    }

    #[test]
    fn a_dead_services_reason_is_its_grpc_status() {
        let log = "Traceback\n  raise _InactiveRpcError(state)\n\tstatus = StatusCode.DEADLINE_EXCEEDED\n\tdetails = \"Deadline Exceeded\"\n>\n";
        assert_eq!(death_reason(log), "status = StatusCode.DEADLINE_EXCEEDED");
        assert_eq!(death_reason("boom\n"), "boom");
    }

    #[test]
    fn profiles_are_the_issues_four() {
        assert_eq!(profile("leo+obstruction").unwrap(), ("leo", true));
        assert_eq!(profile("wan").unwrap(), ("wan", false));
        assert!(profile("5g").is_err());
    }
}
