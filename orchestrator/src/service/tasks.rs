//! Task RPCs (issue 4): schedule, query and update short-lived node tasks.

use chrono::{Duration, Utc};
use leotest_proto::unary::*;

use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::store::{Task, TaskFilter};

/// Longest task lifetime accepted (one week).
const MAX_TTL_SECS: i32 = 7 * 24 * 3600;

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub async fn schedule_task(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageScheduleTask,
) -> ServiceResult<MessageScheduleTaskResponse> {
    let fail = |message: String| MessageScheduleTaskResponse {
        state: state(false),
        message,
    };
    let t = req.task.unwrap_or_default();
    let checks = validate::id("taskid", &t.taskid)
        .and_then(|_| validate::text("runid", &t.runid))
        .and_then(|_| validate::text("jobid", &t.jobid))
        .and_then(|_| validate::text("nodeid", &t.nodeid));
    if let Err(m) = checks {
        return Ok(fail(m));
    }
    if !(0..=MAX_TTL_SECS).contains(&t.ttl_secs) {
        return Ok(fail(format!(
            "invalid ttl_secs: must be within 0..={MAX_TTL_SECS}"
        )));
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
        expire_at: Utc::now() + Duration::seconds(t.ttl_secs.into()),
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

pub async fn get_tasks(
    ctx: &Ctx,
    _caller: &Caller,
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
    let tasks = ctx.store.get_tasks(&filter).await?;
    Ok(MessageGetTasksResponse {
        tasks: tasks
            .into_iter()
            .map(|t| leotest_proto::unary::Task {
                r#type: t.task_type,
                taskid: t.taskid,
                runid: t.runid,
                jobid: t.jobid,
                nodeid: t.nodeid,
                status: t.status,
                ttl_secs: i32::try_from(t.ttl_secs).unwrap_or(i32::MAX),
            })
            .collect(),
    })
}

pub async fn update_task(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageUpdateTask,
) -> ServiceResult<MessageUpdateTaskResponse> {
    Ok(if ctx.store.update_task(&req.taskid, req.status).await? {
        MessageUpdateTaskResponse {
            state: state(true),
            message: "updated task successfully".into(),
        }
    } else {
        MessageUpdateTaskResponse {
            state: state(false),
            message: "task with given id does not exist".into(),
        }
    })
}
