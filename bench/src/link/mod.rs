//! `leotest-link`: an emulated uplink between a testbed site and the cloud (issue 22 item 1).
//!
//! A TCP relay that delays every chunk by the profile's one-way delay (with jitter), holds a
//! "lost" chunk for a retransmission time (and, like TCP, everything behind it), and carries
//! nothing during a handover gap or while the link is cut: bytes wait and flow again when it
//! is back, as TCP's retransmissions would deliver them; a connection opened meanwhile waits
//! too. It runs in userspace because the test machine's kernel has no `netem` qdisc
//! (CONFIG_NET_SCH_NETEM is off: `tc qdisc add ... netem` answers "Specified qdisc kind is
//! unknown"); on a kernel with netem the same profiles can be set with `tc` instead.
//!
//! `SIGUSR1` cuts the link, `SIGUSR2` restores it (`scripts/testbed.sh link cut|restore SITE`).
//! Every state change is one line on stderr.

pub mod profile;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

pub use profile::{Profile, SplitMix};

/// An emulated link in front of one upstream address.
#[derive(Debug, Parser)]
#[command(name = "leotest-link", version, about)]
pub struct Args {
    /// Address to accept the site's connections on.
    #[arg(long, default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Where the cloud side is (host:port).
    #[arg(long)]
    pub upstream: String,
    /// lan, wan or leo.
    #[arg(long, default_value = "leo")]
    pub profile: String,
    /// Seed of the delay and loss draws (the gap schedule is fixed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Most connections relayed at once; more wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Start this many seconds into the gap schedule, so that a short run meets a given gap
    /// early (the benchmark starts at 62 s: the 2 s gap of period 5 comes 13 s after start).
    #[arg(long, default_value_t = 0.0)]
    pub clock_offset: f64,
}

/// The shared state of the link: profile, clock, cut switch, random draws.
pub struct Link {
    profile: Profile,
    start: Instant,
    cut: AtomicBool,
    rng: Mutex<SplitMix>,
}

/// Biggest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction: past it the reader waits (bounded memory per connection).
const IN_FLIGHT: usize = 64;
/// How often a cut link is looked at again.
const CUT_POLL: Duration = Duration::from_millis(10);

impl Link {
    /// A link that starts at the beginning of its gap schedule; `seed` fixes the random draws.
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self::with_offset(profile, seed, Duration::ZERO)
    }

    /// A link whose gap schedule is already `offset` in.
    pub fn with_offset(profile: Profile, seed: u64, offset: Duration) -> Self {
        let now = Instant::now();
        Link {
            profile,
            start: now.checked_sub(offset).unwrap_or(now),
            cut: AtomicBool::new(false),
            rng: Mutex::new(SplitMix::new(seed)),
        }
    }

    /// Returns once the link carries traffic: not cut and not in a handover gap.
    pub async fn wait_up(&self) {
        loop {
            if self.cut.load(Ordering::Relaxed) {
                tokio::time::sleep(CUT_POLL).await;
                continue;
            }
            match self.profile.gap_left(self.start.elapsed()) {
                Some(left) => tokio::time::sleep(left).await,
                None => return,
            }
        }
    }

    fn delay(&self) -> Duration {
        match self.rng.lock() {
            Ok(mut rng) => self.profile.delay(&mut rng).0,
            Err(_) => self.profile.base,
        }
    }

    /// Cuts the link (`true`: nothing passes until restored) or restores it.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
        eprintln!(
            "leotest-link {}: {}",
            self.profile.name,
            if cut { "cut" } else { "restored" }
        );
    }
}

/// Relays one direction: chunks leave in order, each at its delivery time, when the link is up.
async fn pump(link: Arc<Link>, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let reader_link = Arc::clone(&link);
    let reader = async move {
        let mut last = Instant::now();
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.truncate(n);
            // in order: a late (lost) chunk holds back everything behind it
            let at = (Instant::now() + reader_link.delay()).max(last);
            last = at;
            if tx.send((at, buf)).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, buf)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            link.wait_up().await;
            if to.write_all(&buf).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

async fn relay(link: Arc<Link>, client: TcpStream, upstream: String) {
    // A connection attempt during an outage waits for the link, then costs a round trip.
    link.wait_up().await;
    tokio::time::sleep(link.delay() * 2).await;
    let server =
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&upstream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                eprintln!("leotest-link: upstream {upstream}: {e}");
                return;
            }
            Err(_) => {
                eprintln!("leotest-link: upstream {upstream}: connect timed out");
                return;
            }
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::join!(
        pump(Arc::clone(&link), cr, sw),
        pump(Arc::clone(&link), sr, cw)
    );
}

/// Logs each handover gap as it starts, so a run's log shows the schedule it saw.
async fn log_gaps(link: Arc<Link>) {
    let Some(every) = link.profile.handover_every else {
        return;
    };
    let mut k: u32 = 1;
    loop {
        tokio::time::sleep_until(link.start + every.saturating_mul(k)).await;
        if let Some(left) = link.profile.gap_left(link.start.elapsed()) {
            eprintln!(
                "leotest-link {}: handover gap {} ms",
                link.profile.name,
                left.as_millis()
            );
        }
        k = k.saturating_add(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let profile = Profile::by_name(&args.profile)
        .ok_or_else(|| anyhow::anyhow!("unknown --profile {:?} (lan, wan, leo)", args.profile))?;
    let offset = Duration::try_from_secs_f64(args.clock_offset)
        .map_err(|_| anyhow::anyhow!("--clock-offset: seconds, 0 or more"))?;
    let link = Arc::new(Link::with_offset(profile, args.seed, offset));
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!(
        "leotest-link {}: {} -> {} (one way {:?} + up to {:?}, loss {} %)",
        link.profile.name,
        args.listen,
        args.upstream,
        link.profile.base,
        link.profile.jitter,
        link.profile.loss * 100.0
    );
    let mut cut = signal(SignalKind::user_defined1())?;
    let mut restore = signal(SignalKind::user_defined2())?;
    let mut term = signal(SignalKind::terminate())?;
    let slots = Arc::new(Semaphore::new(args.max_connections.max(1)));
    tokio::spawn(log_gaps(Arc::clone(&link)));
    loop {
        let permit = Arc::clone(&slots).acquire_owned().await?;
        tokio::select! {
            accepted = listener.accept() => {
                let (client, _) = accepted?;
                let (link, upstream) = (Arc::clone(&link), args.upstream.clone());
                tokio::spawn(async move {
                    relay(link, client, upstream).await;
                    drop(permit);
                });
            }
            _ = cut.recv() => link.set_cut(true),
            _ = restore.recv() => link.set_cut(false),
            _ = term.recv() => return Ok(()),
        }
    }
}

/// Entry point of the `leotest-link` binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("leotest-link: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leotest-link: {e:#}");
            ExitCode::FAILURE
        }
    }
}
