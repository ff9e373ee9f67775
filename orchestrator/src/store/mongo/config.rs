//! The global config in the MongoDB store (collection `config`, one document `{id: 0}`,
//! updated with `$set` upserts like the original's).

use bson::doc;

use super::codec;
use super::write::UpsertWith;
use super::{backend, MongoStore};
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn update_config(s: &MongoStore, config: &GlobalConfig) -> StoreResult<()> {
    s.upsert(
        &s.config,
        doc! { "id": 0 },
        UpsertWith::Set(codec::config_set(config)),
    )
    .await
}

pub(super) async fn get_config(s: &MongoStore) -> StoreResult<Option<GlobalConfig>> {
    let found = s.config.find_one(doc! { "id": 0 }).await.map_err(backend)?;
    found.as_ref().map(codec::config_from).transpose()
}
