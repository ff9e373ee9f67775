//! What the workspace's integration tests share (a dev-dependency only, never published): the
//! real `leotest-orchestrator` binary over TLS ([`Orchestrator`]), credentials and typed calls
//! ([`Creds`], [`As`], [`calls`]), a fresh MongoDB database per test ([`mongo`]), a
//! fault-injecting MongoDB wire proxy ([`mongo_proxy`]), the certificate styles LeoTest
//! deployments use ([`certs`]), dates the clock never overtakes ([`dates`]) and small helpers.
//!
//! Tests panic on failure by design, so this crate does too (`expect` with the reason).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report
#![forbid(unsafe_code)]

pub mod calls;
pub mod certs;
mod creds;
pub mod dates;
pub mod mongo;
pub mod mongo_proxy;
mod orchestrator;
pub mod ports;
pub mod scrape;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use calls::As;
pub use creds::{req, Creds, ADMIN_TOKEN};
pub use dates::future_year;
pub use orchestrator::{localhost_tls, orchestrator_bin, Builder, Orchestrator, StartError};

/// A port nobody listens on right now, for a server the test is about to start.
///
/// Chosen below the kernel's ephemeral range (`ip_local_port_range`): a port the OS picks with
/// `bind(:0)` is one the OS also hands to outgoing connections, and with many tests connecting
/// at once one of them took such a port between the pick and the server's bind to `[::]`
/// (CI: "cannot listen on [::]:35221: Address already in use"). Ports come from a cursor that
/// starts at a per-process offset and never repeats within the process, and each is checked
/// free on every address. See [`ports`].
pub fn free_port() -> u16 {
    ports::free().expect("a free port below the ephemeral range")
}

/// Waits until `child` accepts TCP connections on `127.0.0.1:port`: `false` as soon as it has
/// exited instead (e.g. the port was taken between [`free_port`] and its bind), so that the
/// caller can retry on another port; panics after 30 s.
pub fn wait_listening(child: &mut std::process::Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The token a registration reply carries (`... access_token=<token>`), parsed the way the
/// original's clients parse it (everything after the marker, up to whitespace).
pub fn token_from_message(message: &str) -> String {
    try_token_from_message(message).unwrap_or_else(|| panic!("no access_token in {message:?}"))
}

/// [`token_from_message`] for callers that report a missing token as an error of their own
/// (the benchmarks) rather than a test failure.
pub fn try_token_from_message(message: &str) -> Option<String> {
    message
        .rsplit_once("access_token=")
        .map(|(_, t)| t.split_whitespace().next().unwrap_or("").to_string())
        .filter(|t| !t.is_empty())
}

/// Writes `data` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, data: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write");
    p
}
