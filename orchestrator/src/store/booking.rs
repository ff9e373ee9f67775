//! Booking time on nodes atomically: the types of [`Store::book`](super::Store::book) and the
//! in-process per-node lock both backends hold while a booking decision is made.
//!
//! A booking is "read the node's jobs, decide, write". Two bookings of one node must not
//! interleave (both would see the node free and both would be accepted), while bookings of
//! different nodes should not wait for each other. So every booking holds a lock per node it
//! touches, taken in one global order (sorted node ids) so two multi-node bookings cannot
//! deadlock. The embedded store needs nothing more (one process, see the data-dir lock); the
//! MongoDB store adds a lease per node in the database for the other processes (`mongo::lease`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

use super::model::Job;

/// What a booking decision writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingWrite {
    /// Insert this job ([`Booked::IdTaken`] if a live job already has its id).
    Insert(Box<Job>),
    /// Move a live job: set its dates to `start_date` / `end_date` if they are still
    /// `was_start` / `was_end` (else [`Booked::Gone`]).
    SetDates {
        /// The job's id.
        id: String,
        /// New start date, as stored.
        start_date: String,
        /// New end date, as stored.
        end_date: String,
        /// Start date the decision was made on.
        was_start: String,
        /// End date the decision was made on.
        was_end: String,
    },
}

/// Outcome of [`Store::book`](super::Store::book).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booked {
    /// The decision refused: nothing was written.
    Refused,
    /// The decision's write was applied.
    Written,
    /// Insert: a live job already has this id; nothing was written.
    IdTaken,
    /// SetDates: the job is gone or was moved meanwhile; nothing was written.
    Gone,
}

/// The decision of a booking: sees the live jobs of each requested node (one list per node,
/// in the order the nodes were given, each as `get_jobs_by_nodeid` returns it) and returns the
/// write to apply, or `None` to refuse. It may be called more than once (a MongoDB booking
/// that lost its lease is undone and decided again): keep what it reports in captured state
/// overwritten on every call.
pub type Decide<'a> = dyn FnMut(&[&[Job]]) -> Option<BookingWrite> + Send + 'a;

/// The nodes of a booking in lock order: sorted, without duplicates or empty ids.
pub fn lock_order(nodes: &[String]) -> Vec<String> {
    let mut order: Vec<String> = nodes.iter().filter(|n| !n.is_empty()).cloned().collect();
    order.sort();
    order.dedup();
    order
}

/// One async mutex per key, created on first use and dropped when nobody holds or waits for
/// it (the map keeps only weak references, swept as it grows).
#[derive(Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Guards of [`KeyedLocks::lock`]; dropping it releases every key.
pub struct KeyGuards {
    _guards: Vec<OwnedMutexGuard<()>>,
}

/// Sweep dead entries when the map has grown past this many since the last sweep.
const SWEEP_AT: usize = 1024;

impl KeyedLocks {
    fn handle(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        // A poisoned map only means another thread panicked while inserting: the map itself
        // is still consistent, so keep using it.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = map.get(key).and_then(Weak::upgrade) {
            return m;
        }
        if map.len() >= SWEEP_AT && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let m = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_string(), Arc::downgrade(&m));
        m
    }

    /// Locks every key of `keys`, which must already be in [`lock_order`].
    pub async fn lock(&self, keys: &[String]) -> KeyGuards {
        let mut guards = Vec::with_capacity(keys.len());
        for key in keys {
            guards.push(self.handle(key).lock_owned().await);
        }
        KeyGuards { _guards: guards }
    }

    /// Keys currently tracked (held, awaited or not yet swept); for tests.
    pub fn tracked(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_order_sorts_and_dedups() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(lock_order(&v(&["b", "a", "b", ""])), v(&["a", "b"]));
    }

    #[tokio::test]
    async fn one_holder_per_key_and_entries_are_dropped() {
        let locks = Arc::new(KeyedLocks::default());
        let keys = vec!["n1".to_string()];
        let g = locks.lock(&keys).await;
        let l2 = locks.clone();
        let k2 = keys.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.lock(&k2).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // Another key is independent.
        let _other = locks.lock(&["n2".to_string()]).await;
        drop(g);
        waiter.await.expect("waiter");
        for i in 0..3000 {
            let _g = locks.lock(&[format!("k{i}")]).await;
        }
        assert!(locks.tracked() < 3000, "dead entries are swept");
    }
}
