//! One process per data directory: an exclusive `flock` on `leotest.lock`, held for the life
//! of the store.
//!
//! The embedded store keeps users and booking locks in memory, so a second process on the same
//! SQLite file would miss the first one's changes and could double-book nodes; it is refused
//! at start with the holder's pid instead. The lock goes with the process (also on a crash),
//! so no stale lock is ever left behind.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use crate::store::{StoreError, StoreResult};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "leotest.lock";

/// How long a held lock is waited for before the holder is named: a process that is exiting
/// (a restart) still holds it for a moment, and so does a child forked by the process that
/// just closed the store, until it execs (the descriptor is close-on-exec, not close-on-fork).
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// The held lock; released when dropped.
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `data_dir` or explains who holds it.
    pub(super) fn acquire(data_dir: &Path) -> StoreResult<DirLock> {
        DirLock::acquire_waiting(data_dir, LOCK_WAIT)
    }

    /// [`DirLock::acquire`], waiting up to `wait` for a holder to let go.
    fn acquire_waiting(data_dir: &Path, wait: Duration) -> StoreResult<DirLock> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        let deadline = Instant::now() + wait;
        let mut locked = flock(&file, FlockOperation::NonBlockingLockExclusive);
        while locked == Err(rustix::io::Errno::WOULDBLOCK) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            locked = flock(&file, FlockOperation::NonBlockingLockExclusive);
        }
        match locked {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {})", holder.chars().take(20).collect::<String>())
                };
                return Err(StoreError::Unavailable(format!(
                    "data directory {} is in use by another leotest-orchestrator process{who}: \
                     the embedded store serves one process only; to run several \
                     orchestrators use the MongoDB store (README, \"Running more than one \
                     orchestrator\")",
                    data_dir.display()
                )));
            }
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
        // Who holds it, for the message above; best effort.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path()).expect("first");
        let err = DirLock::acquire_waiting(dir.path(), Duration::ZERO)
            .err()
            .expect("second refused");
        let msg = err.to_string();
        assert!(msg.contains("in use by another"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        DirLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn a_holder_letting_go_within_the_wait_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path()).expect("first");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        DirLock::acquire_waiting(dir.path(), Duration::from_secs(5)).expect("taken once free");
        release.join().expect("join");
    }
}
