//! A task's private scratch directory under `$TMPDIR` (mode 0700, as `mktemp -d` made it,
//! removed on drop like the scripts' `rm -rf "$tmp"` in a trap), and the wall clock in the
//! milliseconds the load generators and probes write (`date +%s%3N`).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Unix time in milliseconds (`date +%s%3N`).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A private directory, removed with what it holds when dropped.
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// `$TMPDIR/PREFIX.PID-MILLIS-N`, which must not exist yet.
    pub(crate) fn new(prefix: &str) -> Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("{prefix}.{}-{}-{n}", std::process::id(), now_ms()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `NAME` inside it.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort, as `rm -rf` in a trap was.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let s = Scratch::new("leotest-xtask-test").unwrap();
        let dir = s.path().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::write(s.file("f"), "x").unwrap();
        let other = Scratch::new("leotest-xtask-test").unwrap();
        assert_ne!(other.path(), dir, "two at once in one process");
        drop(s);
        assert!(!dir.exists());
    }
}
