//! Every [`Store`](super::Store) method's signature, listed once, so that the layers which
//! pass calls through to an inner store (the user cache, the timing wrapper) are generated
//! from one list instead of each writing out the 38 methods again.
//!
//! `for_each_store_method!(callback!(args...))` expands to
//! `callback! { args... users { ... } others { ... } }`, each group a list of
//! `name(arg: Type, ...) -> Return;`. The users group is what the user cache serves or
//! invalidates itself; a method added to the trait and not to this list fails to compile in
//! both layers (a missing trait item), so the list cannot drift from the trait.

/// Calls the given macro with the list of store methods; see the module documentation.
macro_rules! for_each_store_method {
    ($callback:ident ! ( $($args:tt)* )) => {
        $callback! {
            $($args)*
            users {
                add_user(user: &User) -> StoreResult<bool>;
                put_user(user: &User) -> StoreResult<()>;
                get_user(id: &str) -> StoreResult<Option<User>>;
                modify_user(id: &str, name: &str, role: Role, team: &str) -> StoreResult<bool>;
                delete_user(id: &str) -> StoreResult<bool>;
                claim_node_user(user: &User) -> StoreResult<bool>;
                delete_node_user(id: &str) -> StoreResult<bool>;
            }
            others {
                list_users() -> StoreResult<Vec<User>>;
                update_config(config: &GlobalConfig) -> StoreResult<()>;
                get_config() -> StoreResult<Option<GlobalConfig>>;
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
        }
    };
}

/// `impl Store for $ty`: the users group written by hand (`$($own)*`), every other method
/// passed to `self.inner()`, a method of `$ty` returning the wrapped store.
macro_rules! impl_store_passing_others {
    (
        $ty:ty, { $($own:tt)* }
        users { $( $u:ident ( $( $ua:ident : $ut:ty ),* ) -> $ur:ty ; )* }
        others { $( $name:ident ( $( $arg:ident : $at:ty ),* ) -> $ret:ty ; )* }
    ) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $ty {
            $($own)*
            $(
                async fn $name(&self, $( $arg: $at ),*) -> $ret {
                    self.inner().$name($( $arg ),*).await
                }
            )*
        }
    };
}

pub(crate) use {for_each_store_method, impl_store_passing_others};
