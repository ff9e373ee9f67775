//! Jobs in the embedded store: the `jobs` table; bookings of nodes are in `booking`. Every
//! write keeps the kept lists of `node_jobs` right (see there).

use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::rows::*;
use super::schema::*;
use super::EmbeddedStore;
use crate::store::model::*;
use crate::store::StoreResult;

impl EmbeddedStore {
    /// Inserts `job` unless its id is live. `booked`: the nodes whose booking locks the
    /// caller holds, whose kept lists get the job after the commit; `None` (not a booking):
    /// the kept lists the job belongs to are dropped before the write (see `node_jobs`).
    pub(super) async fn insert_job(
        &self,
        job: &Job,
        booked: Option<&[String]>,
    ) -> StoreResult<bool> {
        let values = job_values(job);
        let id = job.id.clone();
        let (job, booked) = (job.clone(), booked.map(<[String]>::to_vec));
        self.write(move |conn, inner| {
            if booked.is_none() {
                let server = job.server.as_deref();
                let keys: Vec<&str> = std::iter::once(job.nodeid.as_str()).chain(server).collect();
                inner.node_jobs.forget(&keys);
            }
            let tx = conn.transaction()?;
            // An expired job is gone for readers; let its id be reused.
            tx.execute(
                "DELETE FROM jobs WHERE id = ?1 AND expire_at IS NOT NULL AND expire_at <= ?2",
                params![id, inner.now_micros()],
            )?;
            let n = tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO jobs ({JOB_COLS}) VALUES ({})",
                    vec!["?"; 21].join(", ")
                ),
                params_from_iter(values.iter()),
            )?;
            tx.commit()?;
            if let (1, Some(locked)) = (n, &booked) {
                inner.node_jobs.inserted(&job, locked);
            }
            Ok(n == 1)
        })
        .await
    }

    /// The live jobs of `node` for a booking that holds its lock: the kept list, else read
    /// through the writer connection and kept (see `node_jobs` for why that order).
    pub(super) async fn booking_list(&self, node: &str) -> StoreResult<Arc<Vec<Job>>> {
        if let Some(list) = self.inner.node_jobs.get_live(node, self.inner.clock.now()) {
            return Ok(list);
        }
        let node = node.to_string();
        self.write(move |conn, inner| {
            let list = Arc::new(jobs_of_node(conn, &node, inner.now_micros())?);
            inner.node_jobs.put(&node, list.clone());
            Ok(list)
        })
        .await
    }
}

pub(super) async fn add_job(s: &EmbeddedStore, job: &Job) -> StoreResult<bool> {
    s.insert_job(job, None).await
}

pub(super) async fn replace_job(s: &EmbeddedStore, job: &Job) -> StoreResult<bool> {
    let mut values = job_values(job);
    let id = values.remove(0);
    values.push(id);
    values.push(Value::Integer(s.now_micros()));
    s.write(move |conn, inner| {
        // Rows may be in kept lists of other nodes too (as servers): drop them all first.
        inner.node_jobs.forget_all();
        let cols: Vec<String> = JOB_COLS
            .split(',')
            .skip(1)
            .map(|c| format!("{} = ?", c.trim()))
            .collect();
        let sql = format!(
            "UPDATE jobs SET {} WHERE id = ? AND {JOB_LIVE}",
            cols.join(", ")
        );
        Ok(conn.execute(&sql, params_from_iter(values.iter()))? == 1)
    })
    .await
}

pub(super) async fn get_job(s: &EmbeddedStore, id: &str) -> StoreResult<Option<Job>> {
    let (id, now) = (id.to_string(), s.now_micros());
    s.read(move |conn| {
        Ok(conn
            .query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1 AND {JOB_LIVE}"),
                params![id, now],
                job_from_row,
            )
            .optional()?)
    })
    .await
}

pub(super) async fn get_jobs_by_userid(
    s: &EmbeddedStore,
    userid: Option<&str>,
) -> StoreResult<Vec<Job>> {
    let (userid, now) = (userid.map(str::to_string), s.now_micros());
    s.read(move |conn| {
        let (sql, values) = match userid {
            Some(u) => (
                format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE userid = ? AND {JOB_LIVE} ORDER BY rowid"
                ),
                vec![Value::Text(u), Value::Integer(now)],
            ),
            None => (
                format!("SELECT {JOB_COLS} FROM jobs WHERE {JOB_LIVE} ORDER BY rowid"),
                vec![Value::Integer(now)],
            ),
        };
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(values.iter()), job_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .await
}

pub(super) async fn get_jobs_by_nodeid(s: &EmbeddedStore, nodeid: &str) -> StoreResult<Vec<Job>> {
    let (nodeid, now) = (nodeid.to_string(), s.now_micros());
    s.read(move |conn| Ok(jobs_of_node(conn, &nodeid, now)?))
        .await
}

pub(super) async fn update_job_dates(
    s: &EmbeddedStore,
    id: &str,
    start_date: &str,
    end_date: &str,
) -> StoreResult<bool> {
    let (id, start, end) = (id.to_string(), start_date.to_string(), end_date.to_string());
    s.write(move |conn, inner| {
        // Rows may be in kept lists of other nodes too (as servers): drop them all first.
        inner.node_jobs.forget_all();
        Ok(conn.execute(
            "UPDATE jobs SET start_date = ?2, end_date = ?3 \
             WHERE id = ?1 AND (expire_at IS NULL OR expire_at > ?4)",
            params![id, start, end, inner.now_micros()],
        )? == 1)
    })
    .await
}

pub(super) async fn delete_job(s: &EmbeddedStore, id: &str) -> StoreResult<bool> {
    let id = id.to_string();
    s.write(move |conn, inner| {
        // Rows may be in kept lists of other nodes too (as servers): drop them all first.
        inner.node_jobs.forget_all();
        let tx = conn.transaction()?;
        let live = tx.execute(
            "DELETE FROM jobs WHERE id = ?1 AND (expire_at IS NULL OR expire_at > ?2)",
            params![id, inner.now_micros()],
        )? == 1;
        tx.execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(live)
    })
    .await
}

pub(super) async fn delete_job_of(s: &EmbeddedStore, id: &str, userid: &str) -> StoreResult<bool> {
    let (id, userid) = (id.to_string(), userid.to_string());
    s.write(move |conn, inner| {
        // Rows may be in kept lists of other nodes too (as servers): drop them all first.
        inner.node_jobs.forget_all();
        Ok(conn.execute(
            &format!("DELETE FROM jobs WHERE id = ? AND userid = ? AND {JOB_LIVE}"),
            params![id, userid, inner.now_micros()],
        )? == 1)
    })
    .await
}

pub(super) async fn delete_jobs_by_nodeid(s: &EmbeddedStore, nodeid: &str) -> StoreResult<u64> {
    let nodeid = nodeid.to_string();
    s.write(move |conn, inner| {
        // Rows may be in kept lists of other nodes too (as servers): drop them all first.
        inner.node_jobs.forget_all();
        let tx = conn.transaction()?;
        let live = tx.execute(
            "DELETE FROM jobs WHERE nodeid = ?1 AND (expire_at IS NULL OR expire_at > ?2)",
            params![nodeid, inner.now_micros()],
        )?;
        tx.execute("DELETE FROM jobs WHERE nodeid = ?1", params![nodeid])?;
        tx.commit()?;
        Ok(live as u64)
    })
    .await
}

pub(super) async fn insert_jobs(s: &EmbeddedStore, jobs: &[Job]) -> StoreResult<u64> {
    let rows: Vec<Vec<Value>> = jobs.iter().map(job_values).collect();
    s.write(move |conn, inner| {
        // Rows may be in kept lists of other nodes too (as servers): drop them all first.
        inner.node_jobs.forget_all();
        let tx = conn.transaction()?;
        let mut inserted = 0u64;
        {
            let mut st = tx.prepare(&format!(
                "INSERT OR IGNORE INTO jobs ({JOB_COLS}) VALUES ({})",
                vec!["?"; 21].join(", ")
            ))?;
            for values in &rows {
                inserted += st.execute(params_from_iter(values.iter()))? as u64;
            }
        }
        tx.commit()?;
        Ok(inserted)
    })
    .await
}

/// The live jobs (at `now`, in micros) naming `node` as their node or server, in insertion
/// order.
fn jobs_of_node(conn: &Connection, node: &str, now: i64) -> rusqlite::Result<Vec<Job>> {
    let sql = format!(
        "SELECT {JOB_COLS} FROM jobs WHERE (nodeid = ?1 OR server = ?1) \
         AND (expire_at IS NULL OR expire_at > ?2) ORDER BY rowid"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![node, now], job_from_row)?;
    rows.collect()
}
