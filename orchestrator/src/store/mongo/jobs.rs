//! Jobs in the MongoDB store (collection `jobs`); bookings are in `booking`.

use bson::doc;

use std::future::IntoFuture;

use super::{backend, codec, decode_all, live_job, retry, MongoStore};
use crate::store::model::*;
use crate::store::StoreResult;
use codec::JOBS;

pub(super) async fn add_job(s: &MongoStore, job: &Job) -> StoreResult<bool> {
    Ok(s.insert_job(job).await?.is_some())
}

pub(super) async fn replace_job(s: &MongoStore, job: &Job) -> StoreResult<bool> {
    let mut set = codec::job_doc(job);
    set.remove("id");
    let mut update = doc! { "$set": set };
    if job.expire_at.is_none() {
        update.insert("$unset", doc! { "expire_at": "" });
    }
    let mut filter = live_job(s.now());
    filter.insert("id", &job.id);
    let res = s.jobs.update_one(filter, update).await.map_err(backend)?;
    Ok(res.matched_count > 0)
}

pub(super) async fn get_job(s: &MongoStore, id: &str) -> StoreResult<Option<Job>> {
    let mut filter = live_job(s.now());
    filter.insert("id", id);
    let found = s.jobs.find_one(filter).await.map_err(backend)?;
    found.as_ref().map(codec::job_from).transpose()
}

pub(super) async fn get_jobs_by_userid(
    s: &MongoStore,
    userid: Option<&str>,
) -> StoreResult<Vec<Job>> {
    let mut filter = live_job(s.now());
    if let Some(u) = userid {
        filter.insert("userid", u);
    }
    let docs = s.find_all(&s.jobs, filter, None).await?;
    Ok(decode_all(JOBS, docs, codec::job_from))
}

pub(super) async fn get_jobs_by_nodeid(s: &MongoStore, nodeid: &str) -> StoreResult<Vec<Job>> {
    let filter = doc! {
        "$and": [
            { "$or": [ { "nodeid": nodeid }, { "server": nodeid } ] },
            live_job(s.now()),
        ]
    };
    let docs = s.find_all(&s.jobs, filter, None).await?;
    Ok(decode_all(JOBS, docs, codec::job_from))
}

pub(super) async fn update_job_dates(
    s: &MongoStore,
    id: &str,
    start_date: &str,
    end_date: &str,
) -> StoreResult<bool> {
    let mut filter = live_job(s.now());
    filter.insert("id", id);
    let res = s
        .jobs
        .update_one(
            filter,
            doc! { "$set": { "start_date": start_date, "end_date": end_date } },
        )
        .await
        .map_err(backend)?;
    Ok(res.matched_count > 0)
}

pub(super) async fn delete_job(s: &MongoStore, id: &str) -> StoreResult<bool> {
    let mut live = live_job(s.now());
    live.insert("id", id);
    let deleted = retry::idempotent("delete_job", || {
        s.jobs.delete_many(live.clone()).into_future()
    })
    .await?;
    // Expired leftovers go too; they were already invisible.
    retry::idempotent("delete_job", || {
        s.jobs.delete_many(doc! { "id": id }).into_future()
    })
    .await?;
    Ok(deleted.deleted_count > 0)
}

pub(super) async fn delete_job_of(s: &MongoStore, id: &str, userid: &str) -> StoreResult<bool> {
    let mut live = live_job(s.now());
    live.insert("id", id);
    live.insert("userid", userid);
    let deleted = retry::idempotent("delete_job", || {
        s.jobs.delete_many(live.clone()).into_future()
    })
    .await?;
    Ok(deleted.deleted_count > 0)
}

pub(super) async fn delete_jobs_by_nodeid(s: &MongoStore, nodeid: &str) -> StoreResult<u64> {
    let mut live = live_job(s.now());
    live.insert("nodeid", nodeid);
    let deleted = retry::idempotent("delete_jobs_by_nodeid", || {
        s.jobs.delete_many(live.clone()).into_future()
    })
    .await?;
    retry::idempotent("delete_jobs_by_nodeid", || {
        s.jobs.delete_many(doc! { "nodeid": nodeid }).into_future()
    })
    .await?;
    Ok(deleted.deleted_count)
}

pub(super) async fn insert_jobs(s: &MongoStore, jobs: &[Job]) -> StoreResult<u64> {
    s.insert_many_new(&s.jobs, "id", jobs.iter().map(codec::job_doc).collect())
        .await
}
