//! Persistence behind one [`Store`] trait: the embedded SQLite backend and MongoDB.
//!
//! Handlers only see this trait and the records in [`model`]; no BSON or SQL leaks out.

pub mod booking;
pub mod cached;
pub mod embedded;
pub(crate) mod methods;
pub mod model;
pub mod mongo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use booking::{Booked, BookingWrite, Decide};
pub use model::*;

/// Failure of the storage backend itself. "Not found" and "already exists" are not errors:
/// they are ordinary outcomes returned as `Option` / `bool` by the trait methods.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or opened.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A query or write failed inside the backend.
    #[error("store backend error: {0}")]
    Backend(String),
    /// A stored record cannot be read back as a domain record.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the orchestrator persists. Implementations must be safe to share across tasks.
///
/// Contract common to all methods:
/// * string arguments are compared exactly (case-sensitive);
/// * records with an `expire_at` in the past (tasks, jobs) are invisible to every read and
///   update, even before a backend's TTL purge has removed them;
/// * lists come back in insertion order, the original's (MongoDB's natural order: it never
///   sorts);
/// * timestamps are kept at millisecond precision, cut toward the past (MongoDB dates), so
///   `00:10:32.910943` reads back as `00:10:32.910`;
/// * `bool` results mean "a record matched" (insert: "was inserted", i.e. the id was free).
#[async_trait]
pub trait Store: Send + Sync {
    // ---- global config -------------------------------------------------------------------

    /// Upserts the single config document, replacing each section that is `Some`.
    async fn update_config(&self, config: &GlobalConfig) -> StoreResult<()>;

    /// The config document, `None` before the first update.
    async fn get_config(&self) -> StoreResult<Option<GlobalConfig>>;

    // ---- users ---------------------------------------------------------------------------

    /// Inserts a user; `false` (and no change) if the id is taken.
    async fn add_user(&self, user: &User) -> StoreResult<bool>;

    /// Inserts or fully replaces a user (admin bootstrap at start-up).
    async fn put_user(&self, user: &User) -> StoreResult<()>;

    /// The user with this id. Hot path of authentication: keep it fast.
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;

    /// Sets name, role and team of an existing user, keeping its tokens; `false` if absent.
    async fn modify_user(&self, id: &str, name: &str, role: Role, team: &str) -> StoreResult<bool>;

    /// Deletes a user; `false` if absent.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;

    /// A node's identity at registration, as one conditional write per step so that a user
    /// registered at the same moment (another replica) is never overwritten: a NODE user of
    /// `user.id` gets `user.static_access_token` as its second token (its first one, which
    /// agents may be configured with, is kept, as the original did); with no user of that id,
    /// `user` is inserted; a user of any other role is left alone and the result is `false`.
    async fn claim_node_user(&self, user: &User) -> StoreResult<bool>;

    /// Deletes the user of this id only if its role is NODE (a node's identity, never a
    /// person's account that shares the id); `false` if there was none.
    async fn delete_node_user(&self, id: &str) -> StoreResult<bool>;

    /// Every user, ordered by id (token audit at start-up and `tokens audit`; no RPC).
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    // ---- nodes ---------------------------------------------------------------------------

    /// Inserts a node; `false` (and no change) if the nodeid is taken.
    async fn register_node(&self, node: &Node) -> StoreResult<bool>;

    /// The node with this id.
    async fn get_node(&self, nodeid: &str) -> StoreResult<Option<Node>>;

    /// Nodes matching every given filter, in insertion order.
    async fn get_nodes(&self, filter: &NodeFilter) -> StoreResult<Vec<Node>>;

    /// Applies the `Some` fields of `update`; `false` if the node is absent.
    async fn update_node(&self, nodeid: &str, update: &NodeUpdate) -> StoreResult<bool>;

    /// Deletes a node (not its jobs, not its user); `false` if absent.
    async fn delete_node(&self, nodeid: &str) -> StoreResult<bool>;

    /// Heartbeat: sets `last_active = at`; `false` if the node is absent.
    async fn mark_node(&self, nodeid: &str, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Sets `scavenger_mode_active`; `false` if the node is absent.
    async fn set_scavenger_status(&self, nodeid: &str, active: bool) -> StoreResult<bool>;

    /// `Some(scavenger_mode_active)` of the node, `None` if absent.
    async fn get_scavenger_status(&self, nodeid: &str) -> StoreResult<Option<bool>>;

    // ---- jobs ----------------------------------------------------------------------------

    /// Inserts a job; `false` (and no change) if the id is taken.
    async fn add_job(&self, job: &Job) -> StoreResult<bool>;

    /// Replaces every field of an existing job (matched by `job.id`); `false` if absent.
    async fn replace_job(&self, job: &Job) -> StoreResult<bool>;

    /// The job with this id.
    async fn get_job(&self, id: &str) -> StoreResult<Option<Job>>;

    /// Jobs of a user, or all jobs when `userid` is `None`; in insertion order.
    async fn get_jobs_by_userid(&self, userid: Option<&str>) -> StoreResult<Vec<Job>>;

    /// Jobs whose `nodeid` OR `server` is this node (as the original's `$or`); in insertion
    /// order.
    async fn get_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<Vec<Job>>;

    /// Sets `start_date` / `end_date` (strings, as the original) of a job; `false` if absent.
    async fn update_job_dates(
        &self,
        id: &str,
        start_date: &str,
        end_date: &str,
    ) -> StoreResult<bool>;

    /// Deletes a job; `false` if absent.
    async fn delete_job(&self, id: &str) -> StoreResult<bool>;

    /// Deletes a job only if `userid` owns it, in one step (no window in which the id could
    /// be freed and taken by someone else's job); `false` if absent or owned by another user.
    async fn delete_job_of(&self, id: &str, userid: &str) -> StoreResult<bool>;

    /// Books time on nodes atomically: while `decide` looks at the live jobs of each of
    /// `nodes` and picks a write, and until that write is applied, no other booking touching
    /// any of these nodes runs, in this process or in any other process sharing the store.
    /// Every write that books time on a node (schedule, reschedule) goes through here.
    async fn book(&self, nodes: &[String], decide: &mut Decide<'_>) -> StoreResult<Booked>;

    /// Deletes the jobs whose `nodeid` is this node (not `server`); returns how many.
    async fn delete_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<u64>;

    // ---- runs ----------------------------------------------------------------------------

    /// Inserts or replaces the run with `run.runid`.
    async fn update_run(&self, run: &Run) -> StoreResult<()>;

    /// Runs matching every filter, in insertion order (an updated run keeps its place), the
    /// first `limit` of them.
    async fn get_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>>;

    // ---- bulk load -----------------------------------------------------------------------
    // For loaders (scale test, benchmark, migrations), not reachable through any RPC: one
    // batched write per call instead of one durable write per record. Records keep the
    // layout the single-record methods write. Pass batches of a few thousand records.

    /// Inserts jobs whose id is free (like [`Store::add_job`], without reusing the ids of
    /// expired jobs); returns how many were inserted.
    async fn insert_jobs(&self, jobs: &[Job]) -> StoreResult<u64>;

    /// Inserts runs whose runid is not stored yet (existing runs are left unchanged); returns
    /// how many were inserted.
    async fn insert_runs(&self, runs: &[Run]) -> StoreResult<u64>;

    // ---- tasks ---------------------------------------------------------------------------

    /// Inserts a task; `false` (and no change) if a live task has this taskid.
    async fn schedule_task(&self, task: &Task) -> StoreResult<bool>;

    /// Live (unexpired) tasks matching every filter, in insertion order.
    async fn get_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>>;

    /// Sets the status of a live task; `false` if absent or expired.
    async fn update_task(&self, taskid: &str, status: i32) -> StoreResult<bool>;

    // ---- housekeeping --------------------------------------------------------------------

    /// Physically removes records whose `expire_at <= now`; returns how many. Backends with
    /// a native TTL may rely on it and return 0.
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Health probe: `Ok` while the backend can commit a write now (embedded: the database
    /// answers; MongoDB: a majority write of a probe document within a short wait). Run
    /// every few seconds by the health service, never on a request path.
    async fn ping(&self) -> StoreResult<()>;
}
