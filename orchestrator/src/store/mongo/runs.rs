//! Runs in the MongoDB store (collection `runs`; `$set` upserts like the original's).

use bson::{doc, Document};

use super::codec::{self, date, RUNS};
use super::write::UpsertWith;
use super::{decode_all, eq_if, MongoStore};
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn update_run(s: &MongoStore, run: &Run) -> StoreResult<()> {
    // `$set` keeps a run that exists where it is (the original's upsert), so lists keep
    // their order.
    s.upsert(
        &s.runs,
        doc! { "runid": &run.runid },
        UpsertWith::Set(codec::run_doc(run)),
    )
    .await
}

pub(super) async fn insert_runs(s: &MongoStore, runs: &[Run]) -> StoreResult<u64> {
    s.insert_many_new(&s.runs, "runid", runs.iter().map(codec::run_doc).collect())
        .await
}

pub(super) async fn get_runs(s: &MongoStore, filter: &RunFilter) -> StoreResult<Vec<Run>> {
    let mut q = Document::new();
    eq_if(&mut q, "runid", &filter.runid);
    eq_if(&mut q, "jobid", &filter.jobid);
    eq_if(&mut q, "nodeid", &filter.nodeid);
    eq_if(&mut q, "userid", &filter.userid);
    let mut range = Document::new();
    if let Some(t) = filter.start_from {
        range.insert("$gte", date(t));
    }
    if let Some(t) = filter.start_to {
        range.insert("$lte", date(t));
    }
    if !range.is_empty() {
        q.insert("start_time", range);
    }
    let limit = filter.limit.filter(|n| *n > 0).map(i64::from);
    let docs = s.find_all(&s.runs, q, limit).await?;
    Ok(decode_all(RUNS, docs, codec::run_from))
}
