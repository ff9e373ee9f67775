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

use std::future::IntoFuture;

use bson::{doc, Bson};

use super::codec::{self, date};
use super::{backend, live_job, retry, MongoStore};
use crate::store::booking::lock_order;
use crate::store::{Booked, BookingWrite, Decide, StoreError, StoreResult};

/// Decisions per booking before giving up (each retry follows a lost lease).
const ATTEMPTS: usize = 3;

/// How to take a write back after the lease turned out to be lost.
enum Undo {
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
        let outcome = s.decide_and_write(nodes, decide).await;
        let kept = held.release().await;
        let (booked, undo) = outcome?;
        match kept {
            Ok(true) => return Ok(booked),
            Ok(false) => {
                tracing::warn!(?nodes, "booking outlived its lease: undone, deciding again");
                s.undo(undo).await?;
            }
            Err(e) => {
                // Unknown whether someone overtook us: take the write back and let the
                // client retry the whole request.
                s.undo(undo).await?;
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
        let mut filter = live_job(chrono::Utc::now());
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

    async fn undo(&self, undo: Undo) -> StoreResult<()> {
        match undo {
            Undo::Nothing => Ok(()),
            Undo::Delete(oid) => {
                self.jobs
                    .delete_one(doc! { "_id": oid })
                    .await
                    .map_err(backend)?;
                Ok(())
            }
            Undo::MoveBack {
                id,
                start_date,
                end_date,
                was_start,
                was_end,
            } => {
                self.set_dates_if(&id, &start_date, &end_date, &was_start, &was_end)
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
        let expired = doc! { "id": id, "expire_at": { "$lte": date(chrono::Utc::now()) } };
        let res = retry::idempotent("delete_expired_job", || {
            self.jobs.delete_many(expired.clone()).into_future()
        })
        .await?;
        Ok(res.deleted_count)
    }
}
