//! Leases in the database: mutual exclusion across every orchestrator process sharing it.
//!
//! One document per held key in collection [`LOCKS`] (`{_id: key, holder, until}`); the
//! original orchestrator never reads it. Taking a lease is one upsert filtered on "absent or
//! expired", so it relies only on the uniqueness of `_id`, which every MongoDB (standalone,
//! replica set, sharded `mongos`, and MongoDB-wire servers such as nx-27017) enforces: no
//! transactions, no unique secondary index. Releasing deletes the document if we still hold
//! it and reports whether we did, which is the fencing check: a holder that stalled past
//! `until` (and so may have been overtaken) learns it and undoes its write (see `booking`).
//! A crashed holder blocks its keys for at most [`LEASE`].
//!
//! Within a process, holders first queue on an in-memory lock per key, so only one task per
//! process polls the database for a key at a time.

use std::time::{Duration, Instant};

use bson::{doc, oid::ObjectId, Document};
use chrono::Utc;
use mongodb::Collection;

use super::codec::date;
use super::{backend, is_duplicate_key};
use crate::store::booking::{KeyGuards, KeyedLocks};
use crate::store::{StoreError, StoreResult};

/// Collection of the leases (not one of the original's).
pub const LOCKS: &str = "leotest_locks";

/// How long a lease lasts unless released: the longest a crashed holder blocks its keys.
pub const LEASE: Duration = Duration::from_secs(5);

/// How long to wait for a key before giving up (longer than a lease, so a crashed holder's
/// lease always runs out first).
const WAIT: Duration = Duration::from_secs(15);

/// First and longest pause between attempts on a key held in another process.
const PAUSE_MIN: Duration = Duration::from_millis(1);
const PAUSE_MAX: Duration = Duration::from_millis(25);

/// The leases of one database plus the in-process queue in front of them.
pub struct Leases {
    coll: Collection<Document>,
    local: KeyedLocks,
}

/// Held leases; give them back with [`Held::release`].
pub struct Held<'a> {
    leases: &'a Leases,
    keys: Vec<String>,
    token: String,
    _local: KeyGuards,
}

/// A pause that grows, with jitter so processes that collided do not collide again.
fn pause(attempt: u32) -> Duration {
    let base = PAUSE_MIN
        .saturating_mul(1u32 << attempt.min(5))
        .min(PAUSE_MAX);
    let jitter = u64::from(Utc::now().timestamp_subsec_nanos()) % 1000;
    base + Duration::from_micros(jitter)
}

impl Leases {
    pub fn new(coll: Collection<Document>) -> Leases {
        Leases {
            coll,
            local: KeyedLocks::default(),
        }
    }

    /// Takes the lease of every key (already in lock order), waiting for holders elsewhere.
    pub async fn acquire(&self, keys: &[String]) -> StoreResult<Held<'_>> {
        let local = self.local.lock(keys).await;
        let mut held = Held {
            leases: self,
            keys: Vec::with_capacity(keys.len()),
            token: ObjectId::new().to_hex(),
            _local: local,
        };
        for key in keys {
            if let Err(e) = self.take(key, &held.token).await {
                // Give back what we took; the caller sees the first error.
                let _ = held.release().await;
                return Err(e);
            }
            held.keys.push(key.clone());
        }
        Ok(held)
    }

    async fn take(&self, key: &str, token: &str) -> StoreResult<()> {
        let deadline = Instant::now() + WAIT;
        let mut attempt = 0;
        loop {
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
            let res = self
                .coll
                .update_one(
                    doc! { "_id": key, "until": { "$lt": date(now) } },
                    doc! { "$set": { "holder": token, "until": date(until) } },
                )
                .upsert(true)
                .await;
            match res {
                Ok(r) if r.matched_count == 1 || r.upserted_id.is_some() => return Ok(()),
                // Held by someone else and not expired: the upsert's insert hit `_id`.
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(backend(e)),
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "{key} is busy: another orchestrator held it for {}s",
                    WAIT.as_secs()
                )));
            }
            tokio::time::sleep(pause(attempt)).await;
            attempt += 1;
        }
    }

    /// Deletes leases that ran out more than a lease ago (left by crashed holders).
    pub async fn purge(&self) -> StoreResult<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(LEASE).unwrap_or_default();
        let res = self
            .coll
            .delete_many(doc! { "until": { "$lt": date(cutoff) } })
            .await
            .map_err(backend)?;
        Ok(res.deleted_count)
    }
}

impl Held<'_> {
    /// Gives every lease back; `Ok(true)` if all of them were still ours, i.e. nobody else
    /// held any of these keys at any moment since we took them.
    pub async fn release(self) -> StoreResult<bool> {
        let mut kept = true;
        let mut first_err = None;
        for key in &self.keys {
            match self
                .leases
                .coll
                .delete_one(doc! { "_id": key, "holder": &self.token })
                .await
            {
                Ok(r) => kept &= r.deleted_count == 1,
                Err(e) => {
                    first_err.get_or_insert(backend(e));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(kept),
        }
    }
}
