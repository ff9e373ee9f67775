//! Index creation: the original's indexes exactly, plus our unique and lookup indexes, each
//! built through [`super::index_build::build`] (bounded in time; see there).

use std::collections::HashSet;
use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::codec::{CONFIG, JOBS, NODES, RUNS, TASKS, USERS};
use super::index_build::build;
use super::probe::Capabilities;
use super::MongoStore;
use crate::store::StoreResult;

impl MongoStore {
    /// Creates the original's indexes (errors are fatal) and ours (best effort); returns the
    /// collections whose unique key index could not be built, where "insert unless the key
    /// exists" must be guarded by a lease instead.
    /// `caps`: what the server does with them (`probe`); a unique index it does not enforce
    /// counts as missing.
    pub(super) async fn create_indexes(
        &self,
        caps: &Capabilities,
    ) -> StoreResult<HashSet<&'static str>> {
        let ttl = || {
            IndexModel::builder()
                .keys(doc! { "expire_at": 1 })
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::from_secs(0))
                        .build(),
                )
                .build()
        };
        let named = |keys: Document, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_string()).build())
                .build()
        };
        // Exactly the original's indexes: same keys, names and options, so creating them on
        // a database the Python orchestrator made is a no-op.
        let original = [
            (&self.jobs, ttl()),
            (
                &self.runs,
                named(
                    doc! { "jobid": 1, "nodeid": 1, "start_time": -1 },
                    "run_query_index",
                ),
            ),
            (
                &self.nodes,
                named(doc! { "nodeid": 1, "last_active": -1 }, "node_query_index"),
            ),
            (&self.tasks, ttl()),
        ];
        for (coll, index) in original {
            build(coll, index, caps.topology).await?;
        }
        // Indexes the original lacks (it scans). The unique ones make "insert unless the id
        // exists" atomic across concurrent writers; on a database where the original left
        // duplicates they cannot be built, so all of these are best effort, and where a
        // unique one fails the inserts of that collection take a lease instead.
        let unique = [
            (&self.config, "id"),
            (&self.users, "id"),
            (&self.nodes, "nodeid"),
            (&self.jobs, "id"),
            (&self.runs, "runid"),
            (&self.tasks, "taskid"),
        ];
        let mut guarded = HashSet::new();
        for (coll, key) in unique {
            let index = IndexModel::builder()
                .keys(doc! { key: 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build();
            if let Err(e) = build(coll, index, caps.topology).await {
                tracing::warn!(
                    collection = coll.name(),
                    error = %e,
                    "unique index not created: inserts into this collection take a lease"
                );
                guarded.insert(collection_name(coll.name()));
            } else if caps.unenforced.contains(key) {
                tracing::warn!(
                    collection = coll.name(),
                    "this server does not enforce the unique index on {key}: inserts into \
                     this collection take a lease"
                );
                guarded.insert(collection_name(coll.name()));
            }
        }
        // The expected plan of each list query (order: insertion, see
        // `MongoStore::find_all`).
        // MongoDB (this probe passes): each sorts on `_id` after an equality filter, and
        // `{field: 1, _id: 1}` answers both, so the plan is an IXSCAN that stops at the
        // limit, with no SORT stage (over all of a job's runs, say):
        //   runs  {jobid}, {nodeid}, {userid}: IXSCAN {field:1,_id:1} (+ start_time range
        //         as a residual filter); {runid}: IXSCAN runid_1 (one document)
        //   jobs  {userid}: IXSCAN; of a node: {nodeid} $or {server}, two IXSCANs merged
        //         in _id order (SORT_MERGE); live filter (expire_at) residual
        //   tasks {nodeid}, {jobid}, {runid}: IXSCAN (+ expire_at residual); {taskid}:
        //         taskid_1 (one document, SORT of one)
        //   nodes by nodeid: node_query_index (one document); users, all nodes, all jobs,
        //         all tasks: COLLSCAN + SORT (no filter to serve: the whole, small,
        //         collection is read anyway)
        // nx-27017 (an index naming `_id` breaks its inserts, so plain lookup indexes
        // instead): no sort is sent; it answers from a scan of its SQLite table in rowid
        // (insertion) order, as it answers the original, which sends no sort either.
        let lookup: Vec<(&Collection<Document>, Document)> = if caps.id_suffix_indexes {
            vec![
                (&self.jobs, doc! { "nodeid": 1, "_id": 1 }),
                (&self.jobs, doc! { "server": 1, "_id": 1 }),
                (&self.jobs, doc! { "userid": 1, "_id": 1 }),
                (&self.runs, doc! { "jobid": 1, "_id": 1 }),
                (&self.runs, doc! { "nodeid": 1, "_id": 1 }),
                (&self.runs, doc! { "userid": 1, "_id": 1 }),
                (&self.tasks, doc! { "nodeid": 1, "_id": 1 }),
                (&self.tasks, doc! { "jobid": 1, "_id": 1 }),
                (&self.tasks, doc! { "runid": 1, "_id": 1 }),
            ]
        } else {
            vec![
                (&self.jobs, doc! { "nodeid": 1 }),
                (&self.jobs, doc! { "server": 1 }),
                (&self.jobs, doc! { "userid": 1 }),
            ]
        };
        for (coll, keys) in lookup {
            if let Err(e) = build(
                coll,
                IndexModel::builder().keys(keys).build(),
                caps.topology,
            )
            .await
            {
                tracing::warn!(collection = coll.name(), error = %e, "extra index not created");
            }
        }
        Ok(guarded)
    }
}

/// The static name of one of our collections (for the guarded set).
fn collection_name(name: &str) -> &'static str {
    [CONFIG, USERS, NODES, JOBS, RUNS, TASKS]
        .into_iter()
        .find(|c| *c == name)
        .unwrap_or(JOBS)
}
