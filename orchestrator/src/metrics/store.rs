//! [`TimedStore`]: every [`Store`] operation timed (and its failures counted) under its own
//! method name, in one wrapper instead of timing code in every handler.
//!
//! It wraps the store the handlers and the auth layer use, so what it measures is what a
//! request waits for (for MongoDB, `get_user` answered by the user cache included).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Metrics;
use crate::store::model::*;
use crate::store::{Booked, Decide, Store, StoreResult};

/// A [`Store`] that records every call into [`Metrics`].
pub struct TimedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl TimedStore {
    /// `inner` behind the timing wrapper, as a shareable store.
    pub fn shared(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(TimedStore { inner, metrics })
    }
}

/// Implements every trait method as: start the clock, delegate, record under the method name.
macro_rules! timed {
    ($( $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty ; )*) => {
        #[async_trait]
        impl Store for TimedStore {
            $(
                async fn $name(&self, $( $arg: $ty ),*) -> $ret {
                    let t0 = Instant::now();
                    let r = self.inner.$name($( $arg ),*).await;
                    self.metrics.store_op(stringify!($name), t0, r.is_err());
                    r
                }
            )*
        }
    };
}

timed! {
    update_config(config: &GlobalConfig) -> StoreResult<()>;
    get_config() -> StoreResult<Option<GlobalConfig>>;
    add_user(user: &User) -> StoreResult<bool>;
    put_user(user: &User) -> StoreResult<()>;
    get_user(id: &str) -> StoreResult<Option<User>>;
    modify_user(id: &str, name: &str, role: Role, team: &str) -> StoreResult<bool>;
    delete_user(id: &str) -> StoreResult<bool>;
    claim_node_user(user: &User) -> StoreResult<bool>;
    delete_node_user(id: &str) -> StoreResult<bool>;
    list_users() -> StoreResult<Vec<User>>;
    register_node(node: &Node) -> StoreResult<bool>;
    get_node(nodeid: &str) -> StoreResult<Option<Node>>;
    get_nodes(filter: &NodeFilter) -> StoreResult<Vec<Node>>;
    update_node(nodeid: &str, update: &NodeUpdate) -> StoreResult<bool>;
    delete_node(nodeid: &str) -> StoreResult<bool>;
    mark_node(nodeid: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    set_scavenger_status(nodeid: &str, active: bool) -> StoreResult<bool>;
    get_scavenger_status(nodeid: &str) -> StoreResult<Option<bool>>;
    add_job(job: &Job) -> StoreResult<bool>;
    replace_job(job: &Job) -> StoreResult<bool>;
    get_job(id: &str) -> StoreResult<Option<Job>>;
    get_jobs_by_userid(userid: Option<&str>) -> StoreResult<Vec<Job>>;
    get_jobs_by_nodeid(nodeid: &str) -> StoreResult<Vec<Job>>;
    update_job_dates(id: &str, start_date: &str, end_date: &str) -> StoreResult<bool>;
    delete_job(id: &str) -> StoreResult<bool>;
    delete_job_of(id: &str, userid: &str) -> StoreResult<bool>;
    book(nodes: &[String], decide: &mut Decide<'_>) -> StoreResult<Booked>;
    delete_jobs_by_nodeid(nodeid: &str) -> StoreResult<u64>;
    update_run(run: &Run) -> StoreResult<()>;
    get_runs(filter: &RunFilter) -> StoreResult<Vec<Run>>;
    insert_jobs(jobs: &[Job]) -> StoreResult<u64>;
    insert_runs(runs: &[Run]) -> StoreResult<u64>;
    schedule_task(task: &Task) -> StoreResult<bool>;
    get_tasks(filter: &TaskFilter) -> StoreResult<Vec<Task>>;
    update_task(taskid: &str, status: i32) -> StoreResult<bool>;
    purge_expired(now: DateTime<Utc>) -> StoreResult<u64>;
    ping() -> StoreResult<()>;
}
