//! Run RPCs (issue 4): update and query runs, expand scheduled runs of a node.

use leotest_proto::unary::*;

use super::Ctx;
use crate::auth::Caller;
use crate::error::{ServiceError, ServiceResult};

pub async fn update_run(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageUpdateRun,
) -> ServiceResult<MessageUpdateRunResponse> {
    Err(ServiceError::Unimplemented("update_run"))
}

pub async fn get_runs(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageGetRuns,
) -> ServiceResult<MessageGetRunsResponse> {
    Err(ServiceError::Unimplemented("get_runs"))
}

pub async fn get_scheduled_runs(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageGetScheduledRuns,
) -> ServiceResult<MessageGetScheduledRunsResponse> {
    Err(ServiceError::Unimplemented("get_scheduled_runs"))
}
