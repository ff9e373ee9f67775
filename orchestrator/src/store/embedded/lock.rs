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

use rustix::fs::{flock, FlockOperation};

use crate::store::{StoreError, StoreResult};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "leotest.lock";

/// The held lock; released when dropped.
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `data_dir` or explains who holds it.
    pub(super) fn acquire(data_dir: &Path) -> StoreResult<DirLock> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
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
        let err = DirLock::acquire(dir.path()).err().expect("second refused");
        let msg = err.to_string();
        assert!(msg.contains("in use by another"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        DirLock::acquire(dir.path()).expect("free again");
    }
}
