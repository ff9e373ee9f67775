//! The unix socket listener beside TCP 9000 (issue 23): the same commands and replies, with
//! the caller identified by the kernel rather than by its network address.
//!
//! The operator mounts the socket's directory into the experiment containers. On each
//! connection the service takes the connecting process's pid (`SO_PEERCRED`) and a pidfd of
//! that very process (`SO_PEERPIDFD`), reads the process's cgroup to find its container, looks
//! the container up (the same Docker map and `userid` label as for TCP), and then checks that
//! the pidfd's process is still alive: if it is, its pid cannot have been reused by another
//! process while the cgroup was read. Nothing on the network is involved, so a neighbour with
//! CAP_NET_RAW cannot take another container's identity here; a process of another container
//! that can reach the socket file is identified as itself.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::{audit, Decision, Peer, Service, ACCESS_DENIED, DRAIN};
use crate::conncheck::OwnSocket;
use crate::sys::peercred;

impl OwnSocket for UnixStream {
    fn own_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// Binds the unix socket at `path`: a stale socket left by an earlier run is replaced (any
/// other kind of file is not touched), and the socket is made connectable by every uid (the
/// containers' processes run as any uid; who they are is decided per connection).
pub fn listen_unix(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

impl Service {
    /// Serves one unix-socket connection to completion.
    pub async fn handle_unix(&self, mut stream: UnixStream) {
        let t0 = Instant::now();
        let _active = self.metrics.connection();
        let fd = stream.as_fd();
        let who =
            peercred::peer_cred(fd).and_then(|(pid, _, _)| Ok((pid, peercred::peer_pidfd(fd)?)));
        let (pid, pidfd) = match who {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "no peer credentials on the unix socket");
                let reason = "no peer credentials";
                self.metrics.decided("denied", Some(reason), t0);
                audit(Peer::Unix(0), None, "-", "denied", reason, t0);
                let _ =
                    tokio::time::timeout(self.cfg.read_timeout, stream.write_all(ACCESS_DENIED))
                        .await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        let t_decide = Instant::now();
        let decision: Decision = self.decide_process(pid, &pidfd).await;
        drop(pidfd);
        self.serve_decision(stream, Peer::Unix(pid), decision, t0, t_decide)
            .await;
    }
}

/// Accepts on the unix socket until `shutdown` resolves, then drains (bounded), like
/// [`super::run`]; connections count against the same kind of global limit.
pub async fn run_unix(
    listener: UnixListener,
    svc: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) {
    let cap = svc.cfg.max_connections.clamp(1, 1_000_000);
    let slots = Arc::new(Semaphore::new(cap));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "unix accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let svc = Arc::clone(&svc);
        tokio::spawn(async move {
            svc.handle_unix(stream).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(cap as u32)).await;
}
