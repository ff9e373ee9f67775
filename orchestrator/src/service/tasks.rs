//! Task RPCs (issue 4): schedule, query and update short-lived node tasks.

use leotest_proto::unary::*;

use super::Ctx;
use crate::auth::Caller;
use crate::error::{ServiceError, ServiceResult};

pub async fn schedule_task(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageScheduleTask,
) -> ServiceResult<MessageScheduleTaskResponse> {
    Err(ServiceError::Unimplemented("schedule_task"))
}

pub async fn get_tasks(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageGetTasks,
) -> ServiceResult<MessageGetTasksResponse> {
    Err(ServiceError::Unimplemented("get_tasks"))
}

pub async fn update_task(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageUpdateTask,
) -> ServiceResult<MessageUpdateTaskResponse> {
    Err(ServiceError::Unimplemented("update_task"))
}
