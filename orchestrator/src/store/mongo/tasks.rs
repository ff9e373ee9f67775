//! Tasks in the MongoDB store (collection `tasks`; expired tasks are invisible at once).

use std::future::IntoFuture;

use bson::doc;

use super::codec::{self, date, TASKS};
use super::{decode_all, eq_if, retry, MongoStore};
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn schedule_task(s: &MongoStore, task: &Task) -> StoreResult<bool> {
    let expired = doc! { "taskid": &task.taskid, "expire_at": { "$lte": date(s.now()) } };
    retry::idempotent("schedule_task", || {
        s.tasks.delete_many(expired.clone()).into_future()
    })
    .await?;
    Ok(s.insert_if_absent(
        &s.tasks,
        doc! { "taskid": &task.taskid },
        codec::task_doc(task),
    )
    .await?
    .is_some())
}

pub(super) async fn get_tasks(s: &MongoStore, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
    let mut q = doc! { "expire_at": { "$gt": date(s.now()) } };
    eq_if(&mut q, "taskid", &filter.taskid);
    eq_if(&mut q, "runid", &filter.runid);
    eq_if(&mut q, "jobid", &filter.jobid);
    eq_if(&mut q, "nodeid", &filter.nodeid);
    if let Some(t) = filter.task_type {
        q.insert("task_type", t);
    }
    if let Some(s) = filter.status {
        q.insert("status", s);
    }
    let docs = s.find_all(&s.tasks, q, None).await?;
    Ok(decode_all(TASKS, docs, codec::task_from))
}

pub(super) async fn update_task(s: &MongoStore, taskid: &str, status: i32) -> StoreResult<bool> {
    let live = doc! { "taskid": taskid, "expire_at": { "$gt": date(s.now()) } };
    let res = retry::idempotent("update_task", || {
        s.tasks
            .update_many(live.clone(), doc! { "$set": { "status": status } })
            .into_future()
    })
    .await?;
    Ok(res.matched_count > 0)
}
