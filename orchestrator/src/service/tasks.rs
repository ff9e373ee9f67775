//! Task RPCs: schedule, query and update short-lived node tasks (a client node asks its
//! job's server node to start or stop the server side).
//!
//! Tasks follow the ownership rule of their job ([`policy::job_access`], [`access`]); the
//! node a task is for may always read and complete it.

use chrono::Duration;
use leotest_proto::unary::*;

use super::access::{self, Jobs};
use super::convert::task_to_wire;
use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::policy;
use crate::store::{Task, TaskFilter};

/// Longest task lifetime accepted (one week).
const MAX_TTL_SECS: i32 = 7 * 24 * 3600;

/// A filter the request set (proto3 `optional`) to a non-empty value: the original tests
/// `HasField` and then the value's truthiness, so a filter set to `""` filters nothing.
fn opt(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Whether `caller` may put a task for node `nodeid` under job `jobid`: ADMIN; a node for
/// itself; or someone the ownership rule gives the job, for one of the job's nodes.
async fn may_schedule(
    ctx: &Ctx,
    caller: &Caller,
    jobid: &str,
    nodeid: &str,
) -> ServiceResult<bool> {
    if policy::is_admin(caller) || policy::is_node(caller, nodeid) {
        return Ok(true);
    }
    Ok(match ctx.store.get_job(jobid).await? {
        Some(job) => {
            policy::job_access(caller, &job).any()
                && (job.nodeid == nodeid || job.server_node() == Some(nodeid))
        }
        None => false,
    })
}

/// `schedule_task`: stores a task that expires after `ttl_secs`.
pub async fn schedule_task(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageScheduleTask,
) -> ServiceResult<MessageScheduleTaskResponse> {
    let fail = |message: String| MessageScheduleTaskResponse {
        state: state(false),
        message,
    };
    let t = req.task.unwrap_or_default();
    let checks = validate::id("taskid", &t.taskid)
        .and_then(|_| validate::id_ref("runid", &t.runid))
        .and_then(|_| validate::id_ref("jobid", &t.jobid))
        .and_then(|_| validate::id_ref("nodeid", &t.nodeid));
    if let Err(m) = checks {
        return Ok(fail(m));
    }
    if !(0..=MAX_TTL_SECS).contains(&t.ttl_secs) {
        return Ok(fail(format!(
            "invalid ttl_secs: must be within 0..={MAX_TTL_SECS}"
        )));
    }
    if !may_schedule(ctx, caller, &t.jobid, &t.nodeid).await? {
        return Ok(fail(policy::denied(caller)));
    }
    let task = Task {
        taskid: t.taskid,
        runid: t.runid,
        jobid: t.jobid,
        nodeid: t.nodeid,
        task_type: t.r#type,
        // Whatever the caller sends, a new task starts as TASK_SCHEDULED (as the original).
        status: TaskStatus::TaskScheduled as i32,
        ttl_secs: t.ttl_secs.into(),
        expire_at: ctx.clock.now() + Duration::seconds(t.ttl_secs.into()),
    };
    Ok(if ctx.store.schedule_task(&task).await? {
        MessageScheduleTaskResponse {
            state: state(true),
            message: "task successfully scheduled".into(),
        }
    } else {
        fail("task with the given id exists".into())
    })
}

/// `get_tasks`: the live tasks matching the filters that the caller may see.
pub async fn get_tasks(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageGetTasks,
) -> ServiceResult<MessageGetTasksResponse> {
    // The original filters on these four fields only (type and status are ignored).
    let filter = TaskFilter {
        taskid: opt(req.taskid),
        runid: opt(req.runid),
        jobid: opt(req.jobid),
        nodeid: opt(req.nodeid),
        task_type: None,
        status: None,
    };
    let mut jobs = Jobs::new(ctx.store.as_ref());
    let mut tasks = Vec::new();
    for task in ctx.store.get_tasks(&filter).await? {
        if access::task_visible(caller, &task, &mut jobs).await? {
            tasks.push(task_to_wire(task));
        }
    }
    Ok(MessageGetTasksResponse {
        tasks: super::reply::within("get_tasks", tasks, ctx.max_reply_bytes),
    })
}

/// `update_task`: sets a task's status.
pub async fn update_task(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageUpdateTask,
) -> ServiceResult<MessageUpdateTaskResponse> {
    let reply = |ok: bool, message: String| MessageUpdateTaskResponse {
        state: state(ok),
        message,
    };
    let missing = || reply(false, "task with given id does not exist".into());
    if !policy::is_admin(caller) {
        let filter = TaskFilter {
            taskid: Some(req.taskid.clone()),
            ..Default::default()
        };
        let found = ctx.store.get_tasks(&filter).await?;
        if found.is_empty() {
            return Ok(missing());
        }
        let mut jobs = Jobs::new(ctx.store.as_ref());
        for task in &found {
            if !access::task_visible(caller, task, &mut jobs).await? {
                return Ok(reply(false, policy::denied(caller)));
            }
        }
    }
    Ok(if ctx.store.update_task(&req.taskid, req.status).await? {
        reply(true, "updated task successfully".into())
    } else {
        missing()
    })
}
