//! Connection limits per source address and per user, under the global `--max-connections`.
//!
//! The global limit alone let one container hold every slot with idle connections, so that
//! everyone else waited in the accept backlog. Each connection now also takes a slot of its
//! source address (at accept, before anything is known about it) and, once granted, a slot of
//! its user (a user may run several containers). Both are smaller than the global limit, so
//! one container or one user can never take the whole service; a connection over either limit
//! is answered with an error line at once instead of waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts held per key; a [`Slot`] gives its unit back when dropped.
#[derive(Debug)]
struct Counter<K: Eq + Hash> {
    limit: usize,
    held: Mutex<HashMap<K, usize>>,
}

impl<K: Eq + Hash + Clone> Counter<K> {
    fn new(limit: usize) -> Self {
        Counter {
            limit: limit.max(1),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn try_take(&self, key: &K) -> bool {
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        let n = held.entry(key.clone()).or_insert(0);
        if *n >= self.limit {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, key: &K) {
        if let Ok(mut held) = self.held.lock() {
            if let Some(n) = held.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    held.remove(key);
                }
            }
        }
    }

    fn held(&self, key: &K) -> usize {
        self.held
            .lock()
            .map(|h| h.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// Per-source and per-user connection limits.
#[derive(Debug)]
pub struct ConnLimits {
    sources: Arc<Counter<IpAddr>>,
    users: Arc<Counter<String>>,
}

/// One connection's unit of a limit, returned on drop.
#[must_use]
#[derive(Debug)]
pub struct Slot(Held);

#[derive(Debug)]
enum Held {
    Source(Arc<Counter<IpAddr>>, IpAddr),
    User(Arc<Counter<String>>, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        match &self.0 {
            Held::Source(c, k) => c.give_back(k),
            Held::User(c, k) => c.give_back(k),
        }
    }
}

impl ConnLimits {
    /// At most `per_source` connections per source address and `per_user` per user.
    pub fn new(per_source: usize, per_user: usize) -> Self {
        ConnLimits {
            sources: Arc::new(Counter::new(per_source)),
            users: Arc::new(Counter::new(per_user)),
        }
    }

    /// Connections allowed per source address.
    pub fn per_source(&self) -> usize {
        self.sources.limit
    }

    /// Connections allowed per user.
    pub fn per_user(&self) -> usize {
        self.users.limit
    }

    /// A slot of the source address, or `None` when it already holds its limit.
    pub fn source(&self, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        self.sources
            .try_take(&ip)
            .then(|| Slot(Held::Source(Arc::clone(&self.sources), ip)))
    }

    /// A slot of the user, or `None` when the user already holds its limit.
    pub fn user(&self, userid: &str) -> Option<Slot> {
        let key = userid.to_string();
        self.users
            .try_take(&key)
            .then(|| Slot(Held::User(Arc::clone(&self.users), key)))
    }

    /// Connections the source holds now.
    pub fn held_by_source(&self, ip: IpAddr) -> usize {
        self.sources.held(&ip.to_canonical())
    }

    /// Connections the user holds now.
    pub fn held_by_user(&self, userid: &str) -> usize {
        self.users.held(&userid.to_string())
    }
}

/// Defaults relative to the global limit: a quarter of it per source, half of it per user.
pub fn default_limits(max_connections: usize) -> (usize, usize) {
    ((max_connections / 4).max(1), (max_connections / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_key_and_come_back_on_drop() {
        let l = ConnLimits::new(2, 3);
        let a: IpAddr = "172.30.0.2".parse().unwrap();
        let b: IpAddr = "172.30.0.3".parse().unwrap();
        let s1 = l.source(a).unwrap();
        let _s2 = l.source(a).unwrap();
        assert!(l.source(a).is_none(), "third from the same source");
        assert!(l.source(b).is_some(), "another source is unaffected");
        drop(s1);
        assert!(l.source(a).is_some());
        let users: Vec<_> = (0..3).map(|_| l.user("alice").unwrap()).collect();
        assert!(l.user("alice").is_none());
        assert!(l.user("carol").is_some());
        drop(users);
        assert_eq!(l.held_by_user("alice"), 0);
        // The IPv4-mapped form of an address is the same source.
        let mapped: IpAddr = "::ffff:172.30.0.2".parse().unwrap();
        assert_eq!(l.held_by_source(mapped), 1);
    }

    #[test]
    fn defaults_leave_room_for_others() {
        assert_eq!(default_limits(4096), (1024, 2048));
        assert_eq!(default_limits(1), (1, 1));
    }
}
