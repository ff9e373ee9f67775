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
//!
//! Times are the database server's, not each holder's: `until` and the "expired?" check use
//! our clock corrected by the offset to the server's `hello.localTime` (measured at the
//! midpoint of the round trip, again every [`CLOCK_CHECK`]), so orchestrator hosts whose
//! clocks disagree still agree on when a lease ends, within half a round trip. (A pipeline
//! update with `$$NOW` would do this inside the server, but MongoDB-wire servers such as
//! nx-27017 support neither pipelines nor `$$NOW`.) An offset over [`SKEW_WARN`] is logged.
//!
//! So leases read the system clock, not the store's `crate::clock`: a test clock moved ahead
//! would make every lease look expired to the other processes sharing the database.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bson::{doc, oid::ObjectId, Document};
use chrono::{DateTime, Utc};
use mongodb::{Collection, Database};

use super::codec::date;
use super::{backend, is_duplicate_key};
use crate::store::booking::{KeyGuards, KeyedLocks};
use crate::store::{StoreError, StoreResult};

/// Collection of the leases (not one of the original's).
pub const LOCKS: &str = "leotest_locks";

/// How long a lease lasts unless released: the longest a crashed holder blocks its keys.
pub(super) const LEASE: Duration = Duration::from_secs(5);

/// How long to wait for a key before giving up (longer than a lease, so a crashed holder's
/// lease always runs out first).
const WAIT: Duration = Duration::from_secs(15);

/// First and longest pause between attempts on a key held in another process.
const PAUSE_MIN: Duration = Duration::from_millis(1);
const PAUSE_MAX: Duration = Duration::from_millis(25);

/// How often the offset to the server's clock is measured again.
const CLOCK_CHECK: Duration = Duration::from_secs(60);

/// Offset between our clock and the server's above which start-up and checks warn.
const SKEW_WARN: chrono::Duration = chrono::Duration::milliseconds(500);

/// The leases of one database plus the in-process queue in front of them.
pub(super) struct Leases {
    db: Database,
    coll: Collection<Document>,
    local: KeyedLocks,
    /// Server clock minus ours, in milliseconds.
    offset_ms: AtomicI64,
    /// When the offset was last measured (`None`: never).
    checked: Mutex<Option<Instant>>,
}

/// The server's clock minus ours, from a `hello` sent at `sent` and answered at `received`
/// with the server's `local_time`: the server read its clock about halfway through.
pub(super) fn clock_offset(
    sent: DateTime<Utc>,
    received: DateTime<Utc>,
    local_time: DateTime<Utc>,
) -> chrono::Duration {
    let midpoint = sent + (received - sent) / 2;
    local_time - midpoint
}

/// Held leases; give them back with [`Held::release`].
pub(super) struct Held<'a> {
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
    pub(super) fn new(db: Database, coll: Collection<Document>) -> Leases {
        Leases {
            db,
            coll,
            local: KeyedLocks::default(),
            offset_ms: AtomicI64::new(0),
            checked: Mutex::new(None),
        }
    }

    /// The server's current time as we best know it.
    pub(super) fn server_now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Measures the offset to the server's clock if it was not measured recently. A server
    /// that does not report its time (or a failed `hello`) leaves the last offset in place.
    pub(super) async fn check_clock(&self) {
        let due = {
            let checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            checked.is_none_or(|at| at.elapsed() >= CLOCK_CHECK)
        };
        if !due {
            return;
        }
        let sent = Utc::now();
        let reply = self.db.run_command(doc! { "hello": 1 }).await;
        let received = Utc::now();
        *self.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let Ok(Ok(local_time)) = reply.map(|r| r.get_datetime("localTime").copied()) else {
            return;
        };
        let offset = clock_offset(sent, received, local_time.to_chrono());
        if offset.abs() > SKEW_WARN {
            tracing::warn!(
                offset_ms = offset.num_milliseconds(),
                "this host's clock differs from the database server's; leases use the server's"
            );
        }
        self.offset_ms
            .store(offset.num_milliseconds(), Ordering::Relaxed);
    }

    /// Takes the lease of every key (already in lock order), waiting for holders elsewhere.
    pub(super) async fn acquire(&self, keys: &[String]) -> StoreResult<Held<'_>> {
        let local = self.local.lock(keys).await;
        self.check_clock().await;
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
            let now = self.server_now();
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
    pub(super) async fn purge(&self) -> StoreResult<u64> {
        let cutoff = self.server_now() - chrono::Duration::from_std(LEASE).unwrap_or_default();
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
    pub(super) async fn release(self) -> StoreResult<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn offset_is_measured_at_the_round_trip_midpoint() {
        // Our clock 10 s behind the server's, 200 ms round trip.
        let off = clock_offset(
            at("2020-01-01T00:00:00.000Z"),
            at("2020-01-01T00:00:00.200Z"),
            at("2020-01-01T00:00:10.100Z"),
        );
        assert_eq!(off, chrono::Duration::seconds(10));
        let ahead = clock_offset(
            at("2020-01-01T00:00:10.000Z"),
            at("2020-01-01T00:00:10.000Z"),
            at("2020-01-01T00:00:07.000Z"),
        );
        assert_eq!(ahead, chrono::Duration::seconds(-3));
    }
}
