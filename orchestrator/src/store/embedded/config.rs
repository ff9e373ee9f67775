//! The global config in the embedded store (table `config`, one row).

use rusqlite::{params, OptionalExtension};

use super::rows::*;
use super::schema::*;
use super::EmbeddedStore;
use crate::store::model::*;
use crate::store::StoreResult;

pub(super) async fn update_config(s: &EmbeddedStore, config: &GlobalConfig) -> StoreResult<()> {
    let config = config.clone();
    s.write(move |conn, _| {
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO config VALUES (0, 0, 0, '', '', '', 0, '')",
            [],
        )?;
        if let Some(ds) = &config.datastore {
            let blob = ds.blob.clone().unwrap_or_default();
            tx.execute(
                "UPDATE config SET has_datastore = 1, has_blob = ?1, \
                 blob_connection_string = ?2, blob_container = ?3, blob_artifact_path = ?4 \
                 WHERE id = 0",
                params![
                    ds.blob.is_some(),
                    blob.connection_string,
                    blob.container,
                    blob.artifact_path
                ],
            )?;
        }
        if let Some(w) = &config.weather {
            tx.execute(
                "UPDATE config SET has_weather = 1, weather_apikey = ?1 WHERE id = 0",
                params![w.apikey],
            )?;
        }
        tx.commit()?;
        Ok(())
    })
    .await
}

pub(super) async fn get_config(s: &EmbeddedStore) -> StoreResult<Option<GlobalConfig>> {
    s.read(|conn| {
        let row = conn
            .query_row(
                &format!("SELECT {CONFIG_COLS} FROM config WHERE id = 0"),
                [],
                config_from_row,
            )
            .optional()?;
        Ok(row)
    })
    .await
}
