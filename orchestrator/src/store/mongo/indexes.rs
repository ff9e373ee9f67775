//! Index creation: the original's indexes exactly, plus our unique and lookup indexes.
//!
//! Every build is bounded: on a replica set MongoDB (4.4+) commits a new index only when its
//! commit quorum of members has built it, and the default quorum is every data-bearing voting
//! member, so with one secondary down a first start would wait for ever (createIndexes has no
//! time-out of its own). We ask for `commitQuorum: "majority"` (the same members a `w:
//! majority` write needs, which a booking needs anyway) and `maxTimeMS` ([`BUILD_TIME`]); a
//! build that does not commit in time is aborted by the server (an interrupted createIndexes
//! aborts its build, MongoDB 4.4.0+) and start-up fails with [`build_timed_out`]'s message.
//! A standalone server refuses `commitQuorum` (it has no quorum), so it is sent only to a
//! replica-set member or a `mongos` (from `hello`, see `probe`), and a server that refuses it
//! anyway is asked again without it.

use std::collections::HashSet;
use std::time::Duration;

use bson::{doc, Document};
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{CommitQuorum, CreateIndexOptions, IndexOptions};
use mongodb::{Collection, IndexModel};

use super::codec::{CONFIG, JOBS, NODES, RUNS, TASKS, USERS};
use super::probe::{Capabilities, Topology};
use super::MongoStore;
use crate::store::{StoreError, StoreResult};

/// The longest one index build may take before start-up gives up (a server-side bound,
/// `maxTimeMS`). Builds on an empty or already indexed database take milliseconds; this
/// leaves room for a first start on a large database the original filled.
pub(super) const BUILD_TIME: Duration = Duration::from_secs(120);

/// How long we wait beyond [`BUILD_TIME`] for the server's answer before giving up on it.
const BUILD_GRACE: Duration = Duration::from_secs(15);

/// MongoDB's MaxTimeMSExpired error code.
const MAX_TIME_EXPIRED: i32 = 50;

/// The createIndexes options of every build on a server of this kind: a bounded time always,
/// the majority commit quorum where there is a quorum (see the module doc).
pub(super) fn build_options(topology: Topology) -> CreateIndexOptions {
    let quorum = match topology {
        Topology::ReplicaSet | Topology::Mongos => Some(CommitQuorum::Majority),
        Topology::Standalone => None,
    };
    CreateIndexOptions::builder()
        .commit_quorum(quorum)
        .max_time(BUILD_TIME)
        .build()
}

/// The start-up error of a build that did not commit within [`BUILD_TIME`].
pub(super) fn build_timed_out(collection: &str, quorum: bool) -> String {
    let why = if quorum {
        "a majority of the replica set's data-bearing voting members must build it: check \
         that they are up and not lagging"
    } else {
        "the server did not finish it"
    };
    format!(
        "building an index on {collection} did not commit within {}s ({why}); the server \
         aborted the build, start again when the set is healthy or create the indexes \
         beforehand (docs/compatibility.md)",
        BUILD_TIME.as_secs()
    )
}

/// Whether the server refused the `commitQuorum` option itself (standalone, or a server
/// that does not know it).
fn quorum_refused(e: &MongoError) -> bool {
    matches!(&*e.kind, ErrorKind::Command(c) if c.message.contains("commitQuorum"))
}

/// Whether a build ran out of its `maxTimeMS`.
fn timed_out(e: &MongoError) -> bool {
    matches!(&*e.kind, ErrorKind::Command(c) if c.code == MAX_TIME_EXPIRED)
}

/// One index build with [`build_options`]; without the commit quorum if the server refuses
/// it. A build that runs out of time is a `StoreError::Unavailable` with
/// [`build_timed_out`]'s message.
pub(super) async fn build(
    coll: &Collection<Document>,
    index: IndexModel,
    topology: Topology,
) -> StoreResult<()> {
    let opts = build_options(topology);
    let quorum = opts.commit_quorum.is_some();
    let first = bounded(coll, index.clone(), opts).await;
    let res = match first {
        Err(Bounded::Server(e)) if quorum && quorum_refused(&e) => {
            tracing::warn!(
                collection = coll.name(),
                error = %e,
                "the server refused commitQuorum: building without it"
            );
            bounded(coll, index, build_options(Topology::Standalone)).await
        }
        other => other,
    };
    match res {
        Ok(()) => Ok(()),
        Err(Bounded::Server(e)) if timed_out(&e) => Err(StoreError::Unavailable(build_timed_out(
            coll.name(),
            quorum,
        ))),
        Err(Bounded::NoAnswer) => Err(StoreError::Unavailable(build_timed_out(
            coll.name(),
            quorum,
        ))),
        Err(Bounded::Server(e)) => Err(StoreError::Backend(format!(
            "creating index on {}: {e}",
            coll.name()
        ))),
    }
}

enum Bounded {
    Server(MongoError),
    NoAnswer,
}

/// `create_index` with `opts`, also bounded on our side (a server that never answers).
async fn bounded(
    coll: &Collection<Document>,
    index: IndexModel,
    opts: CreateIndexOptions,
) -> Result<(), Bounded> {
    let op = coll.create_index(index).with_options(opts);
    match tokio::time::timeout(BUILD_TIME + BUILD_GRACE, op).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Bounded::Server(e)),
        Err(_) => Err(Bounded::NoAnswer),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The createIndexes fields our options add to the command (what the driver appends).
    fn sent(topology: Topology) -> Document {
        bson::to_document(&build_options(topology)).expect("options serialize")
    }

    #[test]
    fn replica_set_builds_ask_for_a_majority_quorum_and_a_time_limit() {
        let want_ms = i64::try_from(BUILD_TIME.as_millis()).expect("fits");
        for topology in [Topology::ReplicaSet, Topology::Mongos] {
            let cmd = sent(topology);
            assert_eq!(cmd.get_str("commitQuorum"), Ok("majority"), "{cmd}");
            let ms = match cmd.get("maxTimeMS") {
                Some(bson::Bson::Int32(n)) => Some(i64::from(*n)),
                Some(bson::Bson::Int64(n)) => Some(*n),
                _ => None,
            };
            assert_eq!(ms, Some(want_ms), "{cmd}");
        }
    }

    #[test]
    fn standalone_builds_name_no_quorum_but_keep_the_time_limit() {
        let cmd = sent(Topology::Standalone);
        assert!(!cmd.contains_key("commitQuorum"), "{cmd}");
        assert!(cmd.contains_key("maxTimeMS"), "{cmd}");
    }

    #[test]
    fn topology_comes_from_hello() {
        assert_eq!(
            Topology::of_hello(&doc! { "isWritablePrimary": true, "setName": "rs0" }),
            Topology::ReplicaSet
        );
        assert_eq!(
            Topology::of_hello(&doc! { "isWritablePrimary": true, "msg": "isdbgrid" }),
            Topology::Mongos
        );
        assert_eq!(
            Topology::of_hello(&doc! { "isWritablePrimary": true }),
            Topology::Standalone
        );
    }

    #[test]
    fn the_time_out_error_says_what_to_check() {
        let msg = build_timed_out("runs", true);
        assert!(msg.contains("runs") && msg.contains("majority"), "{msg}");
        assert!(msg.contains(&BUILD_TIME.as_secs().to_string()), "{msg}");
    }
}
