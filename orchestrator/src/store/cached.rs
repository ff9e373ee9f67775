//! A [`Store`] wrapper that answers `get_user` from memory for a short, bounded time.
//!
//! Every authenticated request looks its user up, and on MongoDB that is a round trip per
//! request. [`CachedUsers`] keeps each answer (including "no such user") for at most
//! [`USER_TTL`], measured from when its lookup *started*, so a change made anywhere (another
//! replica, the original orchestrator, a hand edit of the database) is seen by every replica
//! within that time: a deleted user, or a changed token or role, stops working within
//! `USER_TTL` (< 1 s). Changes made through this wrapper are seen at once here. Concurrent
//! misses of one id share one lookup. Everything else is passed straight through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt, Shared};

use super::methods::{for_each_store_method, impl_store_passing_others};
use super::model::*;
use super::{Booked, Decide, Store, StoreError, StoreResult};

/// Longest time a user answer is served from memory.
pub const USER_TTL: Duration = Duration::from_millis(500);

/// Most ids kept; past it the expired ones go, then all of them (unknown ids must not grow
/// the cache without bound).
const MAX_ENTRIES: usize = 10_000;

type Lookup = Shared<BoxFuture<'static, Result<Option<User>, StoreError>>>;

struct Entry {
    started: Instant,
    user: Option<User>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    inflight: HashMap<String, Lookup>,
    /// Bumped by every user write through this wrapper: a lookup that started before one
    /// may have read the old record, so its answer is not kept.
    generation: u64,
}

struct Core {
    inner: Arc<dyn Store>,
    ttl: Duration,
    state: Mutex<State>,
}

/// The caching wrapper; see the module documentation.
pub struct CachedUsers {
    shared: Arc<Core>,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("user cache lock poisoned".to_string())
}

impl CachedUsers {
    /// Wraps `inner`, keeping user answers for `ttl`.
    pub fn new(inner: Arc<dyn Store>, ttl: Duration) -> CachedUsers {
        CachedUsers {
            shared: Arc::new(Core {
                inner,
                ttl,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// `inner` behind a cache with [`USER_TTL`], as a shareable store.
    pub fn shared(inner: impl Store + 'static) -> Arc<dyn Store> {
        Arc::new(CachedUsers::new(Arc::new(inner), USER_TTL))
    }

    /// The wrapped store, for the methods passed straight through.
    fn inner(&self) -> &dyn Store {
        &*self.shared.inner
    }

    fn invalidate(&self, id: &str) -> StoreResult<()> {
        let mut st = self.shared.state.lock().map_err(poisoned)?;
        st.generation += 1;
        st.entries.remove(id);
        st.inflight.remove(id);
        Ok(())
    }

    fn lookup(&self, id: &str) -> StoreResult<Result<Option<User>, Lookup>> {
        let mut st = self.shared.state.lock().map_err(poisoned)?;
        if let Some(e) = st.entries.get(id) {
            if e.started.elapsed() < self.shared.ttl {
                return Ok(Ok(e.user.clone()));
            }
        }
        if let Some(f) = st.inflight.get(id) {
            return Ok(Err(f.clone()));
        }
        let shared = self.shared.clone();
        let key = id.to_string();
        let generation = st.generation;
        let fut = async move {
            let started = Instant::now();
            let res = shared.inner.get_user(&key).await;
            if let Ok(mut st) = shared.state.lock() {
                st.inflight.remove(&key);
                if let (Ok(user), true) = (&res, st.generation == generation) {
                    if st.entries.len() >= MAX_ENTRIES {
                        let ttl = shared.ttl;
                        st.entries.retain(|_, e| e.started.elapsed() < ttl);
                        if st.entries.len() >= MAX_ENTRIES {
                            st.entries.clear();
                        }
                    }
                    let user = user.clone();
                    st.entries.insert(key, Entry { started, user });
                }
            }
            res
        }
        .boxed()
        .shared();
        st.inflight.insert(id.to_string(), fut.clone());
        Ok(Err(fut))
    }
}

for_each_store_method!(impl_store_passing_others!(CachedUsers, {
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        match self.lookup(id)? {
            Ok(hit) => Ok(hit),
            Err(pending) => pending.await,
        }
    }

    async fn add_user(&self, user: &User) -> StoreResult<bool> {
        let r = self.shared.inner.add_user(user).await;
        self.invalidate(&user.id)?;
        r
    }

    async fn put_user(&self, user: &User) -> StoreResult<()> {
        let r = self.shared.inner.put_user(user).await;
        self.invalidate(&user.id)?;
        r
    }

    async fn modify_user(&self, id: &str, name: &str, role: Role, team: &str) -> StoreResult<bool> {
        let r = self.shared.inner.modify_user(id, name, role, team).await;
        self.invalidate(id)?;
        r
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let r = self.shared.inner.delete_user(id).await;
        self.invalidate(id)?;
        r
    }

    async fn claim_node_user(&self, user: &User) -> StoreResult<bool> {
        let r = self.shared.inner.claim_node_user(user).await;
        self.invalidate(&user.id)?;
        r
    }

    async fn delete_node_user(&self, id: &str) -> StoreResult<bool> {
        let r = self.shared.inner.delete_node_user(id).await;
        self.invalidate(id)?;
        r
    }
}));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn user(id: &str, role: Role) -> User {
        User {
            id: id.into(),
            name: "n".into(),
            role,
            team: "t".into(),
            static_access_token: "tok".into(),
            access_token: String::new(),
        }
    }

    #[tokio::test]
    async fn answers_expire_and_local_writes_are_seen_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backing: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        let ttl = Duration::from_millis(500);
        let cache = CachedUsers::new(backing.clone(), ttl);
        let cached_at = Instant::now();
        assert_eq!(cache.get_user("a").await.expect("miss"), None);
        // Written behind the cache's back (another replica): the cached "absent" stands
        // until it expires, then the new record is seen. (On a machine so loaded that the
        // write took longer than the ttl, the first half has nothing to show.)
        backing.add_user(&user("a", Role::User)).await.expect("add");
        let stands = cache.get_user("a").await.expect("cached");
        if cached_at.elapsed() < ttl {
            assert_eq!(stands, None);
        }
        tokio::time::sleep(ttl + Duration::from_millis(20)).await;
        assert_eq!(
            cache.get_user("a").await.expect("fresh").map(|u| u.role),
            Some(Role::User)
        );
        // Through the cache: seen at once.
        cache
            .modify_user("a", "n", Role::Admin, "t")
            .await
            .expect("modify");
        assert_eq!(
            cache.get_user("a").await.expect("get").map(|u| u.role),
            Some(Role::Admin)
        );
        assert!(cache.delete_user("a").await.expect("delete"));
        assert_eq!(cache.get_user("a").await.expect("gone"), None);
    }

    #[tokio::test]
    async fn unknown_ids_do_not_grow_it_without_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backing: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        let cache = CachedUsers::new(backing, Duration::from_secs(60));
        for i in 0..(MAX_ENTRIES + 10) {
            cache.get_user(&format!("u{i}")).await.expect("get");
        }
        let n = cache.shared.state.lock().expect("lock").entries.len();
        assert!(n <= MAX_ENTRIES, "{n}");
    }
}
