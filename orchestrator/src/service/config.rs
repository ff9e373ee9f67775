//! Global config RPCs: the testbed-wide settings (blob storage, weather API).

use leotest_proto::unary::*;

use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::policy;
use crate::store::{BlobConfig, DatastoreConfig, GlobalConfig, WeatherConfig};

fn from_wire(s: Settings) -> GlobalConfig {
    GlobalConfig {
        datastore: s.datastore.map(|d| DatastoreConfig {
            blob: d.blob.map(|b| BlobConfig {
                connection_string: b.connection_string,
                container: b.container,
                artifact_path: b.artifact_path,
            }),
        }),
        weather: s.weather.map(|w| WeatherConfig { apikey: w.apikey }),
    }
}

fn to_wire(c: GlobalConfig) -> Settings {
    Settings {
        datastore: c.datastore.map(|d| DatastoreSettings {
            blob: d.blob.map(|b| BlobSettings {
                connection_string: b.connection_string,
                container: b.container,
                artifact_path: b.artifact_path,
            }),
        }),
        weather: c.weather.map(|w| WeatherApiSettings { apikey: w.apikey }),
    }
}

fn check(c: &GlobalConfig) -> Result<(), String> {
    if let Some(b) = c.datastore.as_ref().and_then(|d| d.blob.as_ref()) {
        validate::text("connectionString", &b.connection_string)?;
        validate::text("container", &b.container)?;
        validate::text("artifactPath", &b.artifact_path)?;
    }
    if let Some(w) = &c.weather {
        validate::text("apikey", &w.apikey)?;
    }
    Ok(())
}

pub async fn update_global_config(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageUpdateGlobalConfig,
) -> ServiceResult<MessageUpdateGlobalConfigResponse> {
    let reply = |ok: bool, message: String| MessageUpdateGlobalConfigResponse {
        state: state(ok),
        message,
    };
    if !policy::is_admin(caller) {
        return Ok(reply(false, policy::denied(caller)));
    }
    let config = from_wire(req.config.unwrap_or_default());
    if let Err(message) = check(&config) {
        return Ok(reply(false, message));
    }
    ctx.store.update_config(&config).await?;
    tracing::info!(userid = %caller.userid, "global config updated");
    Ok(reply(true, "config updated".to_string()))
}

pub async fn get_global_config(
    ctx: &Ctx,
    caller: &Caller,
    _req: MessageGetGlobalConfig,
) -> ServiceResult<MessageGetGlobalConfigResponse> {
    if !policy::may_read_global_config(caller) {
        return Err(ServiceError::PermissionDenied(policy::denied(caller)));
    }
    // Before the first update the original failed with UNKNOWN; an empty config is returned.
    let config = ctx.store.get_config().await?;
    Ok(MessageGetGlobalConfigResponse {
        config: config.map(to_wire),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        let s = Settings {
            datastore: Some(DatastoreSettings {
                blob: Some(BlobSettings {
                    connection_string: "cs".into(),
                    container: "c".into(),
                    artifact_path: "p".into(),
                }),
            }),
            weather: None,
        };
        assert_eq!(to_wire(from_wire(s.clone())), s);
    }
}
