//! Jobs in the embedded store: the `jobs` table, and bookings of nodes (`Store::book`) under
//! the in-process per-node locks (one process per data directory, see `lock`).

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::rows::*;
use super::schema::*;
use super::EmbeddedStore;
use crate::store::booking::lock_order;
use crate::store::model::*;
use crate::store::{Booked, BookingWrite, Decide, StoreResult};

impl EmbeddedStore {
    pub(super) async fn add_job(&self, job: &Job) -> StoreResult<bool> {
        let values = job_values(job);
        let id = job.id.clone();
        self.write(move |conn, _| {
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
            Ok(n == 1)
        })
        .await
    }

    pub(super) async fn replace_job(&self, job: &Job) -> StoreResult<bool> {
        let mut values = job_values(job);
        let id = values.remove(0);
        values.push(id);
        values.push(Value::Integer(now_micros()));
        self.write(move |conn, _| {
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
        self.read(move |conn| {
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs WHERE (nodeid = ?1 OR server = ?1) \
                 AND (expire_at IS NULL OR expire_at > ?2) ORDER BY rowid"
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params![nodeid, now_micros()], job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
        self.write(move |conn, _| {
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
        self.write(move |conn, _| {
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
        self.write(move |conn, _| {
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
        let _held = self.inner.booking.lock(&lock_order(nodes)).await;
        let mut lists = Vec::with_capacity(nodes.len());
        for node in nodes {
            lists.push(self.get_jobs_by_nodeid(node).await?);
        }
        match decide(&lists) {
            None => Ok(Booked::Refused),
            Some(BookingWrite::Insert(job)) => Ok(if self.add_job(&job).await? {
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
                    .write(move |conn, _| {
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
        self.write(move |conn, _| {
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
        self.write(move |conn, _| {
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
