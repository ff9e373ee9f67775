//! Users in the MongoDB store (collection `users`), including a node's identity (its NODE
//! user), written with the role in each write's condition.

use std::future::IntoFuture;

use bson::{doc, Document};

use super::codec::{self, USERS};
use super::write::UpsertWith;
use super::{backend, decode_all, retry, MongoStore};
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn add_user(s: &MongoStore, user: &User) -> StoreResult<bool> {
    Ok(
        s.insert_if_absent(&s.users, doc! { "id": &user.id }, codec::user_doc(user))
            .await?
            .is_some(),
    )
}

pub(super) async fn put_user(s: &MongoStore, user: &User) -> StoreResult<()> {
    // Like the original's delete + insert of the admin, but one atomic write, so two
    // replicas starting at once leave one admin.
    s.upsert(
        &s.users,
        doc! { "id": &user.id },
        UpsertWith::Replace(codec::user_doc(user)),
    )
    .await
}

pub(super) async fn get_user(s: &MongoStore, id: &str) -> StoreResult<Option<User>> {
    let found = s.users.find_one(doc! { "id": id }).await.map_err(backend)?;
    found.as_ref().map(codec::user_from).transpose()
}

pub(super) async fn modify_user(
    s: &MongoStore,
    id: &str,
    name: &str,
    role: Role,
    team: &str,
) -> StoreResult<bool> {
    let res = s
        .users
        .update_one(
            doc! { "id": id },
            doc! { "$set": { "name": name, "role": role.as_i32(), "team": team } },
        )
        .await
        .map_err(backend)?;
    Ok(res.matched_count > 0)
}

pub(super) async fn delete_user(s: &MongoStore, id: &str) -> StoreResult<bool> {
    // All copies: a duplicate left by the original's racy insert must not keep working.
    let res = retry::idempotent("delete_user", || {
        s.users.delete_many(doc! { "id": id }).into_future()
    })
    .await?;
    Ok(res.deleted_count > 0)
}

pub(super) async fn list_users(s: &MongoStore) -> StoreResult<Vec<User>> {
    let docs = s.find_all(&s.users, Document::new(), None).await?;
    let mut users = decode_all(USERS, docs, codec::user_from);
    users.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(users)
}

/// `Store::claim_node_user`: a conditional update of a NODE user, else an insert unless
/// the id is taken; never a replace, so a person's account registered at the same moment
/// on another replica is left as it is.
pub(super) async fn claim_node_user(s: &MongoStore, user: &User) -> StoreResult<bool> {
    let node = Role::Node.as_i32();
    // A round ends unless the id's user vanished (or turned NODE) between its two
    // steps; a few rounds cover any realistic churn, and a refusal is safe.
    for _ in 0..3 {
        let kept = s
            .users
            .update_one(
                doc! { "id": &user.id, "role": node },
                doc! { "$set": { "access_token": &user.static_access_token } },
            )
            .await
            .map_err(backend)?;
        if kept.matched_count > 0 {
            return Ok(true);
        }
        let key = doc! { "id": &user.id };
        if s.insert_if_absent(&s.users, key.clone(), codec::user_doc(user))
            .await?
            .is_some()
        {
            return Ok(true);
        }
        match s.users.find_one(key).await.map_err(backend)? {
            Some(d) if !codec::user_from(&d).is_ok_and(|u| u.role == Role::Node) => {
                return Ok(false)
            }
            _ => continue,
        }
    }
    Ok(false)
}

/// `Store::delete_node_user`: every NODE-role copy of the id (a duplicate left by the
/// original's racy insert must not keep working), in one conditional delete.
pub(super) async fn delete_node_user(s: &MongoStore, id: &str) -> StoreResult<bool> {
    let res = retry::idempotent("delete_node_user", || {
        s.users
            .delete_many(doc! { "id": id, "role": Role::Node.as_i32() })
            .into_future()
    })
    .await?;
    Ok(res.deleted_count > 0)
}
