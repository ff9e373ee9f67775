//! One index build, bounded in time, with the createIndexes options the kind of server calls for.
//!
//! Every build is bounded: on a replica set MongoDB (4.4+) commits a new index only when its
//! commit quorum of members has built it, and the default quorum is every data-bearing voting
//! member, so with one secondary down a first start would wait for ever (createIndexes has no
//! time-out of its own). We ask for `commitQuorum: "majority"` (the same members a `w:
//! majority` write needs, which a booking needs anyway) and `maxTimeMS` ([`BUILD_TIME`]); a
//! build that does not commit in time is aborted by the server (an interrupted createIndexes
//! aborts its build, MongoDB 4.4.0+) and start-up fails with [`build_timed_out`]'s message.
//! A standalone server refuses `commitQuorum` (it has no quorum), so it is sent only to a
//! replica-set member or a `mongos` ([`Topology`], from `hello`), and a server that refuses it
//! anyway is asked again without it.
//!
//! Both the start-up indexes (`indexes`) and the capability probe's scratch indexes (`probe`)
//! are built here.

use std::time::Duration;

use bson::Document;
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{CommitQuorum, CreateIndexOptions};
use mongodb::{Collection, IndexModel};

use crate::store::{StoreError, StoreResult};

/// What kind of server answered `hello` (decides whether index builds name a commit quorum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Topology {
    /// No replica set (a standalone `mongod`, or a MongoDB-wire server such as nx-27017).
    Standalone,
    /// A replica-set member (`hello` names the set).
    ReplicaSet,
    /// A sharded cluster's router.
    Mongos,
}

impl Topology {
    /// The kind of server from its `hello` reply.
    pub(super) fn of_hello(reply: &Document) -> Topology {
        if reply.get_str("msg").is_ok_and(|m| m == "isdbgrid") {
            Topology::Mongos
        } else if reply.get_str("setName").is_ok() {
            Topology::ReplicaSet
        } else {
            Topology::Standalone
        }
    }
}

/// The longest one index build may take before start-up gives up (a server-side bound,
/// `maxTimeMS`). Builds on an empty or already indexed database take milliseconds; this
/// leaves room for a first start on a large database the original filled.
const BUILD_TIME: Duration = Duration::from_secs(120);

/// How long we wait beyond [`BUILD_TIME`] for the server's answer before giving up on it.
const BUILD_GRACE: Duration = Duration::from_secs(15);

/// MongoDB's MaxTimeMSExpired error code.
const MAX_TIME_EXPIRED: i32 = 50;

/// The createIndexes options of every build on a server of this kind: a bounded time always,
/// the majority commit quorum where there is a quorum (see the module doc).
fn build_options(topology: Topology) -> CreateIndexOptions {
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
fn build_timed_out(collection: &str, quorum: bool) -> String {
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

#[cfg(test)]
mod tests {
    use bson::doc;

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
