//! Nodes in the embedded store (table `nodes`).

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::rows::*;
use super::schema::*;
use super::EmbeddedStore;
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn register_node(s: &EmbeddedStore, node: &Node) -> StoreResult<bool> {
    let n = node.clone();
    s.write(move |conn, _| {
        let inserted = conn.execute(
            &format!("INSERT OR IGNORE INTO nodes ({NODE_COLS}) VALUES ({NODE_PARAMS})"),
            params_from_iter(node_values(&n)),
        )?;
        Ok(inserted == 1)
    })
    .await
}

pub(super) async fn get_node(s: &EmbeddedStore, nodeid: &str) -> StoreResult<Option<Node>> {
    let nodeid = nodeid.to_string();
    s.read(move |conn| {
        Ok(conn
            .query_row(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE nodeid = ?1"),
                params![nodeid],
                node_from_row,
            )
            .optional()?)
    })
    .await
}

pub(super) async fn get_nodes(s: &EmbeddedStore, filter: &NodeFilter) -> StoreResult<Vec<Node>> {
    let mut c = Conditions::default();
    c.eq_text("nodeid", &filter.nodeid);
    c.eq_text("location", &filter.location);
    c.eq_text("name", &filter.name);
    c.eq_text("provider", &filter.provider);
    if let Some(since) = filter.active_since {
        c.push("last_active >= ?", Value::Integer(micros(since)));
    }
    s.read(move |conn| {
        let sql = format!(
            "SELECT {NODE_COLS} FROM nodes{} ORDER BY rowid",
            c.where_sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(c.values.iter()), node_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .await
}

pub(super) async fn update_node(
    s: &EmbeddedStore,
    nodeid: &str,
    update: &NodeUpdate,
) -> StoreResult<bool> {
    let mut sets: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut text = |col: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            sets.push(col);
            values.push(Value::Text(v.clone()));
        }
    };
    text("name = ?", &update.name);
    text("description = ?", &update.description);
    text("coords = ?", &update.coords);
    text("location = ?", &update.location);
    text("provider = ?", &update.provider);
    text("public_ip = ?", &update.public_ip);
    if let Some(t) = update.last_active {
        sets.push("last_active = ?");
        values.push(Value::Integer(micros(t)));
    }
    let nodeid = nodeid.to_string();
    s.write(move |conn, _| {
        if sets.is_empty() {
            let exists = conn
                .query_row(
                    "SELECT 1 FROM nodes WHERE nodeid = ?1",
                    params![nodeid],
                    |_| Ok(()),
                )
                .optional()?;
            return Ok(exists.is_some());
        }
        values.push(Value::Text(nodeid));
        let sql = format!("UPDATE nodes SET {} WHERE nodeid = ?", sets.join(", "));
        Ok(conn.execute(&sql, params_from_iter(values.iter()))? == 1)
    })
    .await
}

pub(super) async fn delete_node(s: &EmbeddedStore, nodeid: &str) -> StoreResult<bool> {
    let nodeid = nodeid.to_string();
    s.write(move |conn, _| {
        Ok(conn.execute("DELETE FROM nodes WHERE nodeid = ?1", params![nodeid])? == 1)
    })
    .await
}

pub(super) async fn mark_node(
    s: &EmbeddedStore,
    nodeid: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let nodeid = nodeid.to_string();
    s.write(move |conn, _| {
        Ok(conn.execute(
            "UPDATE nodes SET last_active = ?2 WHERE nodeid = ?1",
            params![nodeid, micros(at)],
        )? == 1)
    })
    .await
}

pub(super) async fn set_scavenger_status(
    s: &EmbeddedStore,
    nodeid: &str,
    active: bool,
) -> StoreResult<bool> {
    let nodeid = nodeid.to_string();
    s.write(move |conn, _| {
        Ok(conn.execute(
            "UPDATE nodes SET scavenger_mode_active = ?2 WHERE nodeid = ?1",
            params![nodeid, active],
        )? == 1)
    })
    .await
}

pub(super) async fn get_scavenger_status(
    s: &EmbeddedStore,
    nodeid: &str,
) -> StoreResult<Option<bool>> {
    let nodeid = nodeid.to_string();
    s.read(move |conn| {
        Ok(conn
            .query_row(
                "SELECT scavenger_mode_active FROM nodes WHERE nodeid = ?1",
                params![nodeid],
                |r| r.get(0),
            )
            .optional()?)
    })
    .await
}
