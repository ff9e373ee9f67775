//! MongoDB backend: the original orchestrator's database, collections and documents, unchanged.
//!
//! A database written by the Python orchestrator is served as is, and documents written here
//! are read back by the Python orchestrator (see [`codec`]). Inserts that the original did as
//! find-then-insert are one `insert_one` refused by a unique index when the id is taken, so
//! "is the id free?" and "insert" cannot interleave with another writer, and the document
//! keeps the original's field order (see `write`). Client options: `options`; which driver
//! errors mean "retry": `errors`; our retries of multi-document writes: `retry`.
//!
//! Layout: one file per entity, as `service/` (`config`, `users`, `nodes`, `jobs`, `runs`,
//! `tasks`, `booking`), each a set of functions taking the store; the `Store` impl below
//! only routes each method to its entity. Shared write patterns are in `write`, documents in
//! `codec`, indexes in `indexes`/`probe`, leases in `lease`.

mod booking;
mod codec;
mod config;
mod errors;
mod index_build;
mod indexes;
mod jobs;
mod lease;
mod nodes;
mod options;
mod probe;
mod retry;
mod runs;
mod tasks;
mod users;
mod write;

use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use super::model::*;
use super::{Booked, Decide, Store, StoreError, StoreResult};
use crate::clock::SharedClock;
use codec::{date, CONFIG, JOBS, NODES, RUNS, TASKS, USERS};
use errors::{backend, is_duplicate_key, scrub, userinfo, validate_db_name, DUPLICATE_KEY};
use lease::Leases;
pub use lease::LOCKS;

/// Collection of the health probe's one document (not one of the original's).
pub const HEALTH: &str = "leotest_health";

/// How long the health probe's write waits for the majority.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The longest a health probe takes (it runs every few seconds).
const PROBE_DEADLINE: Duration = Duration::from_secs(4);

/// The MongoDB backend. Cheap to clone (the driver's client is shared).
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    config: Collection<Document>,
    users: Collection<Document>,
    nodes: Collection<Document>,
    jobs: Collection<Document>,
    runs: Collection<Document>,
    tasks: Collection<Document>,
    /// Leases of node bookings and of guarded inserts (`lease`).
    leases: Arc<Leases>,
    /// Collections whose unique key index is missing or not enforced (see `indexes`,
    /// `probe`).
    guarded: Arc<HashSet<&'static str>>,
    /// Undos of bookings that outlived their lease and could not be applied yet (`booking`).
    pending_undos: Arc<std::sync::Mutex<Vec<booking::Pending>>>,
    /// Lists come in the server's natural order, which is insertion order there (no sort
    /// sent; see `find_all`).
    natural_order: bool,
    /// The time against which jobs and tasks expire (`expire_at`); leases keep to the
    /// server's clock instead (`lease`).
    clock: SharedClock,
}

impl std::fmt::Debug for MongoStore {
    // Only the database name: the client's options carry the connection string.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

/// Filter matching jobs that have not expired: no `expire_at` (or null), or one in the future.
fn live_job(now: DateTime<Utc>) -> Document {
    doc! { "$or": [ { "expire_at": Bson::Null }, { "expire_at": { "$gt": date(now) } } ] }
}

/// Adds `field: value` to a filter when the value is given and non-empty.
fn eq_if(filter: &mut Document, field: &str, value: &Option<String>) {
    if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
        filter.insert(field, v);
    }
}

/// Decodes a result list. A document that cannot be read (hand-edited, or written by a
/// foreign tool) is skipped with a warning so one bad record does not hide all the others.
fn decode_all<T>(
    collection: &str,
    docs: Vec<Document>,
    decode: fn(&Document) -> StoreResult<T>,
) -> Vec<T> {
    docs.iter()
        .filter_map(|d| match decode(d) {
            Ok(v) => Some(v),
            Err(e) => {
                let id = d.get("_id").map(ToString::to_string).unwrap_or_default();
                tracing::warn!(collection, _id = %id, error = %e, "skipping unreadable document");
                None
            }
        })
        .collect()
}

impl MongoStore {
    /// Connects to `uri`, checks the server answers, and creates the original's indexes
    /// (idempotent: identical to the ones the Python orchestrator creates).
    pub async fn connect(uri: &str, db_name: &str) -> StoreResult<MongoStore> {
        MongoStore::connect_with_clock(uri, db_name, crate::clock::system()).await
    }

    /// [`MongoStore::connect`] with jobs and tasks expiring by `clock` (a test clock in tests).
    pub async fn connect_with_clock(
        uri: &str,
        db_name: &str,
        clock: SharedClock,
    ) -> StoreResult<MongoStore> {
        validate_db_name(db_name)?;
        let secret = userinfo(uri);
        let opts = ClientOptions::parse(uri).await.map_err(|e| {
            StoreError::Unavailable(scrub(
                format!("invalid MongoDB connection string: {e}"),
                secret,
            ))
        })?;
        let (opts, warnings) = options::harden(opts);
        for w in &warnings {
            tracing::warn!("MongoDB: {w}");
        }
        tracing::info!(effective = %options::describe(&opts), "MongoDB client options");
        let hosts = opts
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let client = Client::with_options(opts)
            .map_err(|e| StoreError::Unavailable(scrub(e.to_string(), secret)))?;
        let mut store = MongoStore::with_database(client.database(db_name), clock);
        // Start-up stays bounded even with the long per-operation selection timeout.
        let first = tokio::time::timeout(options::STARTUP_TIMEOUT, store.ping_server()).await;
        let first = first.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no answer within {}s",
                options::STARTUP_TIMEOUT.as_secs()
            )))
        });
        first.map_err(|e| {
            StoreError::Unavailable(scrub(
                format!("cannot reach MongoDB at {hosts}: {e}"),
                secret,
            ))
        })?;
        let caps = store.probe_server().await;
        store.guarded = Arc::new(store.create_indexes(&caps).await?);
        store.natural_order = !caps.id_suffix_indexes;
        Ok(store)
    }

    fn with_database(db: Database, clock: SharedClock) -> MongoStore {
        MongoStore {
            config: db.collection(CONFIG),
            users: db.collection(USERS),
            nodes: db.collection(NODES),
            jobs: db.collection(JOBS),
            runs: db.collection(RUNS),
            tasks: db.collection(TASKS),
            leases: Arc::new(Leases::new(db.clone(), db.collection(LOCKS))),
            guarded: Arc::new(HashSet::new()),
            pending_undos: Arc::default(),
            natural_order: false,
            clock,
            db,
        }
    }

    /// Now by the store's clock.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Name of the database in use.
    pub fn database_name(&self) -> &str {
        self.db.name()
    }

    /// Every document matching `filter`, in insertion order, at most `limit`.
    ///
    /// The original sends its queries without a sort, so it answers in the order the server
    /// finds the documents. On MongoDB that is insertion order for a collection scan, but our
    /// extra indexes and expiry filters would change the plan and so the order: there we sort
    /// on `_id` (ObjectIds grow with insertion time: exactly within one writing process, to
    /// the second across processes), and the `{field: 1, _id: 1}` indexes answer the filter
    /// and the sort together (IXSCAN, no SORT stage, stops at the limit; see `indexes`).
    /// Where those indexes cannot be built (nx-27017, see `probe`) we send no sort, as the
    /// original: that server answers every filter in insertion order (a rowid scan of its
    /// SQLite table; updates stay in place), which is the order the original gets from it,
    /// while a sort there is an extra pass (an `_id`-index walk, or for filters on dates,
    /// such as live jobs and run time ranges, a sort of every match before the limit).
    async fn find_all(
        &self,
        coll: &Collection<Document>,
        filter: Document,
        limit: Option<i64>,
    ) -> StoreResult<Vec<Document>> {
        let mut find = coll.find(filter);
        if !self.natural_order {
            find = find.sort(doc! { "_id": 1 });
        }
        if let Some(n) = limit {
            find = find.limit(n);
        }
        find.await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl Store for MongoStore {
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
        // MongoDB's TTL monitor does this about once a minute; doing it here too keeps
        // servers without one (and the minute in between) tidy.
        // Undos a booking could not apply (`booking`): deletes only, no leases are held.
        let undone = self.apply_pending_undos(None).await;
        let expired = doc! { "expire_at": { "$lte": date(now) } };
        let t = retry::idempotent("purge", || {
            self.tasks.delete_many(expired.clone()).into_future()
        })
        .await?;
        let j = retry::idempotent("purge", || {
            self.jobs.delete_many(expired.clone()).into_future()
        })
        .await?;
        // Idempotent deletes: several replicas purging at once is harmless.
        let l = self.leases.purge().await?;
        Ok(t.deleted_count + j.deleted_count + l + undone)
    }

    async fn ping(&self) -> StoreResult<()> {
        // Health means "a booking could commit now": a majority write with a short wait, not
        // only an answer (a primary whose secondaries are down answers pings for ever, while
        // every majority write waits for its wtimeout and fails).
        let health = self.db.collection::<Document>(HEALTH);
        let probe = health
            .update_one(
                doc! { "_id": "probe" },
                doc! { "$currentDate": { "at": true } },
            )
            .upsert(true)
            .write_concern(options::majority(PROBE_WAIT));
        match tokio::time::timeout(PROBE_DEADLINE, probe.into_future()).await {
            Ok(res) => res.map(|_| ()).map_err(backend),
            Err(_) => Err(StoreError::Unavailable(format!(
                "health probe: no majority write within {}s",
                PROBE_DEADLINE.as_secs()
            ))),
        }
    }
}

impl MongoStore {
    /// A plain `ping` command: the server answers (start-up check).
    async fn ping_server(&self) -> StoreResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_server_fails_fast_with_a_clear_error() {
        // Port 9 (discard) is closed on test machines; the timeout is bounded by the URI.
        let err = MongoStore::connect(
            "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
            "leotest",
        )
        .await
        .expect_err("no server");
        match err {
            StoreError::Unavailable(msg) => assert!(msg.contains("127.0.0.1:9"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn credentials_never_appear_in_connect_errors() {
        let err = MongoStore::connect(
            "mongodb://leo:s3cret@127.0.0.1:9/?serverSelectionTimeoutMS=300",
            "leotest",
        )
        .await
        .expect_err("no server");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
