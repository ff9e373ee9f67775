//! Job RPCs: schedule, read, reschedule, modify and delete jobs.
//!
//! Reads follow the ownership rule of [`policy::job_access`]: a job the caller may not see
//! answers like an unknown one (`exists = false`), lists leave it out.

use leotest_proto::unary::*;

use super::convert::{self, job_by_id_reply, job_to_wire, params_from_wire};
use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::ServiceResult;
use crate::logsafe::untrusted;
use crate::policy;
use crate::schedule::cron::{secs, Cron};
use crate::schedule::overlap::{self, Sched};
use crate::schedule::{offset_of, pystr, slot, trigger};
use crate::store::{Booked, BookingWrite, CronSchedule, Job, JobKind};
use crate::timefmt::parse_datetime;

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

fn failed(message: String) -> MessageScheduleJobResponse {
    MessageScheduleJobResponse {
        state: state(false),
        message,
    }
}

/// `schedule_job`: validates the job, checks it against the node's jobs and stores it.
pub async fn schedule_job(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageScheduleJob,
) -> ServiceResult<MessageScheduleJobResponse> {
    let Some(kind) = convert::job_kind(req.r#type) else {
        return Ok(failed("unknown error".into()));
    };
    let params = req.params.unwrap_or_default();
    // Params, config (a whole experiment YAML) and trigger are free text, bounded by what
    // every later calendar read of the node costs (validate's module documentation).
    let checks = validate::id("id", &req.id)
        .and_then(|_| validate::id("nodeid", &req.nodeid))
        .and_then(|_| validate::id_ref("server", req.server.as_deref().unwrap_or_default()))
        .and_then(|_| {
            use validate::{text, MAX_PARAM_BYTES as P};
            text("params_mode", &params.mode, P)?;
            text("params_deploy", &params.deploy, P)?;
            text("params_execute", &params.execute, P)?;
            text("params_finish", &params.finish, P)?;
            // `schedule` (256 bytes) and `trigger` (4096) are bounded by their parsers below.
            text("config", &req.config, validate::MAX_CONFIG_BYTES)
        });
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
    // Kept as sent, presence included (the original's `HasField`): an explicitly empty
    // `server` names no server (its `if server:`) but is stored `""` and echoed present; an
    // explicitly empty `trigger` is validated (the empty expression is valid) and stored `""`.
    let server = req.server;
    let trigger = req.trigger;

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
    let offset = offset_of(&req.start_date);
    let job = Job {
        id: req.id,
        nodeid: req.nodeid,
        userid: caller.userid.clone(),
        kind,
        params: params_from_wire(params),
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
    let booked = if job.overhead {
        // Check and insert as one booking of the node (and of the server): two requests for
        // one window cannot both pass the check, in this process or another replica.
        let nodes: Vec<String> = std::iter::once(job.nodeid.clone())
            .chain(job.server_node().map(str::to_string))
            .collect();
        let mut refusal = None;
        let booked = ctx
            .store
            .book(&nodes, &mut |lists| {
                refusal = admit(ctx, &new, &job, lists, offset).err();
                refusal
                    .is_none()
                    .then(|| BookingWrite::Insert(Box::new(job.clone())))
            })
            .await?;
        if booked == Booked::Refused {
            return Ok(failed(refusal.unwrap_or_else(|| "unknown error".into())));
        }
        booked
    } else {
        // Only overhead jobs conflict, and only with other overhead jobs, under both overlap
        // rule sets: a no-overhead job is a passive measurement the original lets run
        // alongside anything (its node agent also exempts it from scavenger mode), so it
        // needs no booking.
        if let Err(msg) = admit(ctx, &new, &job, &[], offset) {
            return Ok(failed(msg));
        }
        if ctx.store.add_job(&job).await? {
            Booked::Written
        } else {
            Booked::IdTaken
        }
    };
    Ok(match booked {
        Booked::Written => MessageScheduleJobResponse {
            state: state(true),
            message: "job successfully scheduled".into(),
        },
        _ => failed("job with the given id exists".into()),
    })
}

/// Whether `job` may be scheduled next to the live jobs of its node and server (`lists`):
/// the overlap check among overhead jobs, then the trigger; `Err` is the refusal message.
fn admit(
    ctx: &Ctx,
    new: &Sched,
    job: &Job,
    lists: &[&[Job]],
    offset: Option<chrono::FixedOffset>,
) -> Result<(), String> {
    let rules = ctx.overlap;
    let overhead = lists.iter().copied().flatten().filter(|j| j.overhead);
    // Remembered parses: this runs under the node's booking lock (see `sched_memo`).
    let mut scheds = Vec::new();
    for parsed in ctx.sched_memo.scheds(overhead, sched_of) {
        match parsed {
            Ok(s) => scheds.push(s),
            Err((id, e)) => tracing::warn!(jobid = %untrusted(&id), "skipping unreadable job: {e}"),
        }
    }
    if job.overhead {
        match overlap::conflicts(new, scheds.iter().map(|s| s.as_ref()), rules) {
            Ok(c) if !c.is_empty() => return Err(overlap::message(&c, offset)),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    match &job.trigger {
        Some(t) => trigger::verify(t),
        None => Ok(()),
    }
}

/// `get_job_by_id`: the job, when the caller may see it.
pub async fn get_job_by_id(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageGetJobById,
) -> ServiceResult<MessageGetJobByIdResponse> {
    // Someone else's job reads as unknown: its config may hold credentials, and the reply
    // has no field for a refusal (the original answered every caller).
    Ok(match ctx.store.get_job(&req.jobid).await? {
        Some(job) if policy::job_access(caller, &job).any() => job_by_id_reply(&job),
        _ => MessageGetJobByIdResponse::default(),
    })
}

/// `get_jobs_by_userid`: the jobs a user owns, for that user or ADMIN.
pub async fn get_jobs_by_userid(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageGetJobsByUserid,
) -> ServiceResult<MessageGetJobsByUseridResponse> {
    if !policy::may_list_jobs_of(caller, &req.userid) {
        return Ok(MessageGetJobsByUseridResponse {
            exists: false,
            message: policy::denied(caller),
            jobs: vec![],
        });
    }
    // An empty userid lists every job, as the original's `if userid:` did (ADMIN only: nobody
    // else passes the check above with an empty id).
    let userid = Some(req.userid.as_str()).filter(|u| !u.is_empty());
    let jobs = ctx.store.get_jobs_by_userid(userid).await?;
    let wire = jobs.iter().map(job_to_wire).collect();
    Ok(MessageGetJobsByUseridResponse {
        exists: !jobs.is_empty(),
        message: String::new(),
        jobs: super::reply::within("get_jobs_by_userid", wire, ctx.max_reply_bytes),
    })
}

/// `get_jobs_by_nodeid`: the node's jobs that the caller may see.
pub async fn get_jobs_by_nodeid(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageGetJobsByNodeid,
) -> ServiceResult<MessageGetJobsByNodeidResponse> {
    // ADMIN and the node itself see every job of the node (each names it as nodeid or
    // server); anyone else sees only the jobs the ownership rule gives them.
    let jobs: Vec<Job> = ctx
        .store
        .get_jobs_by_nodeid(&req.nodeid)
        .await?
        .into_iter()
        .filter(|job| policy::job_access(caller, job).any())
        .collect();
    let wire = jobs.iter().map(job_to_wire).collect();
    Ok(MessageGetJobsByNodeidResponse {
        exists: !jobs.is_empty(),
        jobs: super::reply::within("get_jobs_by_nodeid", wire, ctx.max_reply_bytes),
    })
}

fn rescheduled(ok: bool, message: String) -> MessageRescheduleJobResponse {
    MessageRescheduleJobResponse {
        rescheduled: ok,
        message,
    }
}

/// `reschedule_job_nearest`: moves a job to the nearest free slot between `starttime` and `endtime`.
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
    if !policy::job_access(caller, &job).any() {
        return Ok(rescheduled(false, policy::denied(caller)));
    }
    if job.kind != JobKind::Atq {
        return Ok(rescheduled(
            false,
            "only jobs of type 'atq' can be rescheduled.".into(),
        ));
    }
    // Search and move as one booking of the job's node (and server), so two moves into one
    // free slot cannot both find it free.
    let off = offset_of(&req.starttime);
    let nodes: Vec<String> = std::iter::once(job.nodeid.clone())
        .chain(job.server_node().map(str::to_string))
        .collect();
    let mut planned: Result<String, String> = Err(NOT_FOUND.into());
    let booked = ctx
        .store
        .book(&nodes, &mut |lists| {
            let node_jobs = lists.first().copied().unwrap_or_default();
            match plan_move(&job.id, start, end, off, node_jobs, ctx.overlap) {
                Ok((write, next)) => {
                    planned = Ok(next);
                    Some(write)
                }
                Err(message) => {
                    planned = Err(message);
                    None
                }
            }
        })
        .await?;
    Ok(match (booked, planned) {
        (Booked::Written, Ok(next)) => rescheduled(
            true,
            format!("updated job schedule successfully; next_slot={next}"),
        ),
        (Booked::Refused, Err(message)) => rescheduled(false, message),
        _ => rescheduled(false, NOT_FOUND.into()),
    })
}

const NOT_FOUND: &str = "job with the given id not found.";

/// The nearest free slot for job `id` among the live jobs of its node, as the move to write
/// and the slot's text; `Err` is the refusal message.
fn plan_move(
    id: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    off: Option<chrono::FixedOffset>,
    node_jobs: &[Job],
    rules: crate::schedule::OverlapRules,
) -> Result<(BookingWrite, String), String> {
    let Some(job) = node_jobs.iter().find(|j| j.id == id) else {
        return Err(NOT_FOUND.into());
    };
    let next = if node_jobs.is_empty() {
        Some(start + chrono::Duration::minutes(10))
    } else {
        let mut scheds = Vec::new();
        for other in node_jobs.iter().filter(|j| j.id != job.id) {
            match sched_of(other) {
                Ok(s) => scheds.push(s),
                Err(e) => {
                    tracing::warn!(jobid = %untrusted(&other.id), "skipping unreadable job: {e}")
                }
            }
        }
        slot::find_empty_slot(start, end, job.length_secs, &scheds, rules)
            .map_err(|e| e.to_string())?
    };
    let Some(next) = next else {
        return Err(format!(
            "empty slot not found with the given constraints:start_time={} end_time={}",
            pystr(start, off),
            pystr(end, off)
        ));
    };
    // The original wrote end_date = next_slot, leaving a zero-length window that is never
    // scheduled again; the run's own end is kept instead (docs/compatibility.md).
    let new_end = next + secs(job.length_secs);
    let write = BookingWrite::SetDates {
        id: job.id.clone(),
        start_date: pystr(next, off),
        end_date: pystr(new_end, off),
        was_start: job.start_date.clone(),
        was_end: job.end_date.clone(),
    };
    Ok((write, pystr(next, off)))
}

/// `modify_job`: never implemented by the original; answers empty.
pub async fn modify_job(
    _ctx: &Ctx,
    _caller: &Caller,
    _req: MessageModifyJob,
) -> ServiceResult<MessageModifyJobResponse> {
    // The original never implemented modify_job; its reply has no field, so answer empty.
    Ok(MessageModifyJobResponse::default())
}

/// `delete_job_by_id`: the job's owner or ADMIN deletes it.
pub async fn delete_job_by_id(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageDeleteJobById,
) -> ServiceResult<MessageDeleteJobByIdResponse> {
    let reply = |exists: bool, message: String| MessageDeleteJobByIdResponse { exists, message };
    if !policy::is_admin(caller) {
        // ADMIN or the owner, as the original (nodes never delete jobs).
        match ctx.store.get_job(&req.jobid).await? {
            None => {
                return Ok(reply(
                    false,
                    format!("job with jobid={} does not exist", req.jobid),
                ))
            }
            Some(job) if policy::job_access(caller, &job) != policy::JobAccess::Owner => {
                return Ok(reply(true, policy::denied(caller)))
            }
            Some(_) => {}
        }
    }
    // Delete only what the check saw: a job that was deleted and re-created by someone else
    // in between is not ours to delete.
    let deleted = if policy::is_admin(caller) {
        ctx.store.delete_job(&req.jobid).await?
    } else {
        ctx.store.delete_job_of(&req.jobid, &caller.userid).await?
    };
    Ok(if deleted {
        reply(true, "deleted job successfully".into())
    } else {
        reply(false, "job with given jobid does not exist".into())
    })
}

/// `delete_jobs_by_nodeid`: ADMIN deletes every job of a node.
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
