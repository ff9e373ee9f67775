//! Global config RPCs: the testbed-wide settings (blob storage, weather API).

use leotest_proto::unary::*;

use super::convert::{config_from_wire, config_to_wire, without_credentials};
use super::{state, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::logsafe::untrusted;
use crate::policy;

/// `update_global_config`: ADMIN replaces the global configuration.
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
    // Values are free text (connection strings, keys), bounded by the message size only.
    let config = config_from_wire(req.config.unwrap_or_default());
    ctx.store.update_config(&config).await?;
    tracing::info!(userid = %untrusted(&caller.userid), "global config updated");
    Ok(reply(true, "config updated".to_string()))
}

/// `get_global_config`: the configuration, storage credentials blanked for callers who may not read them.
pub async fn get_global_config(
    ctx: &Ctx,
    caller: &Caller,
    _req: MessageGetGlobalConfig,
) -> ServiceResult<MessageGetGlobalConfigResponse> {
    // Before the first update the original failed with UNKNOWN; an empty config is returned.
    let config = ctx.store.get_config().await?;
    // The original answered everyone in full. Its client and the web portal retry every error
    // status forever, so callers that may not see the storage credentials get the same OK
    // reply with those values empty instead of a refusal.
    let full = policy::may_read_credentials(caller);
    Ok(MessageGetGlobalConfigResponse {
        config: config.map(|c| config_to_wire(if full { c } else { without_credentials(c) })),
    })
}
