//! Per-job output log: one stdout+stderr stream, memory-capped with file spill, many watchers.
//!
//! Spill bytes are reserved in the manager's [`SpillBudget`] first; a log that cannot reserve
//! is cut with [`TRUNCATED_MARKER`], and a finished job's spill may be given up later for a
//! running job's ([`Reclaimable::discard_spill`]), leaving its in-memory head and
//! [`DISCARDED_MARKER`].
//!
//! The writer appends and publishes the new length on a `watch` channel; each watcher keeps its
//! own cursor and reads at its own pace, so the writer never waits for anyone and a stalled
//! watcher costs nothing but its cursor. Watchers wake on publication (no polling) and replay
//! everything from byte 0, then follow live output until the log is closed.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::budget::{Reclaimable, SpillBudget};

/// A job's output as an owned, `Unpin` stream of chunks.
pub type OutputStream = Pin<Box<dyn Stream<Item = Bytes> + Send + 'static>>;

/// Largest chunk handed to a watcher at once.
const CHUNK: usize = 64 * 1024;
/// Appended once when a job produced more than the configured maximum.
pub const TRUNCATED_MARKER: &[u8] = b"\n[leotest: output truncated]\n";
/// Ends a finished job's output whose spilled part was given up for running jobs' output.
pub const DISCARDED_MARKER: &[u8] = b"\n[leotest: rest of the output discarded]\n";

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    len: u64,
    closed: bool,
}

#[derive(Debug)]
struct Inner {
    mem: Vec<u8>,
    spill: Option<Arc<File>>,
    /// Bytes reserved in the budget for the spill file.
    spilled: u64,
    len: u64,
    truncated: bool,
}

/// The output of one job, readable from the start by any number of watchers.
#[derive(Debug)]
pub struct OutputLog {
    inner: Mutex<Inner>,
    progress: watch::Sender<Progress>,
    mem_cap: usize,
    max: u64,
    spill_dir: PathBuf,
    budget: Arc<SpillBudget>,
    owner: Arc<str>,
}

/// Where and how much a log may keep.
#[derive(Debug, Clone)]
pub struct LogLimits {
    /// Bytes kept in memory before spilling.
    pub mem_cap: usize,
    /// Bytes kept in total; the rest is cut with the marker.
    pub max: u64,
    /// Directory of the (unlinked) spill files.
    pub spill_dir: PathBuf,
    /// Shared spill budget.
    pub budget: Arc<SpillBudget>,
}

impl OutputLog {
    /// An empty log of `owner`'s job within `limits`.
    pub fn new(limits: &LogLimits, owner: &str) -> Arc<Self> {
        Arc::new(OutputLog {
            inner: Mutex::new(Inner {
                mem: Vec::new(),
                spill: None,
                spilled: 0,
                len: 0,
                truncated: false,
            }),
            progress: watch::Sender::new(Progress::default()),
            mem_cap: limits.mem_cap,
            max: limits.max,
            spill_dir: limits.spill_dir.clone(),
            budget: limits.budget.clone(),
            owner: Arc::from(owner),
        })
    }

    /// An unbudgeted log for unit tests: `mem_cap` in memory, `max` in total.
    #[cfg(test)]
    pub fn unbounded(mem_cap: usize, max: u64, spill_dir: PathBuf) -> Arc<Self> {
        let limits = LogLimits {
            mem_cap,
            max,
            spill_dir,
            budget: SpillBudget::new(u64::MAX, u64::MAX),
        };
        Self::new(&limits, "test")
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (len is updated last).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether no more output will be kept (the cap or the spill budget was reached).
    pub fn is_full(&self) -> bool {
        self.lock().truncated
    }

    /// Appends job output (may write to the spill file: call from a blocking context).
    pub fn append(&self, data: &[u8]) {
        let mut g = self.lock();
        if g.truncated || self.progress.borrow().closed || data.is_empty() {
            return;
        }
        let room = self.max.saturating_sub(g.len);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
        let mut res = self.write_raw(&mut g, &data[..take], false);
        if res.is_ok() && take < data.len() {
            res = self.write_raw(&mut g, TRUNCATED_MARKER, true);
            g.truncated = true;
        }
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::StorageFull => {
                tracing::info!("spill budget exhausted; job output truncated");
                let _ = self.write_raw(&mut g, TRUNCATED_MARKER, true);
                g.truncated = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "job output spill failed; further output dropped");
                g.truncated = true;
            }
        }
        let len = g.len;
        drop(g);
        self.progress.send_modify(|p| p.len = len);
    }

    /// Stores `data` (a marker when `forced`: charged to the budget without a check).
    fn write_raw(&self, g: &mut Inner, data: &[u8], forced: bool) -> io::Result<()> {
        let in_mem = self.mem_cap.saturating_sub(g.mem.len()).min(data.len());
        let rest = &data[in_mem..];
        if !rest.is_empty() {
            let n = rest.len() as u64;
            if forced {
                self.budget.force(&self.owner, n);
            } else if !self.budget.reserve(&self.owner, n, self) {
                // Keep what fits in memory; the caller cuts the rest.
                g.mem.extend_from_slice(&data[..in_mem]);
                g.len += in_mem as u64;
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            g.spilled += n;
        }
        g.mem.extend_from_slice(&data[..in_mem]);
        if !rest.is_empty() {
            let file = match &g.spill {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(tempfile::tempfile_in(&self.spill_dir)?);
                    g.spill = Some(f.clone());
                    f
                }
            };
            let file_off = g.len + in_mem as u64 - self.mem_cap as u64;
            file.write_all_at(rest, file_off)?;
        }
        g.len += data.len() as u64;
        Ok(())
    }

    /// Marks the end of output; watchers finish once they have read everything.
    pub fn close(&self) {
        self.lock().mem.shrink_to_fit();
        self.progress.send_modify(|p| p.closed = true);
    }

    /// Offers a finished job's spill to the budget for reclaiming (no-op without spill).
    pub fn offer_spill(self: &Arc<Self>) {
        if self.lock().spill.is_some() {
            self.budget.offer(&self.owner, self);
        }
    }

    /// Bytes stored so far.
    pub fn len(&self) -> u64 {
        self.lock().len
    }

    /// True if nothing has been stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the job's output stream has ended.
    pub fn is_closed(&self) -> bool {
        self.progress.borrow().closed
    }

    async fn read_chunk(&self, off: u64) -> io::Result<Bytes> {
        // After `discard_spill` the head may be longer than `mem_cap` (the marker) and there is
        // no file: everything below `len` is in memory then.
        let file = {
            let g = self.lock();
            if off >= g.len {
                return Ok(Bytes::new());
            }
            let end = g.len;
            if (off as usize) < g.mem.len() {
                let start = off as usize;
                let stop = g.mem.len().min(start + CHUNK);
                return Ok(Bytes::copy_from_slice(&g.mem[start..stop]));
            }
            let f = g
                .spill
                .clone()
                .ok_or_else(|| io::Error::other("spill file gone"))?;
            (
                f,
                off - self.mem_cap as u64,
                (end - off).min(CHUNK as u64) as usize,
            )
        };
        let (f, file_off, n) = file;
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, file_off)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(io::Error::other)?
    }

    /// All output from the first byte, then live output until the log is closed.
    pub fn watch(self: &Arc<Self>) -> OutputStream {
        let rx = self.progress.subscribe();
        Box::pin(futures::stream::unfold(
            (self.clone(), rx, 0u64),
            |(log, mut rx, off)| async move {
                loop {
                    let p = *rx.borrow_and_update();
                    if off < p.len {
                        return match log.read_chunk(off).await {
                            Ok(b) if !b.is_empty() => {
                                let next = off + b.len() as u64;
                                Some((b, (log, rx, next)))
                            }
                            _ => None,
                        };
                    }
                    if p.closed || rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        ))
    }
}

impl Reclaimable for OutputLog {
    /// Gives up the spilled part of a finished log: replays end after the in-memory head with
    /// [`DISCARDED_MARKER`], and its budget share is returned.
    fn discard_spill(&self) {
        let (freed, len) = {
            let mut g = self.lock();
            if g.spill.take().is_none() {
                return;
            }
            let freed = std::mem::take(&mut g.spilled);
            g.mem.extend_from_slice(DISCARDED_MARKER);
            g.len = g.mem.len() as u64;
            // Whatever the pump might still deliver is dropped.
            g.truncated = true;
            (freed, g.len)
        };
        self.budget.release(&self.owner, freed);
        self.progress.send_modify(|p| p.len = len);
    }
}

impl Drop for OutputLog {
    fn drop(&mut self) {
        let spilled = self.lock().spilled;
        self.budget.release(&self.owner, spilled);
    }
}

/// Bytes a watcher may send after its command line before it is dropped as misbehaving.
const MAX_WATCHER_INPUT: usize = 4096;

/// Sends a watch stream to a client over `conn`; a client that stalls a write for longer than
/// `stall` is dropped (`TimedOut`) — it never holds back the job or other watchers, only
/// itself. While waiting for output the connection is also read: EOF, an error or more than a
/// few bytes of input mean the client is gone (`ConnectionAborted`), and the watch ends at
/// once rather than with the job (so does its slot, which the stream holds).
pub async fn forward<S>(mut stream: OutputStream, conn: &mut S, stall: Duration) -> io::Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let gone = || io::Error::new(io::ErrorKind::ConnectionAborted, "watcher went away");
    let mut sent = 0u64;
    let mut input = 0usize;
    let mut scratch = [0u8; 256];
    loop {
        let next = tokio::select! {
            biased;
            chunk = stream.next() => chunk,
            // Both branches are cancel-safe: the stream keeps its pending read, a socket read
            // that lost the race consumed nothing.
            r = conn.read(&mut scratch) => match r {
                Ok(0) | Err(_) => return Err(gone()),
                Ok(n) => {
                    input += n;
                    if input > MAX_WATCHER_INPUT {
                        return Err(gone());
                    }
                    continue;
                }
            },
        };
        let Some(chunk) = next else { break };
        match tokio::time::timeout(stall, conn.write_all(&chunk)).await {
            Ok(res) => res?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "watcher too slow")),
        }
        sent += chunk.len() as u64;
    }
    match tokio::time::timeout(stall, conn.flush()).await {
        Ok(res) => res.map(|()| sent),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "watcher too slow")),
    }
}

/// Copies a pipe into `log` until EOF, then closes the log (blocking; run on a blocking thread).
///
/// Once the log is full (its cap, or the spill budget) nothing more is read: the daemon spends
/// no more CPU on the job's output (issue 23). The pipe is returned still open, so the job is
/// stopped by its supervisor with a clear reason, not by a broken pipe. `read_so_far` is told
/// the running total after every chunk.
pub fn pump(mut src: File, log: &OutputLog, mut read_so_far: impl FnMut(u64)) -> Option<File> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                log.append(&buf[..n]);
                total = total.saturating_add(n as u64);
                read_so_far(total);
                if log.is_full() {
                    log.close();
                    return Some(src);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading job output failed");
                break;
            }
        }
    }
    log.close();
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(log: &Arc<OutputLog>) -> Vec<u8> {
        log.watch()
            .fold(Vec::new(), |mut acc, b| async move {
                acc.extend_from_slice(&b);
                acc
            })
            .await
    }

    #[tokio::test]
    async fn spill_past_memory_cap_replays_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let log = OutputLog::unbounded(10, 1 << 20, dir.path().into());
        let mut expected = Vec::new();
        for i in 0..500u32 {
            let line = format!("line {i}\n");
            log.append(line.as_bytes());
            expected.extend_from_slice(line.as_bytes());
        }
        log.close();
        assert_eq!(collect(&log).await, expected);
        assert_eq!(collect(&log).await, expected);
    }

    #[tokio::test]
    async fn watchers_follow_live_output_and_a_stalled_one_blocks_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let log = OutputLog::unbounded(4, 1 << 20, dir.path().into());
        let stalled = log.watch(); // never polled until the end
        let live = tokio::spawn({
            let log = log.clone();
            async move { collect(&log).await }
        });
        for i in 0..100u32 {
            let l = log.clone();
            tokio::task::spawn_blocking(move || l.append(format!("{i},").as_bytes()))
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        log.close();
        let expected: String = (0..100u32).map(|i| format!("{i},")).collect();
        assert_eq!(live.await.unwrap(), expected.as_bytes());
        let late: Vec<u8> = stalled.map(|b| b.to_vec()).concat().await;
        assert_eq!(late, expected.as_bytes());
    }

    #[tokio::test]
    async fn output_beyond_max_is_truncated_with_marker() {
        let dir = tempfile::tempdir().unwrap();
        let log = OutputLog::unbounded(4, 8, dir.path().into());
        log.append(b"0123456789");
        log.append(b"more");
        log.close();
        let mut expected = b"01234567".to_vec();
        expected.extend_from_slice(TRUNCATED_MARKER);
        assert_eq!(collect(&log).await, expected);
    }

    #[tokio::test]
    async fn a_stalled_client_is_dropped_and_a_reading_one_gets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let log = OutputLog::unbounded(1 << 20, 1 << 20, dir.path().into());
        let data = vec![b'x'; 256 * 1024];
        log.append(&data);
        log.close();
        // Nobody reads the other end of this small pipe: the forward must give up.
        let (mut stalled, _peer) = tokio::io::duplex(1024);
        let err = forward(log.watch(), &mut stalled, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let (mut conn, mut client) = tokio::io::duplex(1 << 20);
        let n = forward(log.watch(), &mut conn, Duration::from_secs(5))
            .await
            .unwrap();
        drop(conn);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
            .await
            .unwrap();
        assert_eq!((n, got), (data.len() as u64, data));
    }

    #[tokio::test]
    async fn a_watcher_whose_client_left_ends_while_the_job_runs() {
        let dir = tempfile::tempdir().unwrap();
        let log = OutputLog::unbounded(1024, 1 << 20, dir.path().into());
        log.append(b"early output\n");
        // The log stays open (the job runs on): only the client's departure can end this.
        let (mut conn, client) = tokio::io::duplex(1024);
        let watch = tokio::spawn({
            let log = log.clone();
            async move { forward(log.watch(), &mut conn, Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        drop(client);
        let res = tokio::time::timeout(Duration::from_secs(60), watch)
            .await
            .expect("the watch outlived its client")
            .unwrap();
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
        assert!(!log.is_closed());
    }
}
