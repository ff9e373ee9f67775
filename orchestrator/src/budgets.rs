//! Flags of the connection and request budgets (each with its `LEOTEST_*` variable), their
//! HTTP/2 settings, and the descriptor limit raised at start-up.
//!
//! The defaults are far above what a testbed uses (tens to hundreds of node agents, kernel
//! services and portal users, each holding one or two connections) and far below what takes
//! the process down; docs/security.md lists each with its attack and test.

use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::Args;

use crate::proxy::TrustedProxies;

/// Descriptors kept for everything but client connections: the store's pool, the metrics
/// listener, files, logs.
const RESERVED_FDS: u64 = 512;

/// Largest HTTP/2 frame we accept (the protocol's minimum and hyper's default).
pub const MAX_FRAME_BYTES: u32 = 16 * 1024;
/// Largest header list (gRPC metadata: paths, tokens up to 8 KiB, JWTs) we accept.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// HTTP/2 flow-control windows, before the receive budget caps them.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;

/// Budgets of the gRPC listener.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Established (post-TLS) connections held at once. A new one beyond it closes the oldest
    /// idle connection (no request in progress); refused only when every one is busy.
    #[arg(long, env = "LEOTEST_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
    pub max_connections: usize,

    /// Established connections held at once from one source (an IPv4 address or an IPv6
    /// /64; behind a balancer, the client address of its PROXY header). A new one beyond it
    /// closes that source's oldest idle connection.
    #[arg(long, env = "LEOTEST_MAX_CONNECTIONS_PER_SOURCE", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
    pub max_connections_per_source: usize,

    /// Seconds an established connection may stay without a request in progress (one that
    /// never sends its HTTP/2 preface included) before it is closed; clients reconnect on
    /// their next call.
    #[arg(long, env = "LEOTEST_IDLE_TIMEOUT", value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,

    /// Seconds between HTTP/2 keepalive pings the server sends on each connection.
    #[arg(long, env = "LEOTEST_KEEPALIVE_INTERVAL", value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub keepalive_interval: u64,

    /// Seconds a client has to answer a keepalive ping before its connection is closed.
    #[arg(long, env = "LEOTEST_KEEPALIVE_TIMEOUT", value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub keepalive_timeout: u64,

    /// Seconds after which a connection is drained gracefully (HTTP/2 GOAWAY: requests in
    /// progress finish, clients reconnect for the next one).
    #[arg(long, env = "LEOTEST_MAX_CONNECTION_AGE", value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub max_connection_age: u64,

    /// HTTP/2 streams (requests) in progress at once on one connection.
    #[arg(long, env = "LEOTEST_MAX_CONCURRENT_STREAMS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_streams: u32,

    /// Seconds one request may take, from its headers to its reply (a request that never
    /// finishes sending its body included); past it the call fails with CANCELLED.
    #[arg(long, env = "LEOTEST_REQUEST_TIMEOUT", value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub request_timeout: u64,

    /// Request bytes one connection may have in flight over all its streams (received, not
    /// yet handled); a request past it fails with RESOURCE_EXHAUSTED. Also caps the HTTP/2
    /// flow-control windows (1 MiB per stream, 2 MiB per connection).
    #[arg(long, env = "LEOTEST_MAX_CONNECTION_RECEIVE_BYTES", value_name = "BYTES",
          default_value_t = 32 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(65_536..=(1 << 30)).map(|n| n as usize))]
    pub max_connection_receive_bytes: usize,

    /// Largest reply of a list RPC (`get_scheduled_runs` answers FAILED past it with a
    /// message saying so; lists without a message field stop at it), in bytes.
    #[arg(long, env = "LEOTEST_MAX_REPLY_BYTES", value_name = "BYTES",
          default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(65_536..=(1 << 30)).map(|n| n as usize))]
    pub max_reply_bytes: usize,

    /// Load balancers whose PROXY protocol v2 header is believed: comma-separated IPs and
    /// CIDRs. From them the header is required and its client address is the source of every
    /// per-source limit and log line; from anyone else a PROXY header is refused. Empty
    /// (the default): no PROXY headers at all.
    #[arg(
        long,
        env = "LEOTEST_TRUSTED_PROXIES",
        value_name = "IPS",
        default_value = "",
        hide_default_value = true
    )]
    pub trusted_proxies: TrustedProxies,
}

impl BudgetArgs {
    /// `--idle-timeout` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout)
    }

    /// HTTP/2 stream window: 1 MiB, or the receive budget if smaller.
    pub fn stream_window(&self) -> u32 {
        STREAM_WINDOW.min(u32::try_from(self.max_connection_receive_bytes).unwrap_or(u32::MAX))
    }

    /// HTTP/2 connection window: 2 MiB, or the receive budget if smaller.
    pub fn connection_window(&self) -> u32 {
        CONNECTION_WINDOW.min(u32::try_from(self.max_connection_receive_bytes).unwrap_or(u32::MAX))
    }
}

/// Raises the soft descriptor limit to the hard one (as the kernel service does) and returns
/// the soft limit in effect, `None` where it cannot be read.
pub fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current.is_some() && lim.current != lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
    // `None` is RLIM_INFINITY.
    Some(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// The connection limit that fits the descriptor limit `nofile` next to `handshakes` pending
/// handshakes and [`RESERVED_FDS`]: `wanted`, or less with a warning.
pub fn fit_connections(wanted: usize, handshakes: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return wanted;
    };
    let room = nofile
        .saturating_sub(RESERVED_FDS)
        .saturating_sub(u64::try_from(handshakes).unwrap_or(u64::MAX));
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(16);
    if wanted > room {
        tracing::warn!(
            nofile,
            wanted,
            effective = room,
            "--max-connections does not fit the open-file limit: lowered (raise `ulimit -n`)"
        );
        return room;
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_descriptor_limit() {
        assert_eq!(fit_connections(4096, 1024, Some(1 << 20)), 4096);
        assert_eq!(fit_connections(4096, 1024, Some(4096)), 4096 - 1024 - 512);
        assert_eq!(fit_connections(4096, 1024, Some(100)), 16);
        assert_eq!(fit_connections(4096, 1024, None), 4096);
    }

    #[test]
    fn the_descriptor_limit_is_raised() {
        let soft = raise_nofile().expect("limit");
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(Some(soft), hard.or(Some(u64::MAX)));
    }
}
