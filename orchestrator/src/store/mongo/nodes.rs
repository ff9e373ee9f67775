//! Nodes in the MongoDB store (collection `nodes`).

use std::future::IntoFuture;

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};

use super::codec::{self, date, NODES};
use super::{backend, decode_all, eq_if, retry, MongoStore};
use crate::store::model::*;
use crate::store::{StoreError, StoreResult};

pub(super) async fn register_node(s: &MongoStore, node: &Node) -> StoreResult<bool> {
    Ok(s.insert_if_absent(
        &s.nodes,
        doc! { "nodeid": &node.nodeid },
        codec::node_doc(node),
    )
    .await?
    .is_some())
}

pub(super) async fn get_node(s: &MongoStore, nodeid: &str) -> StoreResult<Option<Node>> {
    let found = s
        .nodes
        .find_one(doc! { "nodeid": nodeid })
        .await
        .map_err(backend)?;
    found.as_ref().map(codec::node_from).transpose()
}

pub(super) async fn get_nodes(s: &MongoStore, filter: &NodeFilter) -> StoreResult<Vec<Node>> {
    let mut q = Document::new();
    eq_if(&mut q, "nodeid", &filter.nodeid);
    eq_if(&mut q, "location", &filter.location);
    eq_if(&mut q, "name", &filter.name);
    eq_if(&mut q, "provider", &filter.provider);
    if let Some(since) = filter.active_since {
        q.insert("last_active", doc! { "$gte": date(since) });
    }
    let docs = s.find_all(&s.nodes, q, None).await?;
    Ok(decode_all(NODES, docs, codec::node_from))
}

pub(super) async fn update_node(
    s: &MongoStore,
    nodeid: &str,
    update: &NodeUpdate,
) -> StoreResult<bool> {
    let set = codec::node_update_set(update);
    if set.is_empty() {
        return Ok(get_node(s, nodeid).await?.is_some());
    }
    let res = s
        .nodes
        .update_one(doc! { "nodeid": nodeid }, doc! { "$set": set })
        .await
        .map_err(backend)?;
    Ok(res.matched_count > 0)
}

pub(super) async fn delete_node(s: &MongoStore, nodeid: &str) -> StoreResult<bool> {
    let res = retry::idempotent("delete_node", || {
        s.nodes.delete_many(doc! { "nodeid": nodeid }).into_future()
    })
    .await?;
    Ok(res.deleted_count > 0)
}

pub(super) async fn mark_node(
    s: &MongoStore,
    nodeid: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let res = s
        .nodes
        .update_one(
            doc! { "nodeid": nodeid },
            doc! { "$set": { "last_active": date(at) } },
        )
        .await
        .map_err(backend)?;
    Ok(res.matched_count > 0)
}

pub(super) async fn set_scavenger_status(
    s: &MongoStore,
    nodeid: &str,
    active: bool,
) -> StoreResult<bool> {
    let res = s
        .nodes
        .update_one(
            doc! { "nodeid": nodeid },
            doc! { "$set": { "scavenger_mode_active": active } },
        )
        .await
        .map_err(backend)?;
    Ok(res.matched_count > 0)
}

pub(super) async fn get_scavenger_status(
    s: &MongoStore,
    nodeid: &str,
) -> StoreResult<Option<bool>> {
    let found = s
        .nodes
        .find_one(doc! { "nodeid": nodeid })
        .await
        .map_err(backend)?;
    match found {
        None => Ok(None),
        Some(d) => match d.get("scavenger_mode_active") {
            None | Some(Bson::Null) => Ok(Some(false)),
            Some(v) => codec::as_bool(v).map(Some).ok_or_else(|| {
                StoreError::Corrupt("nodes.scavenger_mode_active: not a boolean".to_string())
            }),
        },
    }
}
