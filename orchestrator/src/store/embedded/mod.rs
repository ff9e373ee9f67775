//! Embedded store: one SQLite file (WAL, fully synchronous) under the data directory.
//!
//! Writes go through a single connection behind a mutex; reads use a small pool of read-only
//! connections so they never queue behind writes. Users are also held in memory (loaded at
//! open, updated under the writer lock) because every authenticated request looks one up.
//!
//! Layout: one file per entity, as `service/` and the MongoDB backend (`config`, `users`,
//! `nodes`, `jobs`, `runs`, `tasks`, `booking`), each a set of functions taking the store;
//! the `Store` impl below only routes each method to its entity. Row decoding is in `rows`,
//! the tables in `schema`, the data directory's lock in `lock`.

mod booking;
mod config;
mod jobs;
mod lock;
mod node_jobs;
mod nodes;
mod rows;
mod runs;
mod schema;
mod tasks;
mod users;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::booking::KeyedLocks;
use super::model::*;
use super::{Booked, Decide};
use super::{Store, StoreError, StoreResult};
use crate::clock::SharedClock;
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
    /// The time against which records expire (`clock`).
    clock: SharedClock,
    /// Held for as long as the store is open: one process per data directory.
    _dir_lock: lock::DirLock,
}

impl Inner {
    /// Now, as the `expire_at` columns store it.
    fn now_micros(&self) -> i64 {
        micros(self.clock.now())
    }
}

fn lock_err<T>(_: T) -> StoreError {
    StoreError::Backend("store lock poisoned".to_string())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database in `data_dir`; records expire by the system
    /// clock.
    pub fn open(data_dir: &Path) -> StoreResult<EmbeddedStore> {
        EmbeddedStore::open_with_clock(data_dir, crate::clock::system())
    }

    /// [`EmbeddedStore::open`] with records expiring by `clock` (a test clock in tests).
    pub fn open_with_clock(data_dir: &Path, clock: SharedClock) -> StoreResult<EmbeddedStore> {
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
                clock,
                _dir_lock: dir_lock,
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Now by the store's clock, as the `expire_at` columns store it.
    fn now_micros(&self) -> i64 {
        self.inner.now_micros()
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
        config::update_config(self, config).await
    }

    async fn get_config(&self) -> StoreResult<Option<GlobalConfig>> {
        config::get_config(self).await
    }

    async fn add_user(&self, user: &User) -> StoreResult<bool> {
        users::add_user(self, user).await
    }

    async fn put_user(&self, user: &User) -> StoreResult<()> {
        users::put_user(self, user).await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        users::get_user(self, id).await
    }

    async fn modify_user(&self, id: &str, name: &str, role: Role, team: &str) -> StoreResult<bool> {
        users::modify_user(self, id, name, role, team).await
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        users::delete_user(self, id).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        users::list_users(self).await
    }

    async fn claim_node_user(&self, user: &User) -> StoreResult<bool> {
        users::claim_node_user(self, user).await
    }

    async fn delete_node_user(&self, id: &str) -> StoreResult<bool> {
        users::delete_node_user(self, id).await
    }

    async fn register_node(&self, node: &Node) -> StoreResult<bool> {
        nodes::register_node(self, node).await
    }

    async fn get_node(&self, nodeid: &str) -> StoreResult<Option<Node>> {
        nodes::get_node(self, nodeid).await
    }

    async fn get_nodes(&self, filter: &NodeFilter) -> StoreResult<Vec<Node>> {
        nodes::get_nodes(self, filter).await
    }

    async fn update_node(&self, nodeid: &str, update: &NodeUpdate) -> StoreResult<bool> {
        nodes::update_node(self, nodeid, update).await
    }

    async fn delete_node(&self, nodeid: &str) -> StoreResult<bool> {
        nodes::delete_node(self, nodeid).await
    }

    async fn mark_node(&self, nodeid: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        nodes::mark_node(self, nodeid, at).await
    }

    async fn set_scavenger_status(&self, nodeid: &str, active: bool) -> StoreResult<bool> {
        nodes::set_scavenger_status(self, nodeid, active).await
    }

    async fn get_scavenger_status(&self, nodeid: &str) -> StoreResult<Option<bool>> {
        nodes::get_scavenger_status(self, nodeid).await
    }

    async fn add_job(&self, job: &Job) -> StoreResult<bool> {
        jobs::add_job(self, job).await
    }

    async fn replace_job(&self, job: &Job) -> StoreResult<bool> {
        jobs::replace_job(self, job).await
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<Job>> {
        jobs::get_job(self, id).await
    }

    async fn get_jobs_by_userid(&self, userid: Option<&str>) -> StoreResult<Vec<Job>> {
        jobs::get_jobs_by_userid(self, userid).await
    }

    async fn get_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<Vec<Job>> {
        jobs::get_jobs_by_nodeid(self, nodeid).await
    }

    async fn update_job_dates(
        &self,
        id: &str,
        start_date: &str,
        end_date: &str,
    ) -> StoreResult<bool> {
        jobs::update_job_dates(self, id, start_date, end_date).await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        jobs::delete_job(self, id).await
    }

    async fn delete_job_of(&self, id: &str, userid: &str) -> StoreResult<bool> {
        jobs::delete_job_of(self, id, userid).await
    }

    async fn book(&self, nodes: &[String], decide: &mut Decide<'_>) -> StoreResult<Booked> {
        booking::book(self, nodes, decide).await
    }

    async fn delete_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<u64> {
        jobs::delete_jobs_by_nodeid(self, nodeid).await
    }

    async fn update_run(&self, run: &Run) -> StoreResult<()> {
        runs::update_run(self, run).await
    }

    async fn insert_jobs(&self, jobs: &[Job]) -> StoreResult<u64> {
        jobs::insert_jobs(self, jobs).await
    }

    async fn insert_runs(&self, runs: &[Run]) -> StoreResult<u64> {
        runs::insert_runs(self, runs).await
    }

    async fn get_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        runs::get_runs(self, filter).await
    }

    async fn schedule_task(&self, task: &Task) -> StoreResult<bool> {
        tasks::schedule_task(self, task).await
    }

    async fn get_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        tasks::get_tasks(self, filter).await
    }

    async fn update_task(&self, taskid: &str, status: i32) -> StoreResult<bool> {
        tasks::update_task(self, taskid, status).await
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
