//! What the server really does with the indexes we ask for, found out once at start-up in a
//! scratch collection of our own (created, probed and dropped; a random name per process, so
//! replicas starting together do not meet).
//!
//! MongoDB enforces every unique index and accepts any compound index. MongoDB-wire servers
//! may not: nx-27017 accepts a unique index on a field named `id` without enforcing it, and an
//! index naming `_id` makes every later insert into its collection fail. The store then takes
//! the paths that are correct without them (leased inserts, plain lookup indexes).

use std::collections::HashSet;

use bson::{doc, oid::ObjectId, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::index_build::{build, Topology};
use super::{is_duplicate_key, MongoStore};

/// The key fields of our unique indexes.
pub(super) const KEY_FIELDS: [&str; 4] = ["id", "nodeid", "runid", "taskid"];

/// What the probe found.
pub(super) struct Capabilities {
    /// What kind of server this is.
    pub topology: Topology,
    /// Key fields whose unique index the server does not enforce (or could not be probed).
    pub unenforced: HashSet<&'static str>,
    /// Indexes such as `{jobid: 1, _id: 1}` can be built and written through.
    pub id_suffix_indexes: bool,
}

impl MongoStore {
    /// Probes the server (see the module doc). Anything that cannot be probed counts as
    /// missing: the fallbacks are correct everywhere, only slower.
    pub(super) async fn probe_server(&self) -> Capabilities {
        // A failed `hello` counts as standalone: builds then carry no commit quorum, which a
        // replica set accepts (it uses its default quorum, as before).
        let topology = match self.db.run_command(doc! { "hello": 1 }).await {
            Ok(reply) => Topology::of_hello(&reply),
            Err(e) => {
                tracing::warn!(error = %e, "hello failed: index builds name no commit quorum");
                Topology::Standalone
            }
        };
        let scratch: Collection<Document> = self
            .db
            .collection(&format!("leotest_probe_{}", ObjectId::new().to_hex()));
        let mut unenforced = HashSet::new();
        for field in KEY_FIELDS {
            if !unique_enforced(&scratch, field, topology).await {
                unenforced.insert(field);
            }
        }
        let id_suffix_indexes = id_suffix_ok(&scratch, topology).await;
        if let Err(e) = scratch.drop().await {
            tracing::warn!(error = %e, collection = scratch.name(), "probe collection left behind");
        }
        Capabilities {
            topology,
            unenforced,
            id_suffix_indexes,
        }
    }
}

/// Whether a second document with the key of a unique index on `field` is refused.
async fn unique_enforced(scratch: &Collection<Document>, field: &str, topology: Topology) -> bool {
    let index = IndexModel::builder()
        .keys(doc! { field: 1 })
        .options(IndexOptions::builder().unique(true).sparse(true).build())
        .build();
    // Bounded like every build (the collection has documents by the second field).
    if build(scratch, index, topology).await.is_err() {
        return false;
    }
    let one = || doc! { field: "probe" };
    match scratch.insert_one(one()).await {
        Ok(_) => matches!(scratch.insert_one(one()).await, Err(e) if is_duplicate_key(&e)),
        Err(_) => false,
    }
}

/// Whether an index ending in `_id` can be built and a document inserted under it.
async fn id_suffix_ok(scratch: &Collection<Document>, topology: Topology) -> bool {
    let index = IndexModel::builder()
        .keys(doc! { "suffix_probe": 1, "_id": 1 })
        .build();
    build(scratch, index, topology).await.is_ok()
        && scratch
            .insert_one(doc! { "suffix_probe": "probe" })
            .await
            .is_ok()
}
