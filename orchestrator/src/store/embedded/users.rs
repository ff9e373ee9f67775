//! Node identities in the embedded store: the conditional user writes of `register_node` and
//! `delete_node` (`Store::claim_node_user`, `Store::delete_node_user`).
//!
//! Each runs as one closure on the writing connection, so nothing can change the row between
//! its check and its write; the in-memory user map is updated under the same lock.

use rusqlite::params;

use super::rows::insert_user;
use super::{lock_err, EmbeddedStore};
use crate::store::model::*;
use crate::store::StoreResult;

impl EmbeddedStore {
    pub(super) async fn claim_node_user(&self, user: &User) -> StoreResult<bool> {
        let user = user.clone();
        self.write(move |conn, inner| {
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

    pub(super) async fn delete_node_user(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn, inner| {
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
}
