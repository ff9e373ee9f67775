//! Child processes under test (the kernel service, the emulated link, the original's Python
//! processes; the orchestrator runs under test-support's harness, see `crate::orch`): locating
//! the binaries, free ports, RSS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A child process that is killed and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    /// File name of the binary, for messages.
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `bin` with `args`; its stderr goes to `log` so a failed start can be explained.
    pub fn spawn(bin: &Path, args: &[String], log: &Path) -> Result<Self> {
        let err =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Proc {
            name: bin
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }

    /// Sends `sig` to the process (e.g. SIGUSR1 to cut an emulated link).
    pub fn signal(&self, sig: rustix::process::Signal) -> Result<()> {
        // Our own child, not reaped while we hold it, so the pid is still its.
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), sig)
            .with_context(|| format!("signal {}", self.name))
    }

    /// Memory of the process now.
    pub fn memory(&self) -> Result<Memory> {
        Memory::of(self.pid())
    }
}

/// How long a stopped process gets to clean up (the kernel service removes its job cgroups).
const STOP_GRACE: Duration = Duration::from_secs(3);

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first, so the process can clean up; SIGKILL whatever is left after the grace.
        // Our own child, not reaped yet (we still own it), so the pid is still its.
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident set size now and its high-water mark, from /proc/PID/status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`), KiB.
    pub hwm_kib: u64,
}

impl Memory {
    /// Reads the figures of process `pid`.
    pub fn of(pid: u32) -> Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("read /proc/{pid}/status"))?;
        Ok(Self::parse(&text))
    }

    fn parse(status: &str) -> Self {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// Both figures in MiB, for a report line.
    pub fn describe(&self) -> String {
        format!(
            "VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            self.rss_kib as f64 / 1024.0,
            self.hwm_kib as f64 / 1024.0
        )
    }
}

/// A port nobody listens on right now, below the ephemeral range (test-support's walk: a
/// port the OS picks with `bind(:0)` may go to an outgoing connection before the server binds).
pub fn free_port() -> Result<u16> {
    leotest_test_support::ports::free().context("no free port below the ephemeral range")
}

/// Path of a workspace binary in `bin_dir`, with a hint when it was not built.
pub fn binary(bin_dir: &Path, name: &str) -> Result<PathBuf> {
    let p = bin_dir.join(name);
    if !p.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p {name})",
            p.display()
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let m = Memory::parse("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n");
        assert_eq!(m.rss_kib, 1024);
        assert_eq!(m.hwm_kib, 2048);
        assert_eq!(Memory::parse("junk").rss_kib, 0);
    }
}
