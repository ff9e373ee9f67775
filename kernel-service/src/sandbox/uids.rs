//! A uid per job (issue 23): every running job gets its own uid, and the gid of the same
//! number, from a reserved range that no host account uses, released when the job has ended.
//!
//! The kernel counts several quotas per uid across the whole host (inotify instances and
//! watches, queued signals, POSIX message-queue bytes, pipe pages, processes): with one shared
//! uid (65534) one job could exhaust them for every other job and for every host process
//! running as `nobody`. With a uid of its own, a job only exhausts its own.
//!
//! A uid is handed out round-robin (the one released longest ago comes back last), and only
//! after the job's cgroup was emptied and removed, so no process of a finished job can still
//! hold it when it is reused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The ids a job runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobIds {
    /// User id.
    pub uid: u32,
    /// Group id (the same number as `uid`).
    pub gid: u32,
}

/// A reserved range of uids (and gids of the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    /// First uid of the range.
    pub base: u32,
    /// Number of uids in the range.
    pub count: u32,
}

impl UidRange {
    fn contains(&self, id: u64) -> bool {
        id >= u64::from(self.base) && id < u64::from(self.base) + u64::from(self.count)
    }

    /// Refuses a range that is empty, includes root or the overflow id, or overlaps an id
    /// any of `/etc/passwd`, `/etc/group` (field 3) or `/etc/subuid`, `/etc/subgid`
    /// (`name:start:count`) use.
    pub fn check(&self, passwd: &str, group: &str, subids: &[&str]) -> Result<(), String> {
        let end = u64::from(self.base) + u64::from(self.count);
        if self.count == 0 || self.base == 0 || end > u64::from(u32::MAX - 1) {
            return Err(format!(
                "uid range {}+{} must be non-empty, above 0 and below 4294967294",
                self.base, self.count
            ));
        }
        for (file, text) in [("passwd", passwd), ("group", group)] {
            for line in text.lines() {
                let id = line.split(':').nth(2).and_then(|f| f.parse::<u64>().ok());
                if let Some(id) = id.filter(|id| self.contains(*id)) {
                    return Err(format!("id {id} of /etc/{file} is in the job uid range"));
                }
            }
        }
        for text in subids {
            for line in text.lines() {
                let mut f = line
                    .split(':')
                    .skip(1)
                    .map(|v| v.trim().parse::<u64>().ok());
                if let (Some(Some(start)), Some(Some(n))) = (f.next(), f.next()) {
                    if start < end && start + n > u64::from(self.base) {
                        return Err(format!(
                            "subordinate ids {start}+{n} overlap the job uid range"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct State {
    range: UidRange,
    /// Next offset to try.
    cursor: u32,
    in_use: BTreeSet<u32>,
}

/// The uids of running jobs.
#[derive(Debug)]
pub struct UidPool {
    state: Mutex<State>,
}

/// A uid held by a running job; back to the pool on drop.
#[derive(Debug)]
pub struct UidLease {
    pool: Arc<UidPool>,
    /// The ids held.
    pub ids: JobIds,
}

impl Drop for UidLease {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pool.state.lock() {
            s.in_use.remove(&self.ids.uid);
        }
    }
}

impl UidPool {
    /// An empty pool handing out uids of `range`.
    pub fn new(range: UidRange) -> Arc<Self> {
        Arc::new(UidPool {
            state: Mutex::new(State {
                range,
                cursor: 0,
                in_use: BTreeSet::new(),
            }),
        })
    }

    /// A free uid, or `None` when every uid of the range is held.
    pub fn lease(self: &Arc<Self>) -> Option<UidLease> {
        let mut s = self.state.lock().ok()?;
        let UidRange { base, count } = s.range;
        for _ in 0..count {
            let uid = base + s.cursor;
            s.cursor = (s.cursor + 1) % count;
            if s.in_use.insert(uid) {
                return Some(UidLease {
                    pool: Arc::clone(self),
                    ids: JobIds { uid, gid: uid },
                });
            }
        }
        None
    }

    /// Uids held now.
    pub fn in_use(&self) -> usize {
        self.state.lock().map(|s| s.in_use.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_distinct_round_robin_and_released() {
        let pool = UidPool::new(UidRange {
            base: 1000,
            count: 3,
        });
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        assert_eq!((a.ids.uid, b.ids.uid, a.ids.gid), (1000, 1001, 1000));
        drop(a);
        // Round-robin: the next is 1002, then the released 1000, never the held 1001.
        let c = pool.lease().unwrap();
        let d = pool.lease().unwrap();
        assert_eq!((c.ids.uid, d.ids.uid), (1002, 1000));
        assert!(pool.lease().is_none(), "all held");
        assert_eq!(pool.in_use(), 3);
        drop((b, c, d));
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn ranges_used_by_host_accounts_are_refused() {
        let r = UidRange {
            base: 1_879_048_192,
            count: 65_536,
        };
        let passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n";
        assert!(r
            .check(passwd, "root:x:0:\n", &["alice:100000:65536\n"])
            .is_ok());
        let clash = format!("{passwd}svc:x:1879048200:1:::\n");
        assert!(r.check(&clash, "", &[]).is_err());
        assert!(r.check("", "g:x:1879113727:\n", &[]).is_err());
        assert!(r.check("", "", &["x:1879000000:100000\n"]).is_err());
        assert!(UidRange { base: 0, count: 10 }.check("", "", &[]).is_err());
        assert!(UidRange { base: 1, count: 0 }.check("", "", &[]).is_err());
        assert!(UidRange {
            base: u32::MAX - 5,
            count: 10
        }
        .check("", "", &[])
        .is_err());
    }
}
