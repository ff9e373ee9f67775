//! Connection slots per source and in total, where a newcomer displaces the oldest *idle*
//! connection instead of waiting: shared by the orchestrator (TLS handshakes, established
//! gRPC connections) and by the metrics listener of both daemons.
//!
//! At most `max_per_source` slots belong to one source (an IPv4 address, an IPv6 /64) and at
//! most `max` in all. A connection beyond either limit takes the slot of the oldest idle
//! connection of its source, or of anyone, whose owner is told to close (its receiver
//! completes). A slot is idle while no [`Busy`] guard of it is alive; when every candidate is
//! busy the newcomer is refused instead, so work in progress is never cut. An idle flood
//! therefore only ever displaces idle connections: a well-behaved client is busy (or done)
//! long before it becomes the oldest idle one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How often, at most, a warning says that connections are being displaced.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The unit a per-source limit applies to: one IPv4 address, or one IPv6 /64 (a single
/// subscriber usually holds a whole /64).
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Whether a slot is in use, and since when it is not (milliseconds since the limiter's
/// creation, so that it fits an atomic).
#[derive(Default)]
struct Activity {
    busy: AtomicUsize,
    idle_since_ms: AtomicU64,
}

struct Entry {
    source: IpAddr,
    activity: Arc<Activity>,
    /// Dropping it tells the slot's owner to give up its connection.
    _evict: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Ordered by id, so the first entry is the oldest.
    entries: BTreeMap<u64, Entry>,
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
    displaced_since_warn: u64,
    refused_since_warn: u64,
    last_warn: Option<Instant>,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        if let Some(ids) = self.by_source.get_mut(&entry.source) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_source.remove(&entry.source);
            }
        }
        Some(entry)
    }

    fn is_idle(&self, id: u64) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| e.activity.busy.load(Ordering::Acquire) == 0)
    }

    /// The oldest idle slot of `source`, or of anyone.
    fn oldest_idle(&self, source: Option<IpAddr>) -> Option<u64> {
        match source {
            Some(s) => self
                .by_source
                .get(&s)?
                .iter()
                .copied()
                .find(|id| self.is_idle(*id)),
            None => self.entries.keys().copied().find(|id| self.is_idle(*id)),
        }
    }
}

/// Hands out connection slots within its limits.
pub struct Limiter {
    max: usize,
    max_per_source: usize,
    /// What the slots are for, in the warning ("TLS handshake", "metrics connection").
    what: &'static str,
    epoch: Instant,
    state: Mutex<State>,
}

/// A held slot; released when dropped.
pub struct Slot {
    limiter: Arc<Limiter>,
    id: u64,
    activity: Arc<Activity>,
}

/// Marks its slot busy (not displaceable, not idle) while alive.
pub struct Busy {
    limiter: Arc<Limiter>,
    activity: Arc<Activity>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.activity.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.activity
                .idle_since_ms
                .store(self.limiter.now_ms(), Ordering::Release);
        }
    }
}

impl Slot {
    /// A guard that keeps this slot busy while alive (a request in progress).
    pub fn busy(&self) -> Busy {
        self.activity.busy.fetch_add(1, Ordering::AcqRel);
        Busy {
            limiter: Arc::clone(&self.limiter),
            activity: Arc::clone(&self.activity),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limiter.lock().remove(self.id);
    }
}

impl Limiter {
    /// A limiter of `max` slots in all and `max_per_source` per source (each at least 1).
    pub fn new(max: usize, max_per_source: usize, what: &'static str) -> Arc<Limiter> {
        Arc::new(Limiter {
            max: max.max(1),
            max_per_source: max_per_source.max(1),
            what,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements: a panic elsewhere cannot break it.
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot for a connection from `peer`, displacing the oldest idle slot of the same
    /// source (or of anyone) when a limit is reached; `None` when every candidate is busy.
    /// The receiver completes when this slot is itself displaced.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<(Slot, oneshot::Receiver<()>)> {
        let source = source_of(peer);
        let mut state = self.lock();
        let mut displaced = 0;
        let mut refused = false;
        let source_full = state
            .by_source
            .get(&source)
            .is_some_and(|ids| ids.len() >= self.max_per_source);
        if source_full {
            match state.oldest_idle(Some(source)) {
                Some(id) => {
                    state.remove(id);
                    displaced += 1;
                }
                None => refused = true,
            }
        }
        while !refused && state.entries.len() >= self.max {
            match state.oldest_idle(None) {
                Some(id) => {
                    state.remove(id);
                    displaced += 1;
                }
                None => refused = true,
            }
        }
        if displaced > 0 || refused {
            state.displaced_since_warn += displaced;
            state.refused_since_warn += u64::from(refused);
            let due = state
                .last_warn
                .is_none_or(|at| at.elapsed() >= WARN_INTERVAL);
            if due {
                tracing::warn!(
                    displaced = state.displaced_since_warn,
                    refused = state.refused_since_warn,
                    held = state.entries.len(),
                    source = %source,
                    "{} limit reached: closing the oldest idle connections",
                    self.what
                );
                state.displaced_since_warn = 0;
                state.refused_since_warn = 0;
                state.last_warn = Some(Instant::now());
            }
        }
        if refused {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let activity = Arc::new(Activity {
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
        });
        let id = state.next_id;
        state.next_id += 1;
        state.entries.insert(
            id,
            Entry {
                source,
                activity: Arc::clone(&activity),
                _evict: tx,
            },
        );
        state.by_source.entry(source).or_default().insert(id);
        drop(state);
        Some((
            Slot {
                limiter: self.clone(),
                id,
                activity,
            },
            rx,
        ))
    }

    /// Displaces every slot that has been idle for `idle` or longer; returns how many.
    pub fn close_idle(&self, idle: Duration) -> usize {
        let now = self.now_ms();
        let limit = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let mut state = self.lock();
        let stale: Vec<u64> = state
            .entries
            .iter()
            .filter(|(_, e)| {
                e.activity.busy.load(Ordering::Acquire) == 0
                    && now.saturating_sub(e.activity.idle_since_ms.load(Ordering::Acquire)) >= limit
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            state.remove(*id);
        }
        stale.len()
    }

    /// Slots held (for tests and diagnostics).
    pub fn held(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oneshot::error::TryRecvError::{Closed, Empty};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn admit(l: &Arc<Limiter>, peer: &str) -> (Slot, oneshot::Receiver<()>) {
        l.admit(ip(peer)).expect("admitted")
    }

    #[test]
    fn sources() {
        assert_eq!(source_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(source_of(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn a_source_over_its_limit_displaces_its_own_oldest() {
        let l = Limiter::new(100, 2, "test");
        let (_a1, mut ra1) = admit(&l, "10.0.0.1");
        let (_a2, mut ra2) = admit(&l, "10.0.0.1");
        let (_b1, mut rb1) = admit(&l, "10.0.0.2");
        let (_a3, mut ra3) = admit(&l, "10.0.0.1");
        assert_eq!(ra1.try_recv(), Err(Closed));
        assert_eq!(ra2.try_recv(), Err(Empty));
        assert_eq!(ra3.try_recv(), Err(Empty));
        assert_eq!(rb1.try_recv(), Err(Empty));
        assert_eq!(l.held(), 3);
    }

    #[test]
    fn over_the_global_limit_the_oldest_of_anyone_goes() {
        let l = Limiter::new(2, 10, "test");
        let (_a, mut ra) = admit(&l, "10.0.0.1");
        let (_b, mut rb) = admit(&l, "10.0.0.2");
        let (_c, mut rc) = admit(&l, "10.0.0.3");
        assert_eq!(ra.try_recv(), Err(Closed));
        assert_eq!(rb.try_recv(), Err(Empty));
        assert_eq!(rc.try_recv(), Err(Empty));
        assert_eq!(l.held(), 2);
    }

    #[test]
    fn busy_slots_are_never_displaced() {
        let l = Limiter::new(2, 2, "test");
        let (a1, mut ra1) = admit(&l, "10.0.0.1");
        let (_a2, mut ra2) = admit(&l, "10.0.0.1");
        let busy = a1.busy();
        // The source is full: its oldest idle slot (a2) goes, the busy a1 stays.
        let (a3, _ra3) = admit(&l, "10.0.0.1");
        assert_eq!(ra1.try_recv(), Err(Empty));
        assert_eq!(ra2.try_recv(), Err(Closed));
        // Everything busy: the newcomer is refused.
        let _busy3 = a3.busy();
        assert!(l.admit(ip("10.0.0.1")).is_none());
        assert!(l.admit(ip("10.0.0.9")).is_none());
        drop(busy);
        assert!(l.admit(ip("10.0.0.9")).is_some());
        assert_eq!(ra1.try_recv(), Err(Closed));
    }

    #[test]
    fn idle_slots_time_out_busy_ones_do_not() {
        let l = Limiter::new(10, 10, "test");
        let (a, mut ra) = admit(&l, "10.0.0.1");
        let (_b, mut rb) = admit(&l, "10.0.0.2");
        let _busy = a.busy();
        assert_eq!(l.close_idle(Duration::ZERO), 1);
        assert_eq!(ra.try_recv(), Err(Empty));
        assert_eq!(rb.try_recv(), Err(Closed));
        assert_eq!(l.close_idle(Duration::from_secs(3600)), 0);
    }

    #[test]
    fn released_slots_free_their_place() {
        let l = Limiter::new(1, 1, "test");
        let (a, _ra) = admit(&l, "10.0.0.1");
        drop(a);
        assert_eq!(l.held(), 0);
        let (_b, mut rb) = admit(&l, "10.0.0.1");
        assert_eq!(rb.try_recv(), Err(Empty));
        // A displaced slot's own release later is harmless.
        let (_c, _rc) = admit(&l, "10.0.0.2");
        assert_eq!(rb.try_recv(), Err(Closed));
        assert_eq!(l.held(), 1);
    }
}
