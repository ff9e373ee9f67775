//! Tasks in the embedded store (table `tasks`; expired tasks are invisible at once).

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use super::rows::*;
use super::schema::*;
use super::EmbeddedStore;
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn schedule_task(s: &EmbeddedStore, task: &Task) -> StoreResult<bool> {
    let t = task.clone();
    s.write(move |conn, inner| {
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM tasks WHERE taskid = ?1 AND expire_at <= ?2",
            params![t.taskid, inner.now_micros()],
        )?;
        let n = tx.execute(
            &format!(
                "INSERT OR IGNORE INTO tasks ({TASK_COLS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                t.taskid,
                t.runid,
                t.jobid,
                t.nodeid,
                t.task_type,
                t.status,
                t.ttl_secs,
                micros(t.expire_at)
            ],
        )?;
        tx.commit()?;
        Ok(n == 1)
    })
    .await
}

pub(super) async fn get_tasks(s: &EmbeddedStore, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
    let mut c = Conditions::default();
    c.push("expire_at > ?", Value::Integer(s.now_micros()));
    c.eq_text("taskid", &filter.taskid);
    c.eq_text("runid", &filter.runid);
    c.eq_text("jobid", &filter.jobid);
    c.eq_text("nodeid", &filter.nodeid);
    if let Some(t) = filter.task_type {
        c.push("task_type = ?", Value::Integer(i64::from(t)));
    }
    if let Some(s) = filter.status {
        c.push("status = ?", Value::Integer(i64::from(s)));
    }
    s.read(move |conn| {
        let sql = format!(
            "SELECT {TASK_COLS} FROM tasks{} ORDER BY rowid",
            c.where_sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(c.values.iter()), task_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .await
}

pub(super) async fn update_task(s: &EmbeddedStore, taskid: &str, status: i32) -> StoreResult<bool> {
    let taskid = taskid.to_string();
    s.write(move |conn, inner| {
        Ok(conn.execute(
            "UPDATE tasks SET status = ?2 WHERE taskid = ?1 AND expire_at > ?3",
            params![taskid, status, inner.now_micros()],
        )? == 1)
    })
    .await
}
