//! Job RPCs (issue 4): schedule, read, reschedule, modify and delete jobs.

use leotest_proto::unary::*;

use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::policy;
use crate::schedule::cron::{secs, Cron};
use crate::schedule::overlap::{self, Sched};
use crate::schedule::{offset_of, pystr, slot, trigger};
use crate::store::{CronSchedule, Job, JobKind};
use crate::timefmt::parse_datetime;

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn date(field: &str, value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    parse_datetime(value).ok_or_else(|| {
        format!(
            "invalid {field}: '{}'",
            value.chars().take(64).collect::<String>()
        )
    })
}

/// A stored job as the conflict and slot checks see it.
pub(crate) fn sched_of(job: &Job) -> Result<Sched, String> {
    let (cron, cron_text) = match (&job.kind, &job.schedule) {
        (JobKind::Cron, Some(s)) => {
            let text = s.to_cron_string();
            (Some(Cron::parse(&text).map_err(|e| e.to_string())?), text)
        }
        _ => (None, String::new()),
    };
    Ok(Sched {
        id: job.id.clone(),
        kind: job.kind,
        cron,
        cron_text,
        start: date("start_date", &job.start_date)?,
        end: date("end_date", &job.end_date)?,
        start_text: job.start_date.clone(),
        end_text: job.end_date.clone(),
        length: job.length_secs,
    })
}

fn job_type(kind: JobKind) -> i32 {
    match kind {
        JobKind::Cron => JobType::Cron as i32,
        JobKind::Atq => JobType::Atq as i32,
    }
}

fn params_wire(job: &Job) -> JobParams {
    JobParams {
        mode: job.params.mode.clone(),
        deploy: job.params.deploy.clone(),
        execute: job.params.execute.clone(),
        finish: job.params.finish.clone(),
    }
}

pub(crate) fn schedule_text(job: &Job) -> String {
    match (&job.kind, &job.schedule) {
        (JobKind::Cron, Some(s)) => s.to_cron_string(),
        _ => String::new(),
    }
}

fn job_wire(job: &Job) -> leotest_proto::unary::Job {
    leotest_proto::unary::Job {
        id: job.id.clone(),
        nodeid: job.nodeid.clone(),
        userid: job.userid.clone(),
        r#type: job_type(job.kind),
        params: Some(params_wire(job)),
        schedule: schedule_text(job),
        start_date: job.start_date.clone(),
        end_date: job.end_date.clone(),
        length_secs: job.length_secs.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        overhead: job.overhead,
        server: job.server.clone().unwrap_or_default(),
        trigger: job.trigger.clone().unwrap_or_default(),
        config: String::new(),
    }
}

fn failed(message: String) -> MessageScheduleJobResponse {
    MessageScheduleJobResponse {
        state: state(false),
        message,
    }
}

pub async fn schedule_job(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageScheduleJob,
) -> ServiceResult<MessageScheduleJobResponse> {
    let kind = match JobType::try_from(req.r#type) {
        Ok(JobType::Cron) => JobKind::Cron,
        Ok(JobType::Atq) => JobKind::Atq,
        _ => return Ok(failed("unknown error".into())),
    };
    let params = req.params.unwrap_or_default();
    let checks = validate::id("id", &req.id)
        .and_then(|_| validate::id("nodeid", &req.nodeid))
        .and_then(|_| validate::text("params", &params.deploy))
        .and_then(|_| validate::text("params", &params.execute))
        .and_then(|_| validate::text("params", &params.finish))
        .and_then(|_| validate::text("params", &params.mode))
        .and_then(|_| validate::text("config", &req.config))
        .and_then(|_| validate::text("server", &req.server));
    if let Err(msg) = checks {
        return Ok(failed(msg));
    }
    let (start, end) = match (
        date("start_date", &req.start_date),
        date("end_date", &req.end_date),
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(m), _) | (_, Err(m)) => return Ok(failed(m)),
    };
    if req.length_secs < 0 {
        return Ok(failed("invalid length_secs: must not be negative".into()));
    }
    let (cron, schedule) = match kind {
        JobKind::Cron => match (
            Cron::parse(&req.schedule),
            CronSchedule::parse(&req.schedule),
        ) {
            (Ok(c), Some(s)) => (Some(c), Some(s)),
            (Err(e), _) => return Ok(failed(e.to_string())),
            (Ok(_), None) => return Ok(failed("invalid crontab".into())),
        },
        JobKind::Atq => (None, None),
    };
    let server = opt(req.server);
    let trigger = opt(req.trigger);

    // Only overhead jobs conflict, and only with other overhead jobs, under both overlap rule
    // sets: a no-overhead job is a passive measurement the original lets run alongside
    // anything (its node agent also exempts it from scavenger mode).
    if req.overhead {
        let mut existing = ctx.store.get_jobs_by_nodeid(&req.nodeid).await?;
        if let Some(server) = &server {
            existing.extend(ctx.store.get_jobs_by_nodeid(server).await?);
        }
        let mut scheds = Vec::new();
        for job in existing.iter().filter(|j| j.overhead) {
            match sched_of(job) {
                Ok(s) => scheds.push(s),
                Err(e) => tracing::warn!(jobid = %job.id, "skipping unreadable job: {e}"),
            }
        }
        let new = Sched {
            id: req.id.clone(),
            kind,
            cron,
            cron_text: req.schedule.clone(),
            start,
            end,
            start_text: req.start_date.clone(),
            end_text: req.end_date.clone(),
            length: req.length_secs.into(),
        };
        match overlap::conflicts(&new, &scheds, ctx.overlap) {
            Ok(c) if !c.is_empty() => {
                return Ok(failed(overlap::message(&c, offset_of(&req.start_date))))
            }
            Ok(_) => {}
            Err(e) => return Ok(failed(e.to_string())),
        }
    }
    if let Some(t) = &trigger {
        if let Err(msg) = trigger::verify(t) {
            return Ok(failed(msg));
        }
    }
    let job = Job {
        id: req.id,
        nodeid: req.nodeid,
        userid: caller.userid.clone(),
        kind,
        params: crate::store::JobParams {
            mode: params.mode,
            deploy: params.deploy,
            execute: params.execute,
            finish: params.finish,
        },
        schedule,
        start_date: req.start_date,
        end_date: req.end_date,
        length_secs: req.length_secs.into(),
        overhead: req.overhead,
        server,
        trigger,
        config: Some(req.config),
        expire_at: Some(end),
    };
    Ok(if ctx.store.add_job(&job).await? {
        MessageScheduleJobResponse {
            state: state(true),
            message: "job successfully scheduled".into(),
        }
    } else {
        failed("job with the given id exists".into())
    })
}

pub async fn get_job_by_id(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageGetJobById,
) -> ServiceResult<MessageGetJobByIdResponse> {
    let Some(job) = ctx.store.get_job(&req.jobid).await? else {
        return Ok(MessageGetJobByIdResponse::default());
    };
    Ok(MessageGetJobByIdResponse {
        exists: true,
        id: job.id.clone(),
        nodeid: job.nodeid.clone(),
        r#type: job_type(job.kind),
        params: Some(params_wire(&job)),
        schedule: schedule_text(&job),
        userid: job.userid.clone(),
        trigger: job.trigger.clone().unwrap_or_default(),
        config: job.config.clone().unwrap_or_default(),
        server: job.server.clone().unwrap_or_default(),
        overhead: job.overhead,
        start_date: job.start_date.clone(),
        end_date: job.end_date.clone(),
    })
}

pub async fn get_jobs_by_userid(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageGetJobsByUserid,
) -> ServiceResult<MessageGetJobsByUseridResponse> {
    if !policy::may_access_jobs_of(caller, &req.userid) {
        return Ok(MessageGetJobsByUseridResponse {
            exists: false,
            message: policy::denied(caller),
            jobs: vec![],
        });
    }
    let jobs = ctx.store.get_jobs_by_userid(Some(&req.userid)).await?;
    Ok(MessageGetJobsByUseridResponse {
        exists: !jobs.is_empty(),
        message: String::new(),
        jobs: jobs.iter().map(job_wire).collect(),
    })
}

pub async fn get_jobs_by_nodeid(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageGetJobsByNodeid,
) -> ServiceResult<MessageGetJobsByNodeidResponse> {
    let jobs = ctx.store.get_jobs_by_nodeid(&req.nodeid).await?;
    Ok(MessageGetJobsByNodeidResponse {
        exists: !jobs.is_empty(),
        jobs: jobs.iter().map(job_wire).collect(),
    })
}

fn rescheduled(ok: bool, message: String) -> MessageRescheduleJobResponse {
    MessageRescheduleJobResponse {
        rescheduled: ok,
        message,
    }
}

pub async fn reschedule_job_nearest(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageRescheduleJob,
) -> ServiceResult<MessageRescheduleJobResponse> {
    let (start, end) = match (
        date("starttime", &req.starttime),
        date("endtime", &req.endtime),
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(m), _) | (_, Err(m)) => return Ok(rescheduled(false, m)),
    };
    let Some(job) = ctx.store.get_job(&req.jobid).await? else {
        return Ok(rescheduled(
            false,
            "job with the given id not found.".into(),
        ));
    };
    if !(policy::may_access_jobs_of(caller, &job.userid)
        || policy::is_node_or_admin(caller, &job.nodeid))
    {
        return Ok(rescheduled(false, policy::denied(caller)));
    }
    if job.kind != JobKind::Atq {
        return Ok(rescheduled(
            false,
            "only jobs of type 'atq' can be rescheduled.".into(),
        ));
    }
    let node_jobs = ctx.store.get_jobs_by_nodeid(&job.nodeid).await?;
    let off = offset_of(&req.starttime);
    let next = if node_jobs.is_empty() {
        Some(start + chrono::Duration::minutes(10))
    } else {
        let mut scheds = Vec::new();
        for other in node_jobs.iter().filter(|j| j.id != job.id) {
            match sched_of(other) {
                Ok(s) => scheds.push(s),
                Err(e) => tracing::warn!(jobid = %other.id, "skipping unreadable job: {e}"),
            }
        }
        match slot::find_empty_slot(start, end, job.length_secs, &scheds, ctx.overlap) {
            Ok(n) => n,
            Err(e) => return Ok(rescheduled(false, e.to_string())),
        }
    };
    let Some(next) = next else {
        return Ok(rescheduled(
            false,
            format!(
                "empty slot not found with the given constraints:start_time={} end_time={}",
                pystr(start, off),
                pystr(end, off)
            ),
        ));
    };
    // The original wrote end_date = next_slot, leaving a zero-length window that is never
    // scheduled again; the run's own end is kept instead (docs/compatibility.md).
    let new_end = next + secs(job.length_secs);
    let found = ctx
        .store
        .update_job_dates(&job.id, &pystr(next, off), &pystr(new_end, off))
        .await?;
    if !found {
        return Ok(rescheduled(
            false,
            "job with the given id not found.".into(),
        ));
    }
    Ok(rescheduled(
        true,
        format!(
            "updated job schedule successfully; next_slot={}",
            pystr(next, off)
        ),
    ))
}

pub async fn modify_job(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageModifyJob,
) -> ServiceResult<MessageModifyJobResponse> {
    // The original never implemented modify_job; its reply has no field, so answer empty.
    Ok(MessageModifyJobResponse::default())
}

pub async fn delete_job_by_id(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageDeleteJobById,
) -> ServiceResult<MessageDeleteJobByIdResponse> {
    let reply = |exists: bool, message: String| MessageDeleteJobByIdResponse { exists, message };
    if !policy::is_admin(caller) {
        match ctx.store.get_job(&req.jobid).await? {
            None => {
                return Ok(reply(
                    false,
                    format!("job with jobid={} does not exist", req.jobid),
                ))
            }
            Some(job) if job.userid != caller.userid => {
                return Ok(reply(true, policy::denied(caller)))
            }
            Some(_) => {}
        }
    }
    Ok(if ctx.store.delete_job(&req.jobid).await? {
        reply(true, "deleted job successfully".into())
    } else {
        reply(false, "job with given jobid does not exist".into())
    })
}

pub async fn delete_jobs_by_nodeid(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageDeleteJobsByNodeid,
) -> ServiceResult<MessageDeleteJobsByNodeidResponse> {
    if !policy::is_admin(caller) {
        return Ok(MessageDeleteJobsByNodeidResponse {
            num_deleted: 0,
            message: policy::denied(caller),
        });
    }
    let n = ctx.store.delete_jobs_by_nodeid(&req.nodeid).await?;
    Ok(MessageDeleteJobsByNodeidResponse {
        num_deleted: i32::try_from(n).unwrap_or(i32::MAX),
        message: "deleted records successfully".into(),
    })
}
