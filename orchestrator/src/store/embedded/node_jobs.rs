//! The live jobs of recently booked nodes, kept in memory for `Store::book`.
//!
//! A booking holds its node's lock while it reads the node's jobs, decides and writes, so
//! bookings of one node run one after another; re-reading and decoding every job of the node
//! from SQLite in that section made a burst of bookings on one busy node cost far more than
//! before bookings were atomic (the reads used to run in parallel). Here the list is read
//! once and then kept up to date by the bookings themselves.
//!
//! Why it never serves a stale list: the map is only changed by code holding the writer
//! connection's mutex. Every other write of the `jobs` table drops the entries it may touch
//! *before* it changes anything, and a missing entry is loaded through the writer connection
//! (so after any write in progress has committed). A booking that found an entry before such
//! a drop decides on the state before that write, as it would have with its own read. The
//! booking's own insert is appended after its commit, under the same mutex and its node lock.
//! Expired jobs are skipped when a list is handed out, as readers skip them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::store::model::Job;

/// Most nodes kept; past it every entry goes (they are rebuilt by the next bookings).
const MAX_NODES: usize = 4096;

/// See the module documentation.
#[derive(Default)]
pub(super) struct NodeJobs {
    nodes: Mutex<HashMap<String, Arc<Vec<Job>>>>,
}

impl NodeJobs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<Job>>>> {
        // A panic while holding it cannot leave a half-updated list (every change replaces
        // or drops whole entries), so a poisoned map is still usable.
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept list of `node`, without the jobs that have expired since (they are dropped
    /// from it: readers no longer see them either).
    pub(super) fn get_live(&self, node: &str, now: DateTime<Utc>) -> Option<Arc<Vec<Job>>> {
        let mut map = self.map();
        let list = map.get_mut(node)?;
        let live = |j: &Job| j.expire_at.is_none_or(|t| t > now);
        if !list.iter().all(live) {
            Arc::make_mut(list).retain(live);
        }
        Some(list.clone())
    }

    /// Keeps `jobs` as the list of `node`. Caller holds the writer mutex and read `jobs`
    /// through it.
    pub(super) fn put(&self, node: &str, jobs: Arc<Vec<Job>>) {
        let mut map = self.map();
        if map.len() >= MAX_NODES {
            map.clear();
        }
        map.insert(node.to_string(), jobs);
    }

    /// After a booking inserted `job` (caller holds the writer mutex, after the commit, and
    /// the locks of `locked`): appended to the kept lists it belongs to that the booking
    /// holds the lock of; any other list it belongs to is dropped.
    pub(super) fn inserted(&self, job: &Job, locked: &[String]) {
        let mut map = self.map();
        let server = job.server.as_ref().filter(|s| **s != job.nodeid);
        for key in std::iter::once(&job.nodeid).chain(server) {
            if !locked.contains(key) {
                map.remove(key);
            } else if let Some(list) = map.get_mut(key) {
                Arc::make_mut(list).push(job.clone());
            }
        }
    }

    /// Drops the lists of these nodes (before a write that may change their jobs).
    pub(super) fn forget(&self, nodes: &[&str]) {
        let mut map = self.map();
        for n in nodes {
            map.remove(*n);
        }
    }

    /// Drops every list (before a write whose nodes are not known up front).
    pub(super) fn forget_all(&self) {
        self.map().clear();
    }
}
