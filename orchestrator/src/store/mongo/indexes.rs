//! Index creation: the original's indexes exactly, plus our unique and lookup indexes.

use std::collections::HashSet;
use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::codec::{CONFIG, JOBS, NODES, RUNS, TASKS, USERS};
use super::probe::Capabilities;
use super::MongoStore;
use crate::store::{StoreError, StoreResult};

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
            coll.create_index(index).await.map_err(|e| {
                StoreError::Backend(format!("creating index on {}: {e}", coll.name()))
            })?;
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
            if let Err(e) = coll.create_index(index).await {
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
        // Every list query sorts on `_id` (insertion order, see `MongoStore::find_all`) after
        // an equality filter: `{field: 1, _id: 1}` answers both, so the plan is an IXSCAN
        // that stops at the limit, with no SORT stage over all of a job's runs:
        //   runs  {jobid}, {nodeid}, {userid} (+ start_time range as a residual filter)
        //   jobs  {userid}; {nodeid} $or {server} (two IXSCANs merged in _id order)
        //   tasks {nodeid}, {jobid}, {runid}  (+ expire_at, residual)
        // A query on `runid`/`taskid`/`id` alone reads one document (unique index).
        // Where an index naming `_id` cannot be written through (nx-27017, see `probe`), the
        // plain lookup indexes instead.
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
            if let Err(e) = coll
                .create_index(IndexModel::builder().keys(keys).build())
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
