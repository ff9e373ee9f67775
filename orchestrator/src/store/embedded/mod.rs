//! Embedded store: one SQLite file (WAL, fully synchronous) under the data directory.
//!
//! Writes go through a single connection behind a mutex; reads use a small pool of read-only
//! connections so they never queue behind writes. Users are also held in memory (loaded at
//! open, updated under the writer lock) because every authenticated request looks one up.

mod jobs;
mod lock;
mod node_jobs;
mod rows;
mod schema;
mod users;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::booking::KeyedLocks;
use super::model::*;
use super::{Booked, Decide};
use super::{Store, StoreError, StoreResult};
pub use lock::LOCK_FILE;
use rows::*;
pub use schema::DB_FILE;
use schema::*;

/// Read connections kept open between requests.
const READ_POOL_SIZE: usize = 4;

/// The embedded SQLite backend. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    users: RwLock<HashMap<String, User>>,
    /// Per-node booking locks (one process per data dir, so in-process locks suffice).
    booking: KeyedLocks,
    /// Live jobs of recently booked nodes (changed only under the writer mutex).
    node_jobs: node_jobs::NodeJobs,
    /// Held for as long as the store is open: one process per data directory.
    _dir_lock: lock::DirLock,
}

fn lock_err<T>(_: T) -> StoreError {
    StoreError::Backend("store lock poisoned".to_string())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", data_dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The database holds access tokens: keep the directory private.
            let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let dir_lock = lock::DirLock::acquire(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let writer = open_writer(&path)?;

        let mut users = HashMap::new();
        {
            let mut stmt = writer.prepare(&format!("SELECT {USER_COLS} FROM users"))?;
            let rows = stmt.query_map([], user_from_row)?;
            for user in rows {
                let user = user?;
                users.insert(user.id.clone(), user);
            }
        }
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                users: RwLock::new(users),
                booking: KeyedLocks::default(),
                node_jobs: node_jobs::NodeJobs::default(),
                _dir_lock: dir_lock,
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().map_err(lock_err)?;
            f(&mut conn, &inner)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store worker failed: {e}")))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().map_err(lock_err)?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, true)?,
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock().map_err(lock_err)?;
            if pool.len() < READ_POOL_SIZE {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store worker failed: {e}")))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn update_config(&self, config: &GlobalConfig) -> StoreResult<()> {
        let config = config.clone();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO config VALUES (0, 0, 0, '', '', '', 0, '')",
                [],
            )?;
            if let Some(ds) = &config.datastore {
                let blob = ds.blob.clone().unwrap_or_default();
                tx.execute(
                    "UPDATE config SET has_datastore = 1, has_blob = ?1, \
                     blob_connection_string = ?2, blob_container = ?3, blob_artifact_path = ?4 \
                     WHERE id = 0",
                    params![
                        ds.blob.is_some(),
                        blob.connection_string,
                        blob.container,
                        blob.artifact_path
                    ],
                )?;
            }
            if let Some(w) = &config.weather {
                tx.execute(
                    "UPDATE config SET has_weather = 1, weather_apikey = ?1 WHERE id = 0",
                    params![w.apikey],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_config(&self) -> StoreResult<Option<GlobalConfig>> {
        self.read(|conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {CONFIG_COLS} FROM config WHERE id = 0"),
                    [],
                    config_from_row,
                )
                .optional()?;
            Ok(row)
        })
        .await
    }

    async fn add_user(&self, user: &User) -> StoreResult<bool> {
        let user = user.clone();
        self.write(move |conn, inner| {
            let inserted = insert_user(conn, &user, false)? == 1;
            if inserted {
                inner
                    .users
                    .write()
                    .map_err(lock_err)?
                    .insert(user.id.clone(), user);
            }
            Ok(inserted)
        })
        .await
    }

    async fn put_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write(move |conn, inner| {
            insert_user(conn, &user, true)?;
            inner
                .users
                .write()
                .map_err(lock_err)?
                .insert(user.id.clone(), user);
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        // Served from memory: the cache is updated under the writer lock on every change.
        let users = self.inner.users.read().map_err(lock_err)?;
        Ok(users.get(id).cloned())
    }

    async fn modify_user(&self, id: &str, name: &str, role: Role, team: &str) -> StoreResult<bool> {
        let (id, name, team) = (id.to_string(), name.to_string(), team.to_string());
        self.write(move |conn, inner| {
            let changed = conn.execute(
                "UPDATE users SET name = ?2, role = ?3, team = ?4 WHERE id = ?1",
                params![id, name, role.as_i32(), team],
            )? == 1;
            if changed {
                let mut users = inner.users.write().map_err(lock_err)?;
                if let Some(u) = users.get_mut(&id) {
                    u.name = name;
                    u.role = role;
                    u.team = team;
                }
            }
            Ok(changed)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn, inner| {
            let deleted = conn.execute("DELETE FROM users WHERE id = ?1", params![id])? == 1;
            inner.users.write().map_err(lock_err)?.remove(&id);
            Ok(deleted)
        })
        .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let users = self.inner.users.read().map_err(lock_err)?;
        let mut all: Vec<User> = users.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    async fn claim_node_user(&self, user: &User) -> StoreResult<bool> {
        EmbeddedStore::claim_node_user(self, user).await
    }

    async fn delete_node_user(&self, id: &str) -> StoreResult<bool> {
        EmbeddedStore::delete_node_user(self, id).await
    }

    async fn register_node(&self, node: &Node) -> StoreResult<bool> {
        let n = node.clone();
        self.write(move |conn, _| {
            let inserted = conn.execute(
                &format!("INSERT OR IGNORE INTO nodes ({NODE_COLS}) VALUES ({NODE_PARAMS})"),
                params_from_iter(node_values(&n)),
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn get_node(&self, nodeid: &str) -> StoreResult<Option<Node>> {
        let nodeid = nodeid.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {NODE_COLS} FROM nodes WHERE nodeid = ?1"),
                    params![nodeid],
                    node_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn get_nodes(&self, filter: &NodeFilter) -> StoreResult<Vec<Node>> {
        let mut c = Conditions::default();
        c.eq_text("nodeid", &filter.nodeid);
        c.eq_text("location", &filter.location);
        c.eq_text("name", &filter.name);
        c.eq_text("provider", &filter.provider);
        if let Some(since) = filter.active_since {
            c.push("last_active >= ?", Value::Integer(micros(since)));
        }
        self.read(move |conn| {
            let sql = format!(
                "SELECT {NODE_COLS} FROM nodes{} ORDER BY rowid",
                c.where_sql()
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(c.values.iter()), node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn update_node(&self, nodeid: &str, update: &NodeUpdate) -> StoreResult<bool> {
        let mut sets: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut text = |col: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                sets.push(col);
                values.push(Value::Text(v.clone()));
            }
        };
        text("name = ?", &update.name);
        text("description = ?", &update.description);
        text("coords = ?", &update.coords);
        text("location = ?", &update.location);
        text("provider = ?", &update.provider);
        text("public_ip = ?", &update.public_ip);
        if let Some(t) = update.last_active {
            sets.push("last_active = ?");
            values.push(Value::Integer(micros(t)));
        }
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            if sets.is_empty() {
                let exists = conn
                    .query_row(
                        "SELECT 1 FROM nodes WHERE nodeid = ?1",
                        params![nodeid],
                        |_| Ok(()),
                    )
                    .optional()?;
                return Ok(exists.is_some());
            }
            values.push(Value::Text(nodeid));
            let sql = format!("UPDATE nodes SET {} WHERE nodeid = ?", sets.join(", "));
            Ok(conn.execute(&sql, params_from_iter(values.iter()))? == 1)
        })
        .await
    }

    async fn delete_node(&self, nodeid: &str) -> StoreResult<bool> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute("DELETE FROM nodes WHERE nodeid = ?1", params![nodeid])? == 1)
        })
        .await
    }

    async fn mark_node(&self, nodeid: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE nodes SET last_active = ?2 WHERE nodeid = ?1",
                params![nodeid, micros(at)],
            )? == 1)
        })
        .await
    }

    async fn set_scavenger_status(&self, nodeid: &str, active: bool) -> StoreResult<bool> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE nodes SET scavenger_mode_active = ?2 WHERE nodeid = ?1",
                params![nodeid, active],
            )? == 1)
        })
        .await
    }

    async fn get_scavenger_status(&self, nodeid: &str) -> StoreResult<Option<bool>> {
        let nodeid = nodeid.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT scavenger_mode_active FROM nodes WHERE nodeid = ?1",
                    params![nodeid],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn add_job(&self, job: &Job) -> StoreResult<bool> {
        EmbeddedStore::add_job(self, job).await
    }

    async fn replace_job(&self, job: &Job) -> StoreResult<bool> {
        EmbeddedStore::replace_job(self, job).await
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<Job>> {
        EmbeddedStore::get_job(self, id).await
    }

    async fn get_jobs_by_userid(&self, userid: Option<&str>) -> StoreResult<Vec<Job>> {
        EmbeddedStore::get_jobs_by_userid(self, userid).await
    }

    async fn get_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<Vec<Job>> {
        EmbeddedStore::get_jobs_by_nodeid(self, nodeid).await
    }

    async fn update_job_dates(
        &self,
        id: &str,
        start_date: &str,
        end_date: &str,
    ) -> StoreResult<bool> {
        EmbeddedStore::update_job_dates(self, id, start_date, end_date).await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        EmbeddedStore::delete_job(self, id).await
    }

    async fn delete_job_of(&self, id: &str, userid: &str) -> StoreResult<bool> {
        EmbeddedStore::delete_job_of(self, id, userid).await
    }

    async fn book(&self, nodes: &[String], decide: &mut Decide<'_>) -> StoreResult<Booked> {
        EmbeddedStore::book(self, nodes, decide).await
    }

    async fn delete_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<u64> {
        EmbeddedStore::delete_jobs_by_nodeid(self, nodeid).await
    }

    async fn update_run(&self, run: &Run) -> StoreResult<()> {
        let r = run.clone();
        self.write(move |conn, _| {
            let mut st = conn.prepare_cached(&format!(
                "INSERT INTO runs ({RUN_COLS}) VALUES ({RUN_PARAMS}) ON CONFLICT (runid) DO UPDATE \
                 SET {RUN_UPDATE}"
            ))?;
            exec_run(&mut st, &r)?;
            Ok(())
        })
        .await
    }

    async fn insert_jobs(&self, jobs: &[Job]) -> StoreResult<u64> {
        EmbeddedStore::insert_jobs(self, jobs).await
    }

    async fn insert_runs(&self, runs: &[Run]) -> StoreResult<u64> {
        let runs = runs.to_vec();
        self.write(move |conn, _| {
            // One transaction: one fsync for the whole batch instead of one per run.
            let tx = conn.transaction()?;
            let mut inserted = 0u64;
            {
                let mut st = tx.prepare(&format!(
                    "INSERT OR IGNORE INTO runs ({RUN_COLS}) VALUES ({RUN_PARAMS})"
                ))?;
                for r in &runs {
                    inserted += exec_run(&mut st, r)? as u64;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn get_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let mut c = Conditions::default();
        c.eq_text("runid", &filter.runid);
        c.eq_text("jobid", &filter.jobid);
        c.eq_text("nodeid", &filter.nodeid);
        c.eq_text("userid", &filter.userid);
        if let Some(t) = filter.start_from {
            c.push("start_time >= ?", Value::Integer(micros(t)));
        }
        if let Some(t) = filter.start_to {
            c.push("start_time <= ?", Value::Integer(micros(t)));
        }
        let limit = match filter.limit {
            Some(n) if n > 0 => format!(" LIMIT {n}"),
            _ => String::new(),
        };
        self.read(move |conn| {
            let sql = format!(
                "SELECT {RUN_COLS} FROM runs{} ORDER BY rowid{limit}",
                c.where_sql()
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(c.values.iter()), run_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn schedule_task(&self, task: &Task) -> StoreResult<bool> {
        let t = task.clone();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM tasks WHERE taskid = ?1 AND expire_at <= ?2",
                params![t.taskid, now_micros()],
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

    async fn get_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        let mut c = Conditions::default();
        c.push("expire_at > ?", Value::Integer(now_micros()));
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
        self.read(move |conn| {
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

    async fn update_task(&self, taskid: &str, status: i32) -> StoreResult<bool> {
        let taskid = taskid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE tasks SET status = ?2 WHERE taskid = ?1 AND expire_at > ?3",
                params![taskid, status, now_micros()],
            )? == 1)
        })
        .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |conn, inner| {
            // Expired jobs are skipped in the kept lists anyway; dropping them keeps it simple.
            inner.node_jobs.forget_all();
            let tx = conn.transaction()?;
            let t = tx.execute(
                "DELETE FROM tasks WHERE expire_at <= ?1",
                params![micros(now)],
            )?;
            let j = tx.execute(
                "DELETE FROM jobs WHERE expire_at IS NOT NULL AND expire_at <= ?1",
                params![micros(now)],
            )?;
            tx.commit()?;
            Ok((t + j) as u64)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}
