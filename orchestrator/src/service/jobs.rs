//! Job RPCs (issue 4): schedule, read, reschedule, modify and delete jobs.

use leotest_proto::unary::*;

use super::Ctx;
use crate::auth::Caller;
use crate::error::{ServiceError, ServiceResult};

pub async fn schedule_job(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageScheduleJob,
) -> ServiceResult<MessageScheduleJobResponse> {
    Err(ServiceError::Unimplemented("schedule_job"))
}

pub async fn get_job_by_id(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageGetJobById,
) -> ServiceResult<MessageGetJobByIdResponse> {
    Err(ServiceError::Unimplemented("get_job_by_id"))
}

pub async fn get_jobs_by_userid(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageGetJobsByUserid,
) -> ServiceResult<MessageGetJobsByUseridResponse> {
    Err(ServiceError::Unimplemented("get_jobs_by_userid"))
}

pub async fn get_jobs_by_nodeid(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageGetJobsByNodeid,
) -> ServiceResult<MessageGetJobsByNodeidResponse> {
    Err(ServiceError::Unimplemented("get_jobs_by_nodeid"))
}

pub async fn reschedule_job_nearest(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageRescheduleJob,
) -> ServiceResult<MessageRescheduleJobResponse> {
    Err(ServiceError::Unimplemented("reschedule_job_nearest"))
}

pub async fn modify_job(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageModifyJob,
) -> ServiceResult<MessageModifyJobResponse> {
    Err(ServiceError::Unimplemented("modify_job"))
}

pub async fn delete_job_by_id(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageDeleteJobById,
) -> ServiceResult<MessageDeleteJobByIdResponse> {
    Err(ServiceError::Unimplemented("delete_job_by_id"))
}

pub async fn delete_jobs_by_nodeid(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageDeleteJobsByNodeid,
) -> ServiceResult<MessageDeleteJobsByNodeidResponse> {
    Err(ServiceError::Unimplemented("delete_jobs_by_nodeid"))
}
