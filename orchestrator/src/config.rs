//! The server's configuration from flags and environment (the original's flags plus TLS, store
//! and JWT extras); the command line around it, with its subcommands, is [`crate::cli`].

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, ValueEnum};

pub use crate::schedule::OverlapRules;
pub use crate::tokens::TokenStorage;

/// Default certificate path, the one the original server and clients use.
pub const DEFAULT_TLS_CERT: &str = "certs/server.crt";
/// Default private key path.
pub const DEFAULT_TLS_KEY: &str = "certs/server.key";

/// Which store backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// SQLite file under --data-dir; no database server needed.
    Embedded,
    /// MongoDB at --db-server/--db-port, database --db-name.
    Mongo,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the server needs; every flag also reads a `LEOTEST_*` environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Accepted and ignored, as by the original (which always listened on [::]:50051): it does
    /// not choose the listen address. Use --listen for that.
    #[arg(long, env = "LEOTEST_GRPC_HOSTNAME", default_value = "localhost")]
    pub grpc_hostname: String,

    /// Port to listen on (when --listen names none).
    #[arg(long, env = "LEOTEST_GRPC_PORT", default_value_t = 50051)]
    pub grpc_port: u16,

    /// Address to listen on: IP, IP:PORT, [IPv6]:PORT, HOST or HOST:PORT (port: --grpc-port).
    /// Default: every address, like the original ([::], IPv4 included; 0.0.0.0 where IPv6 is
    /// unavailable).
    #[arg(long, env = "LEOTEST_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Serve metrics (`/metrics`, Prometheus/OpenMetrics text) and `/healthz` over plain HTTP
    /// on this address, e.g. 127.0.0.1:9101. Off when unset. The endpoint holds no secrets
    /// (no tokens, no user ids: only method names, status codes and fixed reasons as labels).
    #[arg(long, env = "LEOTEST_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Start even though the admin token is the original's public default while the listener
    /// is reachable from other hosts (without it that combination refuses to start).
    #[arg(long, env = "LEOTEST_ALLOW_DEFAULT_ADMIN_TOKEN")]
    pub allow_default_admin_token: bool,

    /// Seconds a client has to complete its TLS handshake. Not lower than about 15: a grpcio
    /// channel with no call in flight advances its connection only on grpc-core's 5 s backup
    /// poll, so the original's Python client may need three such steps after a failed connect.
    #[arg(long, env = "LEOTEST_HANDSHAKE_TIMEOUT", value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub handshake_timeout: u64,

    /// TLS handshakes in progress at once; a new connection beyond it closes the oldest
    /// pending handshake.
    #[arg(long, env = "LEOTEST_MAX_HANDSHAKES", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
    pub max_handshakes: usize,

    /// TLS handshakes in progress at once from one source (an IPv4 address or an IPv6 /64);
    /// a new connection beyond it closes that source's oldest pending handshake.
    #[arg(long, env = "LEOTEST_MAX_HANDSHAKES_PER_SOURCE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
    pub max_handshakes_per_source: usize,

    /// Accepted for compatibility; the async runtime sizes itself to the CPU count.
    #[arg(long, env = "LEOTEST_GRPC_WORKERS", default_value_t = 10)]
    pub grpc_workers: u32,

    /// MongoDB host, or a full mongodb:// URL. Giving it selects the MongoDB store.
    #[arg(long, env = "LEOTEST_DB_SERVER")]
    pub db_server: Option<String>,

    /// MongoDB port (when --db-server is a host name).
    #[arg(long, env = "LEOTEST_DB_PORT", default_value_t = 27017)]
    pub db_port: u16,

    /// MongoDB database name.
    #[arg(long, env = "LEOTEST_DB_NAME", default_value = "leotest")]
    pub db_name: String,

    /// Static access token of the `admin` user, re-applied at every start. The original's
    /// default `leotest-access-token` applies when unset, and then only a loopback --listen
    /// starts (prefer the environment variable: flags are visible in `ps`).
    #[arg(
        long,
        env = "LEOTEST_ADMIN_ACCESS_TOKEN",
        default_value = crate::listen::DEFAULT_ADMIN_TOKEN,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub admin_access_token: String,

    /// Shared secret for HS256/HS384/HS512 JWTs (the original's placeholder default
    /// `jwt-secret` is refused when an HS algorithm is selected).
    #[arg(
        long,
        env = "LEOTEST_JWT_SECRET",
        default_value = "jwt-secret",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub jwt_secret: String,

    /// JWT algorithm (HS256, RS256, ES256, ...). The original's default `jwt-algo` (or any
    /// unknown name) disables JWT authentication.
    #[arg(long, env = "LEOTEST_JWT_ALGO", default_value = "jwt-algo")]
    pub jwt_algo: String,

    /// PEM public key for RS*/PS*/ES*/EdDSA JWTs.
    #[arg(long, env = "LEOTEST_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Server certificate chain (PEM). If it and the key are both missing at their default
    /// paths, a self-signed development pair is generated there.
    #[arg(long, env = "LEOTEST_TLS_CERT", default_value = DEFAULT_TLS_CERT)]
    pub tls_cert: PathBuf,

    /// Server private key (PEM: PKCS#1, PKCS#8 or SEC1).
    #[arg(long, env = "LEOTEST_TLS_KEY", default_value = DEFAULT_TLS_KEY)]
    pub tls_key: PathBuf,

    /// CA bundle (PEM); when given, clients must present a certificate it signed (mTLS).
    #[arg(long, env = "LEOTEST_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Store backend. Default: mongo if --db-server is given, else embedded.
    #[arg(long, env = "LEOTEST_STORE", value_enum)]
    pub store: Option<StoreKind>,

    /// Directory of the embedded store.
    #[arg(long, env = "LEOTEST_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Largest accepted request message, in bytes.
    #[arg(long, env = "LEOTEST_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Log format.
    #[arg(long, env = "LEOTEST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Schedule overlap rules of schedule_job and reschedule_job_nearest: `original`
    /// reproduces the Python orchestrator's checks and their blind spots, `strict` treats any
    /// intersection of two runs as a conflict (docs/compatibility.md, "Overlap rules").
    #[arg(long, env = "LEOTEST_OVERLAP_RULES", value_enum, default_value_t = OverlapRules::Original)]
    pub overlap_rules: OverlapRules,

    /// How tokens issued from now on are stored: `hashed` (only a SHA-256 digest) or `plain`
    /// (the token itself, as the original stores it, so that the original orchestrator can
    /// still authenticate these users on a shared database). Both forms always authenticate.
    #[arg(long, env = "LEOTEST_TOKEN_STORAGE", value_enum, default_value_t = TokenStorage::Hashed)]
    pub token_storage: TokenStorage,

    /// Connection, request and reply budgets; PROXY protocol from trusted balancers.
    #[command(flatten)]
    pub budgets: crate::budgets::BudgetArgs,
}

impl ServerConfig {
    /// The backend in effect after applying the defaults.
    pub fn store_kind(&self) -> StoreKind {
        match self.store {
            Some(kind) => kind,
            None if self.db_server.is_some() => StoreKind::Mongo,
            None => StoreKind::Embedded,
        }
    }

    /// MongoDB connection string: --db-server itself if it is a URL, else host and port.
    pub fn mongo_uri(&self) -> String {
        let server = self.db_server.as_deref().unwrap_or("localhost");
        if server.starts_with("mongodb://") || server.starts_with("mongodb+srv://") {
            server.to_string()
        } else {
            format!("mongodb://{server}:{}", self.db_port)
        }
    }

    /// Whether both TLS paths are the defaults (only then may a dev pair be generated).
    pub fn tls_paths_are_default(&self) -> bool {
        self.tls_cert == std::path::Path::new(DEFAULT_TLS_CERT)
            && self.tls_key == std::path::Path::new(DEFAULT_TLS_KEY)
    }
}

/// Parses server flags alone, as the binary does (`crate::cli::Cli` flattens the same
/// struct), for the tests of the modules that read them.
#[cfg(test)]
pub(crate) fn parse_flags(args: &[&str]) -> Result<ServerConfig, clap::Error> {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        server: ServerConfig,
    }
    let mut v = vec!["leotest-orchestrator"];
    v.extend_from_slice(args);
    Flags::try_parse_from(v).map(|f| f.server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServerConfig {
        parse_flags(args).expect("valid flags")
    }

    #[test]
    fn defaults_match_the_original() {
        let c = parse(&[]);
        assert_eq!(c.grpc_hostname, "localhost");
        assert_eq!(c.grpc_port, 50051);
        assert_eq!(c.grpc_workers, 10);
        assert_eq!(c.db_port, 27017);
        assert_eq!(c.db_name, "leotest");
        assert_eq!(c.admin_access_token, "leotest-access-token");
        assert_eq!(c.jwt_secret, "jwt-secret");
        assert_eq!(c.jwt_algo, "jwt-algo");
        assert_eq!(c.store_kind(), StoreKind::Embedded);
        assert!(c.tls_paths_are_default());
        assert_eq!(c.overlap_rules, OverlapRules::Original);
        assert_eq!(c.token_storage, TokenStorage::Hashed);
        assert_eq!(c.listen, None);
        assert!(!c.allow_default_admin_token);
        assert_eq!(c.handshake_timeout, 20);
        assert_eq!(c.max_handshakes, 1024);
        assert_eq!(c.max_handshakes_per_source, 16);
        assert_eq!(c.metrics_listen, None, "metrics are opt-in");
        let b = &c.budgets;
        assert_eq!(
            (b.max_connections, b.max_connections_per_source),
            (4096, 256)
        );
        assert_eq!(
            (b.idle_timeout, b.keepalive_interval, b.keepalive_timeout),
            (300, 60, 20)
        );
        assert_eq!((b.max_connection_age, b.request_timeout), (3600, 120));
        assert_eq!(b.max_concurrent_streams, 100);
        assert_eq!(b.max_connection_receive_bytes, 32 << 20);
        assert_eq!(b.max_reply_bytes, 16 << 20);
        assert!(b.trusted_proxies.is_empty(), "PROXY protocol is opt-in");
    }

    #[test]
    fn budget_flags() {
        let c = parse(&[
            "--max-connections=10",
            "--max-connections-per-source=2",
            "--idle-timeout=5",
            "--max-concurrent-streams=7",
            "--trusted-proxies=10.0.0.2,172.18.0.0/16",
        ]);
        let b = &c.budgets;
        assert_eq!((b.max_connections, b.max_connections_per_source), (10, 2));
        assert_eq!((b.idle_timeout, b.max_concurrent_streams), (5, 7));
        assert!(b
            .trusted_proxies
            .contains("172.18.3.4".parse().expect("ip")));
        for bad in [
            "--max-connections=0",
            "--idle-timeout=0",
            "--max-concurrent-streams=0",
            "--max-connection-receive-bytes=1",
            "--trusted-proxies=balancer",
        ] {
            assert!(parse_flags(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_listen_flag() {
        let c = parse(&["--metrics-listen", "127.0.0.1:9101"]);
        assert_eq!(
            c.metrics_listen,
            Some("127.0.0.1:9101".parse().expect("addr"))
        );
        assert!(parse_flags(&["--metrics-listen", "nowhere"]).is_err());
    }

    #[test]
    fn listen_and_handshake_flags() {
        let c = parse(&[
            "--grpc-hostname=localhost",
            "--listen",
            "127.0.0.1:9",
            "--allow-default-admin-token",
            "--handshake-timeout",
            "2",
            "--max-handshakes",
            "64",
            "--max-handshakes-per-source",
            "4",
        ]);
        assert_eq!(c.listen.as_deref(), Some("127.0.0.1:9"));
        assert!(c.allow_default_admin_token);
        assert_eq!(
            (
                c.handshake_timeout,
                c.max_handshakes,
                c.max_handshakes_per_source
            ),
            (2, 64, 4)
        );
        for bad in [
            &["--handshake-timeout", "0"][..],
            &["--max-handshakes", "0"],
            &["--max-handshakes-per-source", "0"],
        ] {
            assert!(parse_flags(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlap_rules_flag() {
        let c = parse(&["--overlap-rules", "strict"]);
        assert_eq!(c.overlap_rules, OverlapRules::Strict);
        let c = parse(&["--overlap-rules", "original"]);
        assert_eq!(c.overlap_rules, OverlapRules::Original);
        assert!(parse_flags(&["--overlap-rules", "lenient"]).is_err());
    }

    #[test]
    fn db_server_selects_mongo() {
        let c = parse(&["--db-server", "db.example", "--db-port", "27018"]);
        assert_eq!(c.store_kind(), StoreKind::Mongo);
        assert_eq!(c.mongo_uri(), "mongodb://db.example:27018");
        let c = parse(&["--db-server", "mongodb://u@h:1/x?tls=true"]);
        assert_eq!(c.mongo_uri(), "mongodb://u@h:1/x?tls=true");
        let c = parse(&["--db-server", "h", "--store", "embedded"]);
        assert_eq!(c.store_kind(), StoreKind::Embedded);
    }
}
