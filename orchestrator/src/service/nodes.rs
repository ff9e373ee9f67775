//! Node RPCs: heartbeat, register, list, update, delete, scavenger mode.

use chrono::{DateTime, Duration, Utc};
use leotest_proto::unary::{self as pb, *};

use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::policy;
use crate::store::{Job, JobKind, Node, NodeFilter, NodeUpdate, Role, User};
use crate::timefmt::{format_python, parse_datetime};

/// `activeThres` used when the request leaves it at 0 (the original's default).
const DEFAULT_ACTIVE_THRES_SECS: i64 = 600;
/// The original's defaults for fields a registration leaves empty.
const DEFAULT_DESCRIPTION: &str = "Leopard Node";
const DEFAULT_PROVIDER: &str = "starlink";
const DEFAULT_LAST_ACTIVE: &str = "2020-01-01";

const NODE_MISSING: &str = "node with given id does not exist";

pub async fn report_heartbeat(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageHeartbeat,
) -> ServiceResult<MessageHeartbeatResponse> {
    // Only a node may mark itself alive; anyone else gets `received = false`.
    let received = req.nodeid == caller.userid;
    if received {
        ctx.store.mark_node(&req.nodeid, Utc::now()).await?;
    }
    tracing::debug!(nodeid = %req.nodeid, received, "heartbeat");
    Ok(MessageHeartbeatResponse { received })
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

fn check_node_texts(fields: &[(&str, &str)]) -> Result<(), String> {
    for (name, value) in fields {
        validate::text(name, value)?;
    }
    Ok(())
}

fn node_from_registration(n: pb::Node) -> Result<Node, String> {
    validate::id("nodeid", &n.nodeid)?;
    check_node_texts(&[
        ("name", &n.name),
        ("description", &n.description),
        ("coords", &n.coords),
        ("location", &n.location),
        ("provider", &n.provider),
        ("jobs", &n.jobs),
        ("public_ip", &n.public_ip),
    ])?;
    let last_active_text = if n.last_active.is_empty() {
        DEFAULT_LAST_ACTIVE
    } else {
        &n.last_active
    };
    let last_active = parse_datetime(last_active_text)
        .ok_or_else(|| "invalid last_active: not a date".to_string())?;
    Ok(Node {
        nodeid: n.nodeid,
        name: n.name,
        description: non_empty(n.description).unwrap_or_else(|| DEFAULT_DESCRIPTION.into()),
        last_active,
        coords: n.coords,
        location: n.location,
        provider: non_empty(n.provider).unwrap_or_else(|| DEFAULT_PROVIDER.into()),
        // The original stores `str(jobs)`, i.e. "None" when absent.
        jobs: non_empty(n.jobs).unwrap_or_else(|| "None".into()),
        scavenger_mode_active: n.scavenger_mode_active,
        public_ip: n.public_ip,
    })
}

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
    // The token is derived from the description as sent, before defaults apply.
    let token = super::users::derive_token(&wire.nodeid, &wire.name, &wire.description);
    let team = wire.description.clone();
    let node = match node_from_registration(wire) {
        Ok(node) => node,
        Err(message) => return Ok(reply(false, message)),
    };
    if let Some(existing) = ctx.store.get_user(&node.nodeid).await? {
        if existing.role != Role::Node {
            return Ok(reply(
                false,
                "user with given id already exists".to_string(),
            ));
        }
    }
    if !ctx.store.register_node(&node).await? {
        return Ok(reply(false, "node with the given id exists".to_string()));
    }
    // A NODE user left behind by an earlier registration gets the new token.
    ctx.store
        .put_user(&User {
            id: node.nodeid.clone(),
            name: node.name.clone(),
            role: Role::Node,
            team,
            static_access_token: token.clone(),
            access_token: String::new(),
        })
        .await?;
    tracing::info!(nodeid = %node.nodeid, "node registered");
    Ok(reply(
        true,
        format!("node successfully registered access_token={token}"),
    ))
}

/// Python's `str()` of an optional string.
fn py_opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("None")
}

fn py_bool(v: bool) -> &'static str {
    if v {
        "True"
    } else {
        "False"
    }
}

/// The original's summary of a node's jobs in `_node.jobs`.
fn jobs_summary(jobs: &[Job]) -> String {
    let mut out = String::new();
    for job in jobs {
        let schedule = match (job.kind, &job.schedule) {
            (JobKind::Cron, Some(s)) => s.to_cron_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "<jobid={} userid={} type={} start={} end={} length={} schedule={} overhead={} \
             server={} trigger={}>",
            job.id,
            job.userid,
            job.kind.as_str(),
            job.start_date,
            job.end_date,
            job.length_secs,
            schedule,
            py_bool(job.overhead),
            py_opt(&job.server),
            py_opt(&job.trigger),
        ));
    }
    out
}

fn active_since(active: bool, thres_secs: i32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !active {
        return None;
    }
    let secs = if thres_secs == 0 {
        DEFAULT_ACTIVE_THRES_SECS
    } else {
        i64::from(thres_secs)
    };
    now.checked_sub_signed(Duration::seconds(secs))
}

pub async fn get_nodes(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageGetNodes,
) -> ServiceResult<MessageGetNodesResponse> {
    let filter = NodeFilter {
        nodeid: non_empty(req.nodeid),
        location: non_empty(req.location),
        name: non_empty(req.name),
        provider: non_empty(req.provider),
        active_since: active_since(req.active, req.active_thres, Utc::now()),
    };
    let mut nodes = Vec::new();
    for n in ctx.store.get_nodes(&filter).await? {
        let jobs = ctx.store.get_jobs_by_nodeid(&n.nodeid).await?;
        nodes.push(pb::Node {
            jobs: jobs_summary(&jobs),
            last_active: format_python(n.last_active),
            nodeid: n.nodeid,
            name: n.name,
            description: n.description,
            coords: n.coords,
            location: n.location,
            provider: n.provider,
            scavenger_mode_active: n.scavenger_mode_active,
            public_ip: n.public_ip,
        });
    }
    Ok(MessageGetNodesResponse { nodes })
}

fn node_update(req: MessageUpdateNode) -> Result<NodeUpdate, String> {
    check_node_texts(&[
        ("name", &req.name),
        ("description", &req.description),
        ("coords", &req.coords),
        ("location", &req.location),
        ("provider", &req.provider),
        ("public_ip", &req.public_ip),
    ])?;
    let last_active = match non_empty(req.last_active) {
        Some(text) => Some(
            parse_datetime(&text).ok_or_else(|| "invalid last_active: not a date".to_string())?,
        ),
        None => None,
    };
    // Empty strings mean "leave unchanged", as in the original.
    Ok(NodeUpdate {
        name: non_empty(req.name),
        description: non_empty(req.description),
        last_active,
        coords: non_empty(req.coords),
        location: non_empty(req.location),
        provider: non_empty(req.provider),
        public_ip: non_empty(req.public_ip),
    })
}

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
        tracing::info!(nodeid = %req.nodeid, deleted_jobs = n, "jobs of node deleted");
    }
    ctx.store.delete_node(&req.nodeid).await?;
    // Remove the node's identity too, but never a person's account that shares the id.
    if let Some(user) = ctx.store.get_user(&req.nodeid).await? {
        if user.role == Role::Node {
            ctx.store.delete_user(&req.nodeid).await?;
        }
    }
    tracing::info!(nodeid = %req.nodeid, "node deleted");
    Ok(reply(true, "node deleted".to_string()))
}

pub async fn set_scavenger_status(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageSetScavengerStatus,
) -> ServiceResult<MessageSetScavengerStatusResponse> {
    let reply = |ok: bool, message: String| MessageSetScavengerStatusResponse {
        state: state(ok),
        message,
    };
    if !policy::is_node_or_admin(caller, &req.nodeid) {
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

pub async fn get_scavenger_status(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageGetScavengerStatus,
) -> ServiceResult<MessageGetScavengerStatusResponse> {
    let status = ctx.store.get_scavenger_status(&req.nodeid).await?;
    Ok(MessageGetScavengerStatusResponse {
        found: status.is_some(),
        scavenger_mode_active: status.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CronSchedule, JobParams};

    #[test]
    fn jobs_summary_matches_the_original_format() {
        let job = Job {
            id: "j1".into(),
            nodeid: "n1".into(),
            userid: "u1".into(),
            kind: JobKind::Cron,
            params: JobParams::default(),
            schedule: CronSchedule::parse("*/5 * * * *"),
            start_date: "2024-01-01T00:00:00".into(),
            end_date: "2024-02-01T00:00:00".into(),
            length_secs: 60,
            overhead: true,
            server: None,
            trigger: Some("t".into()),
            config: None,
            expire_at: None,
        };
        assert_eq!(
            jobs_summary(&[job]),
            "<jobid=j1 userid=u1 type=cron start=2024-01-01T00:00:00 end=2024-02-01T00:00:00 \
             length=60 schedule=*/5 * * * * overhead=True server=None trigger=t>"
        );
        assert_eq!(jobs_summary(&[]), "");
    }

    #[test]
    fn active_threshold_defaults_to_600_seconds() {
        let now = Utc::now();
        assert_eq!(active_since(false, 5, now), None);
        assert_eq!(
            active_since(true, 0, now),
            Some(now - Duration::seconds(600))
        );
        assert_eq!(
            active_since(true, 30, now),
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
