//! The spill budget: how much job output may sit in spill files, in total and per user.
//!
//! Every byte a job's output log writes past its in-memory part is reserved here first. When a
//! reservation does not fit, the spill of finished jobs is given up (oldest first; the caller's
//! own finished jobs first when it is the user's share that is full): a running job's output
//! matters more than a replay of one that ended. When nothing is left to give up, the running
//! job's output is cut with the truncation marker. So the disk the service's spill files take is
//! bounded by the total, and one user's jobs can take at most the per-user share of it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A finished job's log as the budget sees it: something whose spill it may give up. Giving
/// it up returns the bytes through [`SpillBudget::release`]. (The output log implements it;
/// the budget needs no more of it, so it does not depend on the log's module.)
pub trait Reclaimable: Send + Sync {
    /// Drops the spilled part and releases its bytes.
    fn discard_spill(&self);
}

#[derive(Debug, Default)]
struct State {
    total: u64,
    by_user: HashMap<Arc<str>, u64>,
    /// Finished jobs' logs whose spill may be given up, oldest first.
    reclaimable: VecDeque<(Arc<str>, Weak<dyn Reclaimable>)>,
}

/// Spill bytes in use, in total and per user, with their limits.
#[derive(Debug)]
pub struct SpillBudget {
    total_max: u64,
    per_user_max: u64,
    state: Mutex<State>,
}

impl SpillBudget {
    /// A budget of `total_max` bytes, at most `per_user_max` of them for one user.
    pub fn new(total_max: u64, per_user_max: u64) -> Arc<Self> {
        Arc::new(SpillBudget {
            total_max,
            per_user_max,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `n` bytes for `owner`'s log `requester`, giving up finished jobs' spill if
    /// needed; false if it still does not fit. Never calls back into `requester`.
    pub fn reserve(&self, owner: &Arc<str>, n: u64, requester: &dyn Reclaimable) -> bool {
        loop {
            let victim = {
                let mut st = self.lock();
                let user = st.by_user.get(owner).copied().unwrap_or(0);
                let user_ok = user.saturating_add(n) <= self.per_user_max;
                let total_ok = st.total.saturating_add(n) <= self.total_max;
                if user_ok && total_ok {
                    st.total += n;
                    *st.by_user.entry(owner.clone()).or_default() += n;
                    return true;
                }
                let pick = st.reclaimable.iter().position(|(o, log)| {
                    !std::ptr::addr_eq(log.as_ptr(), requester) && (user_ok || o == owner)
                });
                match pick.and_then(|i| st.reclaimable.remove(i)) {
                    Some((_, log)) => log,
                    None => return false,
                }
            };
            // Outside our lock: giving up the spill takes the victim's lock, then `release`.
            if let Some(log) = victim.upgrade() {
                log.discard_spill();
            }
        }
    }

    /// Charges `n` bytes without a limit check (the few bytes of a truncation marker).
    pub fn force(&self, owner: &Arc<str>, n: u64) {
        let mut st = self.lock();
        st.total += n;
        *st.by_user.entry(owner.clone()).or_default() += n;
    }

    /// Returns `n` bytes of `owner`'s.
    pub fn release(&self, owner: &Arc<str>, n: u64) {
        if n == 0 {
            return;
        }
        let mut st = self.lock();
        st.total = st.total.saturating_sub(n);
        if let Some(u) = st.by_user.get_mut(owner) {
            *u = u.saturating_sub(n);
            if *u == 0 {
                st.by_user.remove(owner);
            }
        }
    }

    /// Offers a finished job's spill for reclaiming.
    pub fn offer<L: Reclaimable + 'static>(&self, owner: &Arc<str>, log: &Arc<L>) {
        let log: Weak<L> = Arc::downgrade(log);
        let log: Weak<dyn Reclaimable> = log;
        let mut st = self.lock();
        st.reclaimable.retain(|(_, l)| l.strong_count() > 0);
        st.reclaimable.push_back((owner.clone(), log));
    }

    /// Spill bytes in use in total and by `owner`.
    pub fn used(&self, owner: &str) -> (u64, u64) {
        let st = self.lock();
        (st.total, st.by_user.get(owner).copied().unwrap_or(0))
    }
}
