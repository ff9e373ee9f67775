//! `Store::book` on MongoDB: lease the nodes, read, decide, write, release with a fencing check.
//!
//! Why this is enough, on every deployment (standalone, replica set, nx-27017), without
//! transactions: every booking of a node holds that node's lease from before it reads the
//! node's jobs until after its write is acknowledged. If booking A released a lease it still
//! held, nobody took that lease in between, so a later booking B of the node took it after
//! A's release, hence after A's write was acknowledged, and B's read (on the primary, issued
//! after B's own acknowledged lease write) sees A's job. Writes are `w: majority` with the
//! journal (see `MongoStore::connect`), so an acknowledged job survives a failover and the new
//! primary serves it to B. A holder that stalls past its lease may have been overtaken: its
//! release then finds the lease gone, it undoes its own write (by `_id`, or moving the job
//! back only if it still has our dates) and decides again.
//!
//! The undo must not be lost, or the overtaken write stays beside the booking that overtook
//! it (an overlap). Both undos are idempotent (a delete by `_id`; a conditional move back),
//! so an undo that meets a transient error is sent again (`retry::idempotent`); one that
//! still fails (the database unreachable for longer than the retry budget) is kept in this
//! process's pending list and applied again until it succeeds: before every later booking
//! (under its leases, before it reads) and, for deletes, by every purge (a move back is
//! applied only under the leases of all its nodes). Until then the stale write only makes
//! decisions more conservative (a node looks busier than it is). What this cannot cover:
//! the process exiting with an undo still pending (logged at ERROR with the job's `_id` or
//! id, for an operator to remove); and a move taken back late can meet a booking made in
//! the job's old dates after the overtaken move and before the undo (the move back is
//! conditional on the job still having our dates, not on its old dates being free).

use std::future::IntoFuture;

use bson::{doc, Bson};

use super::codec::{self, date};
use super::{backend, live_job, retry, MongoStore};
use crate::store::booking::lock_order;
use crate::store::{Booked, BookingWrite, Decide, StoreError, StoreResult};

/// Decisions per booking before giving up (each retry follows a lost lease).
const ATTEMPTS: usize = 3;

/// An undo that failed, with the nodes of its booking (see [`MongoStore::apply_pending_undos`]).
#[derive(Debug)]
pub(super) struct Pending {
    nodes: Vec<String>,
    undo: Undo,
}

/// How to take a write back after the lease turned out to be lost.
#[derive(Clone, Debug)]
pub(super) enum Undo {
    Nothing,
    Delete(Bson),
    MoveBack {
        id: String,
        start_date: String,
        end_date: String,
        was_start: String,
        was_end: String,
    },
}

/// `Store::book`: lease, decide, write, release; undo and decide again when the lease was
/// lost.
pub(super) async fn book(
    s: &MongoStore,
    nodes: &[String],
    decide: &mut Decide<'_>,
) -> StoreResult<Booked> {
    let keys: Vec<String> = lock_order(nodes)
        .into_iter()
        .map(|n| format!("node:{n}"))
        .collect();
    for _ in 0..ATTEMPTS {
        let held = s.leases.acquire(&keys).await?;
        // Undos left by earlier bookings go first, so this decision cannot count a write
        // that was taken back (best effort: one still pending only makes us refuse more).
        s.apply_pending_undos(Some(nodes)).await;
        let outcome = s.decide_and_write(nodes, decide).await;
        let kept = held.release().await;
        let (booked, undo) = outcome?;
        match kept {
            Ok(true) => return Ok(booked),
            Ok(false) => {
                tracing::warn!(?nodes, "booking outlived its lease: undone, deciding again");
                s.undo_or_keep(nodes, undo).await?;
            }
            Err(e) => {
                // Unknown whether someone overtook us: take the write back and let the
                // client retry the whole request.
                if let Err(undo_err) = s.undo_or_keep(nodes, undo).await {
                    tracing::warn!(error = %undo_err, "undo after a failed release is pending");
                }
                return Err(e);
            }
        }
    }
    Err(StoreError::Unavailable(format!(
        "booking of {nodes:?} lost its lease {ATTEMPTS} times"
    )))
}

impl MongoStore {
    async fn decide_and_write(
        &self,
        nodes: &[String],
        decide: &mut Decide<'_>,
    ) -> StoreResult<(Booked, Undo)> {
        let mut lists = Vec::with_capacity(nodes.len());
        for node in nodes {
            lists.push(super::jobs::get_jobs_by_nodeid(self, node).await?);
        }
        let views: Vec<&[crate::store::Job]> = lists.iter().map(Vec::as_slice).collect();
        match decide(&views) {
            None => Ok((Booked::Refused, Undo::Nothing)),
            Some(BookingWrite::Insert(job)) => Ok(match self.insert_job(&job).await? {
                Some(oid) => (Booked::Written, Undo::Delete(oid)),
                None => (Booked::IdTaken, Undo::Nothing),
            }),
            Some(BookingWrite::SetDates {
                id,
                start_date,
                end_date,
                was_start,
                was_end,
            }) => {
                let moved = self
                    .set_dates_if(&id, &was_start, &was_end, &start_date, &end_date)
                    .await?;
                Ok(if moved {
                    let undo = Undo::MoveBack {
                        id,
                        start_date,
                        end_date,
                        was_start,
                        was_end,
                    };
                    (Booked::Written, undo)
                } else {
                    (Booked::Gone, Undo::Nothing)
                })
            }
        }
    }

    /// Sets a live job's dates if they are still `was_*`; `true` if it did.
    async fn set_dates_if(
        &self,
        id: &str,
        was_start: &str,
        was_end: &str,
        start_date: &str,
        end_date: &str,
    ) -> StoreResult<bool> {
        let mut filter = live_job(self.now());
        filter.insert("id", id);
        filter.insert("start_date", was_start);
        filter.insert("end_date", was_end);
        let res = self
            .jobs
            .update_one(
                filter,
                doc! { "$set": { "start_date": start_date, "end_date": end_date } },
            )
            .await
            .map_err(backend)?;
        Ok(res.matched_count > 0)
    }

    /// Takes a write back, sending it again after transient errors; an undo that still
    /// fails is kept pending (see the module doc) and its error returned.
    async fn undo_or_keep(&self, nodes: &[String], undo: Undo) -> StoreResult<()> {
        match self.undo(&undo).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(
                    ?undo,
                    error = %e,
                    "could not take back a booking that outlived its lease: kept pending, \
                     retried before every booking and purge"
                );
                self.pending_undos
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Pending {
                        nodes: nodes.to_vec(),
                        undo,
                    });
                Err(e)
            }
        }
    }

    /// Applies the pending undos (see the module doc) that are safe here; keeps the others
    /// and those that fail again. How many were applied. A delete is safe anywhere (the job
    /// must not exist); moving a job back only under the leases of all its nodes
    /// (`holding`: the nodes of the booking that holds them; `None`: no leases, a purge).
    pub(super) async fn apply_pending_undos(&self, holding: Option<&[String]>) -> u64 {
        let all =
            std::mem::take(&mut *self.pending_undos.lock().unwrap_or_else(|p| p.into_inner()));
        if all.is_empty() {
            return 0;
        }
        let mut applied = 0;
        let mut kept = Vec::new();
        for p in all {
            let safe = match p.undo {
                Undo::MoveBack { .. } => {
                    holding.is_some_and(|held| p.nodes.iter().all(|n| held.contains(n)))
                }
                Undo::Nothing | Undo::Delete(_) => true,
            };
            if !safe {
                kept.push(p);
                continue;
            }
            match self.undo(&p.undo).await {
                Ok(()) => {
                    tracing::info!(undo = ?p.undo, "pending undo applied");
                    applied += 1;
                }
                Err(_) => kept.push(p),
            }
        }
        if !kept.is_empty() {
            self.pending_undos
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(kept);
        }
        applied
    }

    /// One undo, idempotent, retried after transient errors.
    async fn undo(&self, undo: &Undo) -> StoreResult<()> {
        match undo {
            Undo::Nothing => Ok(()),
            Undo::Delete(oid) => {
                let filter = doc! { "_id": oid.clone() };
                retry::idempotent("undo booking", || {
                    self.jobs.delete_one(filter.clone()).into_future()
                })
                .await?;
                Ok(())
            }
            Undo::MoveBack {
                id,
                start_date,
                end_date,
                was_start,
                was_end,
            } => {
                // Moves back only while the job still has our dates: sending it again (or
                // late) never moves someone else's change.
                let mut filter = doc! { "id": id.as_str() };
                filter.insert("start_date", start_date.as_str());
                filter.insert("end_date", end_date.as_str());
                let back = doc! { "$set": { "start_date": was_start.as_str(), "end_date": was_end.as_str() } };
                retry::idempotent("undo booking", || {
                    self.jobs
                        .update_one(filter.clone(), back.clone())
                        .into_future()
                })
                .await?;
                Ok(())
            }
        }
    }

    /// Inserts a job unless its id is taken by a live job; the new document's `_id`. An
    /// expired job is gone for readers, so its id is reused before the TTL monitor removes
    /// it: removed only when the insert finds the id taken, which keeps the usual booking at
    /// three majority writes (lease, insert, release).
    pub(super) async fn insert_job(&self, job: &crate::store::Job) -> StoreResult<Option<Bson>> {
        let key = doc! { "id": &job.id };
        if let Some(oid) = self
            .insert_if_absent(&self.jobs, key.clone(), codec::job_doc(job))
            .await?
        {
            return Ok(Some(oid));
        }
        if self.delete_expired_job(&job.id).await? == 0 {
            return Ok(None);
        }
        self.insert_if_absent(&self.jobs, key, codec::job_doc(job))
            .await
    }

    /// Removes expired copies of a job id; how many.
    async fn delete_expired_job(&self, id: &str) -> StoreResult<u64> {
        let expired = doc! { "id": id, "expire_at": { "$lte": date(self.now()) } };
        let res = retry::idempotent("delete_expired_job", || {
            self.jobs.delete_many(expired.clone()).into_future()
        })
        .await?;
        Ok(res.deleted_count)
    }
}
