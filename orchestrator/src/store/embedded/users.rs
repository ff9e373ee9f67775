//! Users in the embedded store (table `users`, all of them also kept in memory), including
//! node identities: the conditional user writes of `register_node` and `delete_node`
//! (`Store::claim_node_user`, `Store::delete_node_user`).
//!
//! Each runs as one closure on the writing connection, so nothing can change the row between
//! its check and its write; the in-memory user map is updated under the same lock.

use rusqlite::params;

use super::rows::*;
use super::{lock_err, EmbeddedStore};
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn claim_node_user(s: &EmbeddedStore, user: &User) -> StoreResult<bool> {
    let user = user.clone();
    s.write(move |conn, inner| {
        let tx = conn.transaction()?;
        let node = Role::Node.as_i32();
        let kept = tx.execute(
            "UPDATE users SET access_token = ?2 WHERE id = ?1 AND role = ?3",
            params![user.id, user.static_access_token, node],
        )? == 1;
        let inserted = !kept && insert_user(&tx, &user, false)? == 1;
        tx.commit()?;
        let mut users = inner.users.write().map_err(lock_err)?;
        if kept {
            if let Some(u) = users.get_mut(&user.id) {
                u.access_token = user.static_access_token.clone();
            }
        } else if inserted {
            users.insert(user.id.clone(), user);
        }
        Ok(kept || inserted)
    })
    .await
}

pub(super) async fn delete_node_user(s: &EmbeddedStore, id: &str) -> StoreResult<bool> {
    let id = id.to_string();
    s.write(move |conn, inner| {
        let deleted = conn.execute(
            "DELETE FROM users WHERE id = ?1 AND role = ?2",
            params![id, Role::Node.as_i32()],
        )? == 1;
        if deleted {
            inner.users.write().map_err(lock_err)?.remove(&id);
        }
        Ok(deleted)
    })
    .await
}

pub(super) async fn add_user(s: &EmbeddedStore, user: &User) -> StoreResult<bool> {
    let user = user.clone();
    s.write(move |conn, inner| {
        let inserted = insert_user(conn, &user, false)? == 1;
        if inserted {
            inner
                .users
                .write()
                .map_err(lock_err)?
                .insert(user.id.clone(), user);
        }
        Ok(inserted)
    })
    .await
}

pub(super) async fn put_user(s: &EmbeddedStore, user: &User) -> StoreResult<()> {
    let user = user.clone();
    s.write(move |conn, inner| {
        insert_user(conn, &user, true)?;
        inner
            .users
            .write()
            .map_err(lock_err)?
            .insert(user.id.clone(), user);
        Ok(())
    })
    .await
}

pub(super) async fn get_user(s: &EmbeddedStore, id: &str) -> StoreResult<Option<User>> {
    // Served from memory: the cache is updated under the writer lock on every change.
    let users = s.inner.users.read().map_err(lock_err)?;
    Ok(users.get(id).cloned())
}

pub(super) async fn modify_user(
    s: &EmbeddedStore,
    id: &str,
    name: &str,
    role: Role,
    team: &str,
) -> StoreResult<bool> {
    let (id, name, team) = (id.to_string(), name.to_string(), team.to_string());
    s.write(move |conn, inner| {
        let changed = conn.execute(
            "UPDATE users SET name = ?2, role = ?3, team = ?4 WHERE id = ?1",
            params![id, name, role.as_i32(), team],
        )? == 1;
        if changed {
            let mut users = inner.users.write().map_err(lock_err)?;
            if let Some(u) = users.get_mut(&id) {
                u.name = name;
                u.role = role;
                u.team = team;
            }
        }
        Ok(changed)
    })
    .await
}

pub(super) async fn delete_user(s: &EmbeddedStore, id: &str) -> StoreResult<bool> {
    let id = id.to_string();
    s.write(move |conn, inner| {
        let deleted = conn.execute("DELETE FROM users WHERE id = ?1", params![id])? == 1;
        inner.users.write().map_err(lock_err)?.remove(&id);
        Ok(deleted)
    })
    .await
}

pub(super) async fn list_users(s: &EmbeddedStore) -> StoreResult<Vec<User>> {
    let users = s.inner.users.read().map_err(lock_err)?;
    let mut all: Vec<User> = users.values().cloned().collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(all)
}
