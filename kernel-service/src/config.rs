//! Command-line flags and environment variables of the binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::caps::CapSet;

/// Which network namespace `cca.*` commands act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CcaScope {
    /// The calling container's network namespace (its own sockets see the change).
    Container,
    /// The kernel service's own namespace (the original behaviour).
    Node,
}

/// What to do when callers' network namespaces cannot be entered (no `pid: host`, no
/// CAP_SYS_ADMIN), so the 4-tuple check is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentityFallback {
    /// Identify callers by source IP only, as the original did (warned at start: forgeable by
    /// any container with CAP_NET_RAW).
    SourceIp,
    /// Refuse every connection.
    Deny,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colour only when stdout is a terminal).
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// LeoTest kernel service: brokers kernel settings for experiment containers on TCP 9000.
#[derive(Debug, Parser)]
#[command(name = "leotest-kernel-service", version)]
pub struct Cli {
    /// A helper subcommand; `None` runs the service.
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// The service's options.
    #[command(flatten)]
    pub args: Args,
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Exit 0 when the running service answers on its health endpoint (container health checks).
    Healthcheck,
    /// Send one command line over the service's unix socket and print the reply (a client for
    /// tests and containers without a unix-socket `nc`).
    Ask {
        /// Path of the unix socket (`--unix-socket` of the service).
        #[arg(long)]
        socket: PathBuf,
        /// The command line, e.g. `cca.check`.
        line: String,
    },
}

/// Service flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node id, used as the orchestrator user id (required to serve).
    #[arg(long, env = "LEOTEST_NODEID", default_value = "")]
    pub nodeid: String,
    /// Orchestrator host name.
    #[arg(long, env = "LEOTEST_GRPC_HOSTNAME", default_value = "localhost")]
    pub grpc_hostname: String,
    /// Orchestrator port.
    #[arg(long, env = "LEOTEST_GRPC_PORT", default_value_t = 50051)]
    pub grpc_port: u16,
    /// Node access token (prefer --access-token-file or the variable: flags are visible in
    /// `ps`; accepted on the command line because the original's compose file passes it there).
    #[arg(
        long,
        env = "LEOTEST_ACCESS_TOKEN",
        default_value = "leotest-access-token",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub access_token: String,
    /// Read the node access token from this file (overrides --access-token).
    #[arg(long, env = "LEOTEST_ACCESS_TOKEN_FILE")]
    pub access_token_file: Option<PathBuf>,
    /// Docker network of the experiment containers.
    #[arg(
        long,
        env = "LEOTEST_NET",
        default_value = "global-testbed_leotest-net"
    )]
    pub leotest_net: String,
    /// Log format on stdout: `text` (colour only on a terminal) or `json`.
    #[arg(long, env = "LEOTEST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Address of the command listener.
    #[arg(long, env = "LEOTEST_LISTEN", default_value = "0.0.0.0:9000")]
    pub listen: SocketAddr,
    /// Also serve the same commands on this unix socket (mount its directory into experiment
    /// containers): callers are identified by their process (SO_PEERCRED/SO_PEERPIDFD →
    /// cgroup → container), which no network neighbour can forge.
    #[arg(long, env = "LEOTEST_UNIX_SOCKET")]
    pub unix_socket: Option<PathBuf>,
    /// Accept backlog of the command listener (capped by net.core.somaxconn): connections
    /// arriving at once beyond it wait a second for the kernel's SYN-ACK retransmission.
    #[arg(long, env = "LEOTEST_LISTEN_BACKLOG", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub listen_backlog: u32,
    /// Certificates (PEM) trusted for the orchestrator: its own (pinned) or its CA.
    #[arg(long, env = "LEOTEST_CA_CERT", default_value = "certs/server.crt")]
    pub ca_cert: PathBuf,
    /// Name the orchestrator certificate must carry.
    #[arg(long, env = "LEOTEST_TLS_DOMAIN", default_value = "localhost")]
    pub tls_domain: String,
    /// Total time for one access decision (retries included); then deny.
    #[arg(long, env = "LEOTEST_DECISION_DEADLINE", default_value = "3s", value_parser = parse_duration)]
    pub decision_deadline: Duration,
    /// Limit of one attempt of the orchestrator call (connecting included); failed attempts are
    /// retried with backoff within --decision-deadline (README, "Sites and links").
    #[arg(long, env = "LEOTEST_ORCHESTRATOR_ATTEMPT_TIMEOUT", default_value = "1s",
          value_parser = parse_nonzero_duration)]
    pub orchestrator_attempt_timeout: Duration,
    /// HTTP/2 keepalive towards the orchestrator: ping after this much silence, drop the
    /// connection when the answer takes as long (a dead link is noticed in ~2x this; 0 = off).
    #[arg(long, env = "LEOTEST_ORCHESTRATOR_KEEPALIVE", default_value = "1s", value_parser = parse_duration)]
    pub orchestrator_keepalive: Duration,
    /// While the orchestrator is unreachable, grant a user it granted within this window
    /// (0 = never, the default; at most 1h). Never after a denial; each reuse is counted and logged.
    #[arg(long, env = "LEOTEST_STALE_GRANT_WINDOW", default_value = "0s", value_parser = parse_stale_window)]
    pub stale_grant_window: Duration,
    /// How long a grant may be reused for the same container and user (0 = ask every time).
    #[arg(long, env = "LEOTEST_GRANT_CACHE_TTL", default_value = "0s", value_parser = parse_duration)]
    pub grant_cache_ttl: Duration,
    /// How long a denial is reused for the same container and user (0 = ask every time); a
    /// refused container reconnecting in a loop then costs one orchestrator call per period.
    #[arg(long, env = "LEOTEST_DENY_CACHE_TTL", default_value = "1s", value_parser = parse_duration)]
    pub deny_cache_ttl: Duration,
    /// Most connections served at once; more wait in the accept backlog.
    #[arg(long, env = "LEOTEST_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Most connections one source address holds at once; more are answered with an error
    /// line (default: a quarter of --max-connections).
    #[arg(long, env = "LEOTEST_MAX_CONNECTIONS_PER_SOURCE",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_source: Option<u32>,
    /// Most connections one user holds at once over all its containers; more are answered with
    /// an error line (default: half of --max-connections).
    #[arg(long, env = "LEOTEST_MAX_CONNECTIONS_PER_USER",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_user: Option<u32>,
    /// Docker lookups per second for addresses not in the container map, per source address
    /// (bursts of five seconds' worth); addresses off the network's subnets are never looked up.
    #[arg(long, env = "LEOTEST_LOOKUPS_PER_SOURCE", default_value_t = 1.0)]
    pub lookups_per_source: f64,
    /// Docker lookups per second for unknown addresses, all sources together.
    #[arg(long, env = "LEOTEST_LOOKUPS_TOTAL", default_value_t = 20.0)]
    pub lookups_total: f64,
    /// Refuse callers whose container may hold any of these capabilities (comma-separated,
    /// `privileged` holds all; empty = refuse none). Add NET_RAW where experiments drop it.
    #[arg(long, env = "LEOTEST_REFUSE_CAPS", default_value = "NET_ADMIN,SYS_ADMIN",
          value_parser = parse_caps)]
    pub refuse_caps: CapSet,
    /// When callers' network namespaces cannot be entered (no `pid: host` or no
    /// CAP_SYS_ADMIN): identify by source IP as the original did, or deny everyone.
    #[arg(long, env = "LEOTEST_IDENTITY_FALLBACK", value_enum,
          default_value_t = IdentityFallback::SourceIp)]
    pub identity_fallback: IdentityFallback,
    /// Network namespace that cca.check / cca.change act on.
    #[arg(long, env = "LEOTEST_CCA_SCOPE", value_enum, default_value_t = CcaScope::Container)]
    pub cca_scope: CcaScope,
    /// Directory of the bbr2 module parameters; bbr2.param.set only writes files directly in it.
    #[arg(
        long,
        env = "LEOTEST_BBR2_PARAM_DIR",
        default_value = "/sys/module/tcp_bbr2/parameters"
    )]
    pub bbr2_param_dir: PathBuf,
    /// Total time a granted client has to send its command line.
    #[arg(long, env = "LEOTEST_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,
    /// Sandboxes kept started and waiting for a job (0 = make each on demand); each is a
    /// copy-on-write fork of the service that holds a cgroup and five namespaces.
    #[arg(long, env = "LEOTEST_SANDBOX_PREWARM", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(0..=64))]
    pub sandbox_prewarm: u8,
    /// Sandbox limits (jobs, watchers, output), in total and per user.
    #[command(flatten)]
    pub sandbox: crate::sandbox::flags::SandboxArgs,
    /// Address of the /metrics and /healthz HTTP listener. Port 19100: not 9100, which
    /// Prometheus' node_exporter holds on most nodes (README, "Metrics").
    #[arg(
        long,
        env = "LEOTEST_METRICS_LISTEN",
        default_value = "127.0.0.1:19100"
    )]
    pub metrics_listen: SocketAddr,
    /// Bind the metrics listener to the address this host name resolves to (at start-up, with
    /// --metrics-listen's port) instead of --metrics-listen's address. The compose testbed names
    /// an alias the container has on its control network only, so that experiments on the
    /// experiment network cannot reach /metrics (README, "The docker-compose testbed").
    #[arg(long, env = "LEOTEST_METRICS_HOST", value_parser = parse_host_name)]
    pub metrics_host: Option<String>,
}

/// A DNS name or address literal: 1 to 253 characters of `[A-Za-z0-9.-:]`.
fn parse_host_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a host name"))
    }
}

fn parse_caps(s: &str) -> Result<CapSet, String> {
    CapSet::parse_list(s)
}

fn parse_nonzero_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than 0".into()),
        d => Ok(d),
    }
}

fn parse_stale_window(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d > crate::stale::MAX_WINDOW => Err(format!(
            "at most {}s: a revoked user keeps access up to this long while the link is down",
            crate::stale::MAX_WINDOW.as_secs()
        )),
        d => Ok(d),
    }
}

/// Parses `250ms`, `3s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mul_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 3s, 1m)"))?;
    n.checked_mul(mul_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} too large"))
}

/// Whether the node token was given as a command-line flag (visible to every local user in
/// `ps` and `/proc/PID/cmdline`), as the original's compose file does.
pub fn token_on_command_line<I: IntoIterator<Item = String>>(argv: I) -> bool {
    argv.into_iter()
        .any(|a| a == "--access-token" || a.starts_with("--access-token="))
}

impl Args {
    /// Per-source and per-user connection limits (defaults relative to --max-connections).
    pub fn connection_limits(&self) -> (usize, usize) {
        let total = self.max_connections as usize;
        let (src, user) = crate::server::limits::default_limits(total);
        (
            self.max_connections_per_source.map_or(src, |v| v as usize),
            self.max_connections_per_user.map_or(user, |v| v as usize),
        )
    }

    /// Where the metrics listener binds: --metrics-listen, or --metrics-host's first address
    /// (IPv4 preferred) with --metrics-listen's port.
    pub async fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        let Some(host) = &self.metrics_host else {
            return Ok(self.metrics_listen);
        };
        let port = self.metrics_listen.port();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("--metrics-host {host} has no address"),
                )
            })
    }

    /// The node token: from --access-token-file when given (trailing newline stripped).
    pub fn node_token(&self) -> std::io::Result<String> {
        match &self.access_token_file {
            Some(p) => Ok(std::fs::read_to_string(p)?.trim_end().to_string()),
            None => Ok(self.access_token.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let cli = Cli::try_parse_from(["x", "--nodeid", "n1"]).unwrap();
        assert_eq!(cli.args.leotest_net, "global-testbed_leotest-net");
        assert_eq!(cli.args.grpc_port, 50051);
        assert_eq!(cli.args.listen.port(), 9000);
        assert_eq!(cli.args.decision_deadline, Duration::from_secs(3));
        assert_eq!(cli.args.grant_cache_ttl, Duration::ZERO);
        assert_eq!(
            cli.args.stale_grant_window,
            Duration::ZERO,
            "stale grants off"
        );
        assert_eq!(
            cli.args.orchestrator_attempt_timeout,
            Duration::from_secs(1)
        );
        assert_eq!(cli.args.orchestrator_keepalive, Duration::from_secs(1));
        assert!(Cli::try_parse_from(["x", "--stale-grant-window=2h"]).is_err());
        assert!(Cli::try_parse_from(["x", "--orchestrator-attempt-timeout=0"]).is_err());
        assert_eq!(cli.args.cca_scope, CcaScope::Container);
        assert_eq!(cli.args.connection_limits(), (1024, 2048));
        assert_eq!(cli.args.deny_cache_ttl, Duration::from_secs(1));
        assert_eq!(cli.args.identity_fallback, IdentityFallback::SourceIp);
        assert_eq!(
            cli.args.refuse_caps.to_string(),
            "CAP_NET_ADMIN,CAP_SYS_ADMIN"
        );
        assert!(matches!(
            Cli::try_parse_from(["x", "healthcheck"]).unwrap().command,
            Some(Sub::Healthcheck)
        ));
    }

    #[test]
    fn token_file_overrides_the_flag() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "s3cret\n").unwrap();
        let p = f.path().to_str().unwrap();
        let cli = Cli::try_parse_from(["x", "--access-token-file", p]).unwrap();
        assert_eq!(cli.args.node_token().unwrap(), "s3cret");
    }

    /// The kernel section of the original's `docker-compose-node.yaml`, as written there.
    #[test]
    fn the_original_node_compose_arguments_parse() {
        let argv = [
            "x",
            "--nodeid=<node id>",
            "--grpc-hostname=<grpc host ipaddr/name>",
            "--grpc-port=50051",
            "--access-token=<node access token>",
            "--leotest-net=global-testbed_leotest-net",
        ];
        let cli = Cli::try_parse_from(argv).unwrap();
        assert_eq!(cli.args.node_token().unwrap(), "<node access token>");
        assert_eq!(cli.args.leotest_net, "global-testbed_leotest-net");
        assert!(token_on_command_line(argv.iter().map(|s| s.to_string())));
        assert!(!token_on_command_line(
            ["x", "--access-token-file=/t"]
                .iter()
                .map(|s| s.to_string())
        ));
        let limits = Cli::try_parse_from([
            "x",
            "--max-connections=64",
            "--max-connections-per-user=8",
            "--refuse-caps=",
        ])
        .unwrap();
        assert_eq!(limits.args.connection_limits(), (16, 8));
        assert!(limits.args.refuse_caps.is_empty());
        assert!(Cli::try_parse_from(["x", "--refuse-caps=NET_WIZARD"]).is_err());
    }

    #[tokio::test]
    async fn metrics_host_picks_the_address_and_keeps_the_port() {
        let plain = Cli::try_parse_from(["x", "--metrics-listen=0.0.0.0:9100"]).unwrap();
        assert_eq!(
            plain.args.metrics_addr().await.unwrap(),
            "0.0.0.0:9100".parse().unwrap()
        );
        let named = Cli::try_parse_from([
            "x",
            "--metrics-listen=0.0.0.0:9100",
            "--metrics-host=127.0.0.1",
        ])
        .unwrap();
        assert_eq!(
            named.args.metrics_addr().await.unwrap(),
            "127.0.0.1:9100".parse().unwrap()
        );
        for bad in ["", "a b", "x;y", &"a".repeat(254)] {
            assert!(
                Cli::try_parse_from(["x", &format!("--metrics-host={bad}")]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("x").is_err());
    }
}
