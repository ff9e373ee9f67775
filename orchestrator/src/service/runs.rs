//! Run RPCs: report and query runs, expand the scheduled runs of a node.
//!
//! Runs follow the ownership rule of their job ([`policy::job_access`], [`access`]): a node
//! agent reports the runs of its node's jobs, owners read their own runs.

use chrono::Utc;
use leotest_proto::unary::*;

use super::access::{self, Jobs};
use super::convert::{event_template, run_to_wire};
use super::jobs::sched_of;
use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::policy;
use crate::schedule::cron::{secs, MAX_RUNS};
use crate::store::{JobKind, Run, RunFilter};
use crate::timefmt::parse_datetime;

/// A filter the request set (proto3 `optional`) to a non-empty value: the original tests
/// `HasField` and then the value's truthiness, so a filter set to `""` filters nothing.
fn opt(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Whether `caller` may write `run`; `Err` is the refusal message.
///
/// A runid belongs to one job, user and node for good (nobody rewrites another's run). The
/// run must name its job's owner and one of its job's nodes, and the caller must be ADMIN or
/// someone the ownership rule gives the job. When the job is gone (it expired at its
/// `end_date` or was deleted while a run was finishing), the node may still report runs on
/// itself and the owner of an existing run may still update it.
async fn may_report(ctx: &Ctx, caller: &Caller, run: &Run) -> ServiceResult<Result<(), String>> {
    if policy::is_admin(caller) {
        return Ok(Ok(()));
    }
    let existing = ctx
        .store
        .get_runs(&RunFilter {
            runid: Some(run.runid.clone()),
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .into_iter()
        .next();
    let same_run = existing
        .as_ref()
        .is_none_or(|e| (&e.jobid, &e.userid, &e.nodeid) == (&run.jobid, &run.userid, &run.nodeid));
    let allowed = same_run
        && match ctx.store.get_job(&run.jobid).await? {
            Some(job) => {
                policy::job_access(caller, &job).any()
                    && run.userid == job.userid
                    && (run.nodeid == job.nodeid || job.server_node() == Some(run.nodeid.as_str()))
            }
            None => {
                policy::is_node(caller, &run.nodeid)
                    || existing.is_some_and(|e| e.userid == caller.userid)
            }
        };
    Ok(if allowed {
        Ok(())
    } else {
        Err(policy::denied(caller))
    })
}

/// `update_run`: a node agent (or the job's owner, ADMIN) stores a run's state.
pub async fn update_run(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageUpdateRun,
) -> ServiceResult<MessageUpdateRunResponse> {
    let fail = |message: String| MessageUpdateRunResponse {
        state: state(false),
        message,
    };
    let r = req.run.unwrap_or_default();
    // blob_url, status and status_message are free text, bounded: every get_runs repeats them.
    let checks = validate::id("runid", &r.runid)
        .and_then(|_| validate::id_ref("jobid", &r.jobid))
        .and_then(|_| validate::id_ref("nodeid", &r.nodeid))
        .and_then(|_| validate::id_ref("userid", &r.userid))
        .and_then(|_| validate::text("blob_url", &r.blob_url, validate::MAX_URL_BYTES))
        .and_then(|_| validate::text("status", &r.status, validate::MAX_ID_LEN))
        .and_then(|_| {
            validate::text(
                "status_message",
                &r.status_message,
                validate::MAX_PARAM_BYTES,
            )
        });
    if let Err(m) = checks {
        return Ok(fail(m));
    }
    let mut times = Vec::with_capacity(3);
    for (field, value) in [
        ("start_time", &r.start_time),
        ("end_time", &r.end_time),
        ("last_updated", &r.last_updated),
    ] {
        match parse_datetime(value) {
            Some(t) => times.push(t),
            None => {
                return Ok(fail(format!(
                    "invalid {field}: '{}'",
                    value.chars().take(64).collect::<String>()
                )))
            }
        }
    }
    let run = Run {
        runid: r.runid,
        jobid: r.jobid,
        nodeid: r.nodeid,
        userid: r.userid,
        start_time: times[0],
        end_time: times[1],
        last_updated: times[2],
        blob_url: r.blob_url,
        status: r.status,
        status_message: r.status_message,
    };
    if let Err(message) = may_report(ctx, caller, &run).await? {
        return Ok(fail(message));
    }
    ctx.store.update_run(&run).await?;
    // Reporting a run also counts as a heartbeat of the node, as in the original, but only
    // from the node itself (report_heartbeat's rule): nobody else can make a node look alive.
    if run.nodeid == caller.userid {
        ctx.store.mark_node(&run.nodeid, ctx.clock.now()).await?;
    }
    Ok(MessageUpdateRunResponse {
        state: state(true),
        message: "updated run successfully".into(),
    })
}

/// `get_runs`: the runs matching the filters that the caller may see.
pub async fn get_runs(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageGetRuns,
) -> ServiceResult<MessageGetRunsResponse> {
    let (start_from, start_to) = match &req.time_range {
        Some(tr) => match (parse_datetime(&tr.start), parse_datetime(&tr.end)) {
            (Some(a), Some(b)) => (Some(a), Some(b)),
            _ => {
                return Err(ServiceError::InvalidArgument(
                    "invalid time_range: start and end must be ISO-8601 dates".into(),
                ))
            }
        },
        None => (None, None),
    };
    let mut filter = RunFilter {
        runid: opt(req.runid),
        jobid: opt(req.jobid),
        nodeid: opt(req.nodeid),
        userid: opt(req.userid),
        start_from,
        start_to,
        // `limit` set to 0 means no limit, as the original's `if limit:`.
        limit: req
            .limit
            .and_then(|l| u32::try_from(l).ok())
            .filter(|l| *l > 0),
    };
    // People see their own runs (blob URLs open the artifacts): asking the store for exactly
    // those keeps `limit` exact. Nodes see runs on themselves and of the jobs they serve.
    if !policy::is_admin(caller) && !policy::is_node_identity(caller) {
        match &filter.userid {
            Some(u) if *u != caller.userid => return Ok(MessageGetRunsResponse { runs: vec![] }),
            _ => filter.userid = Some(caller.userid.clone()),
        }
    }
    let mut jobs = Jobs::new(ctx.store.as_ref());
    let mut runs = Vec::new();
    for run in ctx.store.get_runs(&filter).await? {
        if access::run_visible(caller, &run, &mut jobs).await? {
            runs.push(run_to_wire(run));
        }
    }
    Ok(MessageGetRunsResponse {
        runs: super::reply::within("get_runs", runs, ctx.max_reply_bytes),
    })
}

/// Bytes an event takes on the wire beyond its job's template: the id (tag and a 5-byte
/// varint), two printed datetimes (at most 32 characters, `2019-01-01 00:10:32.910943+05:30`,
/// counted as 40) with tag and length, and the event's own tag and length prefix.
const EVENT_EXTRA_BYTES: usize = 6 + 2 * (2 + 40) + 6;

/// `get_scheduled_runs`: the runs a node's jobs will make between `start` and `end`.
pub async fn get_scheduled_runs(
    ctx: &Ctx,
    caller: &Caller,
    req: MessageGetScheduledRuns,
) -> ServiceResult<MessageGetScheduledRunsResponse> {
    let fail = |message: String| MessageGetScheduledRunsResponse {
        state: state(false),
        message,
        events: vec![],
    };
    let (Some(limit_start), Some(limit_end)) =
        (parse_datetime(&req.start), parse_datetime(&req.end))
    else {
        return Ok(fail("error: start and end must be ISO-8601 dates".into()));
    };
    if limit_end < limit_start {
        return Ok(fail("error: end must be greater than start".into()));
    }
    let req_off = crate::schedule::offset_of(&req.start);
    let jobs = ctx.store.get_jobs_by_nodeid(&req.nodeid).await?;
    let too_many = || {
        fail(format!(
            "error: more than {MAX_RUNS} runs in the requested range"
        ))
    };
    // Run starts of every job first (cheap), so the events are built into one exactly sized
    // vector: the response is large (10 000+ events for a busy week) and regrowing it was a
    // visible share of the RPC's time.
    let mut planned: Vec<(&crate::store::Job, &'static str, Vec<chrono::DateTime<Utc>>)> =
        Vec::new();
    let mut total = 0usize;
    for job in &jobs {
        let sched = match sched_of(job) {
            Ok(s) => s,
            Err(e) => return Ok(fail(format!("error: job {}: {e}", job.id))),
        };
        let lo = sched.start.max(limit_start);
        let hi = sched.end.min(limit_end);
        if lo >= hi {
            continue;
        }
        let (kind, starts) = match (job.kind, &sched.cron) {
            (JobKind::Cron, Some(c)) => {
                let mut starts = Vec::new();
                let r = c.for_each(lo, hi, |dt| {
                    starts.push(dt);
                    total + starts.len() < MAX_RUNS
                });
                if r.is_err() || total + starts.len() >= MAX_RUNS {
                    return Ok(too_many());
                }
                ("cron", starts)
            }
            _ => ("atq", vec![sched.start]),
        };
        total += starts.len();
        planned.push((job, kind, starts));
    }
    // Everything but the times and the id is the same for all events of a job: one template
    // per job, whose encoded size gives the reply's size before any event is built. A reply
    // over `--max-reply-bytes` is refused here, so a job with large params on a busy
    // calendar costs one template, not one copy per run.
    let mut templates = Vec::with_capacity(planned.len());
    let mut bytes = 0usize;
    for (job, kind, starts) in &planned {
        let mut template = event_template(job, kind);
        if !policy::job_access(caller, job).any() {
            // Same event, params empty: another user's command lines may hold credentials.
            template.params = Some(JobParams::default());
        }
        let per_event = prost::Message::encoded_len(&template) + EVENT_EXTRA_BYTES;
        bytes = bytes.saturating_add(per_event.saturating_mul(starts.len()));
        if bytes > ctx.max_reply_bytes {
            return Ok(fail(format!(
                "error: the reply would exceed {} bytes ({total} runs in the requested \
                 range); ask for a shorter range",
                ctx.max_reply_bytes
            )));
        }
        templates.push(template);
    }
    let mut events: Vec<RunEvent> = Vec::with_capacity(total);
    for ((job, _, starts), template) in planned.into_iter().zip(templates) {
        // Python prints these with the offset of whichever bound it computed them from.
        let off = req_off.or_else(|| crate::schedule::offset_of(&job.start_date));
        let run_length = secs(job.length_secs);
        for start in starts {
            events.push(RunEvent {
                id: i32::try_from(events.len()).unwrap_or(i32::MAX),
                start: crate::schedule::pystr(start, off),
                end: crate::schedule::pystr(start + run_length, off),
                ..template.clone()
            });
        }
    }
    Ok(MessageGetScheduledRunsResponse {
        state: state(true),
        message: "success".into(),
        events,
    })
}
