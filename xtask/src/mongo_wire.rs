//! The MongoDB-wire server (nx-27017, `scripts/start-mongo-wire.sh`) that the MongoDB backend
//! tests and the runs benchmark need: started when `LEOTEST_TEST_MONGO_URI` is unset, reused
//! when one already answers on the port, and stopped again when the task ends only if the task
//! started it (a server the caller runs is theirs).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::child_env;

/// Where the tests' server listens unless `LEOTEST_TEST_MONGO_PORT` says otherwise: not 27017,
/// which scripts/dropin-test.sh's original compose file publishes.
pub(crate) const DEFAULT_PORT: u16 = 27018;

/// The URI the tests use; stops the server on drop when this task started it.
#[derive(Debug)]
pub(crate) struct MongoWire {
    uri: String,
    /// The port of a server this task started (to stop), `None` for one it found.
    started: Option<u16>,
}

impl MongoWire {
    /// `LEOTEST_TEST_MONGO_URI` when set, else a server on `LEOTEST_TEST_MONGO_PORT` (27018),
    /// started unless one already answers there.
    pub(crate) fn from_env_or_start() -> Result<Self> {
        if let Some(uri) = std::env::var("LEOTEST_TEST_MONGO_URI")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return Ok(Self { uri, started: None });
        }
        let port = crate::settings::port_env("LEOTEST_TEST_MONGO_PORT", DEFAULT_PORT)?;
        let already = port_open(port);
        let out = child_env::command("scripts/start-mongo-wire.sh")
            .env("PORT", port.to_string())
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/start-mongo-wire.sh")?;
        if !out.status.success() {
            bail!("scripts/start-mongo-wire.sh: {}", out.status);
        }
        Ok(Self {
            uri: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            started: (!already).then_some(port),
        })
    }

    /// The connection string for `LEOTEST_TEST_MONGO_URI`.
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }
}

impl Drop for MongoWire {
    fn drop(&mut self) {
        if let Some(port) = self.started.take() {
            // Best effort: the script says what it stopped, or that nothing was running.
            let _ = child_env::command("scripts/start-mongo-wire.sh")
                .arg("stop")
                .env("PORT", port.to_string())
                .status();
        }
    }
}

/// Whether something accepts connections on 127.0.0.1:`port` (bash's `/dev/tcp` probe).
fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_listening_port_is_seen_and_a_closed_one_is_not() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(port_open(port));
        drop(l);
        assert!(!port_open(port));
    }
}
