//! Jobs in the embedded store: the `jobs` table, and bookings of nodes (`Store::book`) under
//! the in-process per-node locks (one process per data directory, see `lock`), deciding on
//! the kept lists of `node_jobs`.

use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::rows::*;
use super::schema::*;
use super::EmbeddedStore;
use crate::store::booking::lock_order;
use crate::store::model::*;
use crate::store::{Booked, BookingWrite, Decide, StoreResult};

impl EmbeddedStore {
    pub(super) async fn add_job(&self, job: &Job) -> StoreResult<bool> {
        self.insert_job(job, None).await
    }

    /// Inserts `job` unless its id is live. `booked`: the nodes whose booking locks the
    /// caller holds, whose kept lists get the job after the commit; `None` (not a booking):
    /// the kept lists the job belongs to are dropped before the write (see `node_jobs`).
    async fn insert_job(&self, job: &Job, booked: Option<&[String]>) -> StoreResult<bool> {
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
                params![id, now_micros()],
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

    pub(super) async fn replace_job(&self, job: &Job) -> StoreResult<bool> {
        let mut values = job_values(job);
        let id = values.remove(0);
        values.push(id);
        values.push(Value::Integer(now_micros()));
        self.write(move |conn, inner| {
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

    pub(super) async fn get_job(&self, id: &str) -> StoreResult<Option<Job>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1 AND {JOB_LIVE}"),
                    params![id, now_micros()],
                    job_from_row,
                )
                .optional()?)
        })
        .await
    }

    pub(super) async fn get_jobs_by_userid(&self, userid: Option<&str>) -> StoreResult<Vec<Job>> {
        let userid = userid.map(str::to_string);
        self.read(move |conn| {
            let now = now_micros();
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

    pub(super) async fn get_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<Vec<Job>> {
        let nodeid = nodeid.to_string();
        self.read(move |conn| Ok(jobs_of_node(conn, &nodeid)?))
            .await
    }

    /// The live jobs of `node` for a booking that holds its lock: the kept list, else read
    /// through the writer connection and kept (see `node_jobs` for why that order).
    async fn booking_list(&self, node: &str) -> StoreResult<Arc<Vec<Job>>> {
        if let Some(list) = self.inner.node_jobs.get_live(node) {
            return Ok(list);
        }
        let node = node.to_string();
        self.write(move |conn, inner| {
            let list = Arc::new(jobs_of_node(conn, &node)?);
            inner.node_jobs.put(&node, list.clone());
            Ok(list)
        })
        .await
    }

    pub(super) async fn update_job_dates(
        &self,
        id: &str,
        start_date: &str,
        end_date: &str,
    ) -> StoreResult<bool> {
        let (id, start, end) = (id.to_string(), start_date.to_string(), end_date.to_string());
        self.write(move |conn, inner| {
            // Rows may be in kept lists of other nodes too (as servers): drop them all first.
            inner.node_jobs.forget_all();
            Ok(conn.execute(
                "UPDATE jobs SET start_date = ?2, end_date = ?3 \
                 WHERE id = ?1 AND (expire_at IS NULL OR expire_at > ?4)",
                params![id, start, end, now_micros()],
            )? == 1)
        })
        .await
    }

    pub(super) async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn, inner| {
            // Rows may be in kept lists of other nodes too (as servers): drop them all first.
            inner.node_jobs.forget_all();
            let tx = conn.transaction()?;
            let live = tx.execute(
                "DELETE FROM jobs WHERE id = ?1 AND (expire_at IS NULL OR expire_at > ?2)",
                params![id, now_micros()],
            )? == 1;
            tx.execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
            tx.commit()?;
            Ok(live)
        })
        .await
    }

    pub(super) async fn delete_job_of(&self, id: &str, userid: &str) -> StoreResult<bool> {
        let (id, userid) = (id.to_string(), userid.to_string());
        self.write(move |conn, inner| {
            // Rows may be in kept lists of other nodes too (as servers): drop them all first.
            inner.node_jobs.forget_all();
            Ok(conn.execute(
                &format!("DELETE FROM jobs WHERE id = ? AND userid = ? AND {JOB_LIVE}"),
                params![id, userid, now_micros()],
            )? == 1)
        })
        .await
    }

    pub(super) async fn book(
        &self,
        nodes: &[String],
        decide: &mut Decide<'_>,
    ) -> StoreResult<Booked> {
        // Every write that books time goes through here under these locks, and reads taken
        // after a commit see it (WAL): the decision always sees the previous booking.
        let locked = lock_order(nodes);
        let _held = self.inner.booking.lock(&locked).await;
        let mut lists = Vec::with_capacity(nodes.len());
        for node in nodes {
            lists.push(self.booking_list(node).await?);
        }
        let views: Vec<&[Job]> = lists.iter().map(|l| l.as_slice()).collect();
        let decision = decide(&views);
        // Released before the write, so appending to the kept lists needs no copy.
        drop(views);
        drop(lists);
        match decision {
            None => Ok(Booked::Refused),
            Some(BookingWrite::Insert(job)) => Ok(if self.insert_job(&job, Some(&locked)).await? {
                Booked::Written
            } else {
                Booked::IdTaken
            }),
            Some(BookingWrite::SetDates {
                id,
                start_date,
                end_date,
                was_start,
                was_end,
            }) => {
                let moved = self
                    .write(move |conn, inner| {
                        // The job may be in the kept lists of other nodes (as a server).
                        inner.node_jobs.forget_all();
                        Ok(conn.execute(
                            &format!(
                                "UPDATE jobs SET start_date = ?, end_date = ? WHERE id = ? \
                                 AND start_date = ? AND end_date = ? AND {JOB_LIVE}"
                            ),
                            params![start_date, end_date, id, was_start, was_end, now_micros()],
                        )? == 1)
                    })
                    .await?;
                Ok(if moved { Booked::Written } else { Booked::Gone })
            }
        }
    }

    pub(super) async fn delete_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<u64> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, inner| {
            // Rows may be in kept lists of other nodes too (as servers): drop them all first.
            inner.node_jobs.forget_all();
            let tx = conn.transaction()?;
            let live = tx.execute(
                "DELETE FROM jobs WHERE nodeid = ?1 AND (expire_at IS NULL OR expire_at > ?2)",
                params![nodeid, now_micros()],
            )?;
            tx.execute("DELETE FROM jobs WHERE nodeid = ?1", params![nodeid])?;
            tx.commit()?;
            Ok(live as u64)
        })
        .await
    }

    pub(super) async fn insert_jobs(&self, jobs: &[Job]) -> StoreResult<u64> {
        let rows: Vec<Vec<Value>> = jobs.iter().map(job_values).collect();
        self.write(move |conn, inner| {
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
}

/// The live jobs naming `node` as their node or server, in insertion order.
fn jobs_of_node(conn: &Connection, node: &str) -> rusqlite::Result<Vec<Job>> {
    let sql = format!(
        "SELECT {JOB_COLS} FROM jobs WHERE (nodeid = ?1 OR server = ?1) \
         AND (expire_at IS NULL OR expire_at > ?2) ORDER BY rowid"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![node, now_micros()], job_from_row)?;
    rows.collect()
}
