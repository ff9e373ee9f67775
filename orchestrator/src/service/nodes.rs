//! Node RPCs: heartbeat, register, list, update, delete, scavenger mode.

use chrono::{DateTime, Duration, Utc};
use leotest_proto::unary::{self as pb, *};

use super::convert::{jobs_summary, node_to_wire};
use super::users::new_token;
use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::logsafe::untrusted;
use crate::policy;
use crate::store::{Node, NodeFilter, NodeUpdate, Role, User};
use crate::timefmt::parse_datetime;
use crate::tokens;

/// `activeThres` used when the request leaves it out (the original's default; a present 0
/// is 0 seconds, as its `HasField`).
const DEFAULT_ACTIVE_THRES_SECS: i64 = 600;
/// The original's defaults for fields a registration leaves empty.
const DEFAULT_DESCRIPTION: &str = "Leopard Node";
const DEFAULT_PROVIDER: &str = "starlink";
const DEFAULT_LAST_ACTIVE: &str = "2020-01-01";

const NODE_MISSING: &str = "node with given id does not exist";

/// `report_heartbeat`: a node marks itself alive; anyone else gets `received = false`.
pub async fn report_heartbeat(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageHeartbeat,
) -> ServiceResult<MessageHeartbeatResponse> {
    // Only a node may mark itself alive; anyone else gets `received = false`.
    let received = req.nodeid == caller.userid;
    if received {
        ctx.store.mark_node(&req.nodeid, ctx.clock.now()).await?;
    }
    tracing::debug!(nodeid = %untrusted(&req.nodeid), received, "heartbeat");
    Ok(MessageHeartbeatResponse { received })
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// A field the request set (proto3 `optional`) to a non-empty value: the original tests
/// `HasField` and then the value's truthiness, so a field set to `""` counts as not given.
fn given(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// The node record of a registration; the text fields are free text.
fn node_from_registration(n: pb::Node) -> Result<Node, String> {
    validate::id("nodeid", &n.nodeid)?;
    let last_active_text = given(n.last_active);
    let last_active = parse_datetime(last_active_text.as_deref().unwrap_or(DEFAULT_LAST_ACTIVE))
        .ok_or_else(|| "invalid last_active: not a date".to_string())?;
    Ok(Node {
        nodeid: n.nodeid,
        name: n.name,
        description: non_empty(n.description).unwrap_or_else(|| DEFAULT_DESCRIPTION.into()),
        last_active,
        coords: n.coords,
        location: n.location,
        provider: non_empty(n.provider).unwrap_or_else(|| DEFAULT_PROVIDER.into()),
        // The original stores `str(jobs)`: "None" when absent, as sent when present. (Never
        // read back: get_nodes computes `jobs` from the node's jobs.)
        jobs: n.jobs.unwrap_or_else(|| "None".into()),
        scavenger_mode_active: n.scavenger_mode_active,
        public_ip: n.public_ip,
    })
}

/// `register_node`: ADMIN registers a node and its identity, and gets the node's token.
pub async fn register_node(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageRegisterNode,
) -> ServiceResult<MessageRegisterNodeResponse> {
    let reply = |ok: bool, message: String| MessageRegisterNodeResponse {
        state: state(ok),
        message,
    };
    if !policy::is_admin(caller) {
        return Ok(reply(false, policy::denied(caller)));
    }
    let wire = req.node.unwrap_or_default();
    // The NODE user's team is the description as sent, before defaults apply (the original).
    let team = wire.description.clone();
    let node = match node_from_registration(wire) {
        Ok(node) => node,
        Err(message) => return Ok(reply(false, message)),
    };
    let existing = ctx.store.get_user(&node.nodeid).await?;
    if existing.as_ref().is_some_and(|u| u.role != Role::Node) {
        return Ok(reply(
            false,
            "user with given id already exists".to_string(),
        ));
    }
    if !ctx.store.register_node(&node).await? {
        return Ok(reply(false, "node with the given id exists".to_string()));
    }
    let token = new_token()?;
    // The check above is only a fast path: a person's account registered with this id since
    // (another replica) must not be overwritten, so the identity is claimed conditionally.
    // A NODE user left behind keeps its first token (agents configured with it keep
    // working, as the original); the reply's token goes in the second slot.
    let user = User {
        id: node.nodeid.clone(),
        name: node.name.clone(),
        role: Role::Node,
        team,
        static_access_token: tokens::stored_form(&token, ctx.tokens),
        access_token: String::new(),
    };
    if !ctx.store.claim_node_user(&user).await? {
        // Undo our node: registration is all or nothing.
        ctx.store.delete_node(&node.nodeid).await?;
        return Ok(reply(
            false,
            "user with given id already exists".to_string(),
        ));
    }
    tracing::info!(nodeid = %untrusted(&node.nodeid), "node registered");
    Ok(reply(
        true,
        format!("node successfully registered access_token={token}"),
    ))
}

/// The `last_active` bound of `get_nodes`: `active` absent is false; `activeThres` absent is
/// 600 s, present is taken as is (0 included), as the original's `HasField` branches.
fn active_since(
    active: Option<bool>,
    thres_secs: Option<i32>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !active.unwrap_or(false) {
        return None;
    }
    let secs = thres_secs.map_or(DEFAULT_ACTIVE_THRES_SECS, i64::from);
    now.checked_sub_signed(Duration::seconds(secs))
}

/// `get_nodes`: the nodes matching the request's filters.
pub async fn get_nodes(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageGetNodes,
) -> ServiceResult<MessageGetNodesResponse> {
    let filter = NodeFilter {
        nodeid: given(req.nodeid),
        location: given(req.location),
        name: given(req.name),
        provider: given(req.provider),
        active_since: active_since(req.active, req.active_thres, ctx.clock.now()),
    };
    let mut nodes = Vec::new();
    for n in ctx.store.get_nodes(&filter).await? {
        let jobs = ctx.store.get_jobs_by_nodeid(&n.nodeid).await?;
        nodes.push(node_to_wire(n, jobs_summary(&jobs)));
    }
    Ok(MessageGetNodesResponse {
        nodes: super::reply::within("get_nodes", nodes, ctx.max_reply_bytes),
    })
}

fn node_update(req: MessageUpdateNode) -> Result<NodeUpdate, String> {
    let last_active = match given(req.last_active) {
        Some(text) => Some(
            parse_datetime(&text).ok_or_else(|| "invalid last_active: not a date".to_string())?,
        ),
        None => None,
    };
    // Empty strings mean "leave unchanged", as in the original.
    Ok(NodeUpdate {
        name: given(req.name),
        description: given(req.description),
        last_active,
        coords: given(req.coords),
        location: given(req.location),
        provider: given(req.provider),
        public_ip: given(req.public_ip),
    })
}

/// `update_node`: the node itself or ADMIN changes its fields.
pub async fn update_node(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageUpdateNode,
) -> ServiceResult<MessageUpdateNodeResponse> {
    let reply = |ok: bool, message: String| MessageUpdateNodeResponse {
        state: state(ok),
        message,
    };
    if !policy::may_update_node(caller, &req.nodeid) {
        return Ok(reply(false, policy::denied(caller)));
    }
    let nodeid = req.nodeid.clone();
    let update = match node_update(req) {
        Ok(u) => u,
        Err(message) => return Ok(reply(false, message)),
    };
    if !ctx.store.update_node(&nodeid, &update).await? {
        return Ok(reply(false, NODE_MISSING.to_string()));
    }
    Ok(reply(true, "updated node successfully".to_string()))
}

/// `delete_node`: ADMIN deletes a node.
pub async fn delete_node(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageDeleteNode,
) -> ServiceResult<MessageDeleteNodeResponse> {
    let reply = |ok: bool, message: String| MessageDeleteNodeResponse {
        state: state(ok),
        message,
    };
    if !policy::is_admin(caller) {
        return Ok(reply(false, policy::denied(caller)));
    }
    if ctx.store.get_node(&req.nodeid).await?.is_none() {
        return Ok(reply(false, NODE_MISSING.to_string()));
    }
    if req.delete_jobs {
        let n = ctx.store.delete_jobs_by_nodeid(&req.nodeid).await?;
        tracing::info!(nodeid = %untrusted(&req.nodeid), deleted_jobs = n, "jobs of node deleted");
    }
    // The node's identity goes too, but never a person's account that shares the id (one
    // conditional delete: no check-then-delete another replica could slip a registration
    // into). The identity first: a registration racing with this one then either finds the
    // node still there (and writes nothing) or comes after both deletions (and stands whole).
    ctx.store.delete_node_user(&req.nodeid).await?;
    ctx.store.delete_node(&req.nodeid).await?;
    tracing::info!(nodeid = %untrusted(&req.nodeid), "node deleted");
    Ok(reply(true, "node deleted".to_string()))
}

/// `set_scavenger_status`: the node itself or ADMIN switches its scavenger mode.
pub async fn set_scavenger_status(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageSetScavengerStatus,
) -> ServiceResult<MessageSetScavengerStatusResponse> {
    let reply = |ok: bool, message: String| MessageSetScavengerStatusResponse {
        state: state(ok),
        message,
    };
    if !policy::may_set_scavenger(caller, &req.nodeid) {
        return Ok(reply(false, policy::denied(caller)));
    }
    if !ctx
        .store
        .set_scavenger_status(&req.nodeid, req.scavenger_mode_active)
        .await?
    {
        return Ok(reply(false, NODE_MISSING.to_string()));
    }
    Ok(reply(
        true,
        "updated scavenger_mode_status successfully".to_string(),
    ))
}

/// `get_scavenger_status`: `found` only when the node's scavenger mode is on.
pub async fn get_scavenger_status(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageGetScavengerStatus,
) -> ServiceResult<MessageGetScavengerStatusResponse> {
    // As the original, which tested the flag's truthiness: `found` only when the mode is on.
    // Its node agent reads `scavengerModeActive` whenever `found` is true, and MessageToDict
    // leaves a false flag out: found=true with the mode off raised KeyError on every job run.
    let active = ctx.store.get_scavenger_status(&req.nodeid).await? == Some(true);
    Ok(MessageGetScavengerStatusResponse {
        found: active,
        scavenger_mode_active: active,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::format_python;

    #[test]
    fn active_threshold_defaults_to_600_seconds_only_when_absent() {
        let now = Utc::now();
        assert_eq!(active_since(None, Some(5), now), None);
        assert_eq!(active_since(Some(false), Some(5), now), None);
        assert_eq!(
            active_since(Some(true), None, now),
            Some(now - Duration::seconds(600))
        );
        assert_eq!(active_since(Some(true), Some(0), now), Some(now));
        assert_eq!(
            active_since(Some(true), Some(30), now),
            Some(now - Duration::seconds(30))
        );
    }

    #[test]
    fn registration_applies_the_original_defaults() {
        let node = node_from_registration(pb::Node {
            nodeid: "n1".into(),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(node.description, "Leopard Node");
        assert_eq!(node.provider, "starlink");
        assert_eq!(node.jobs, "None");
        assert_eq!(format_python(node.last_active), "2020-01-01 00:00:00");
        assert!(node_from_registration(pb::Node::default()).is_err());
    }
}
