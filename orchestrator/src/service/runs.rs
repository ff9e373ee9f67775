//! Run RPCs (issue 4): update and query runs, expand scheduled runs of a node.

use chrono::Utc;
use leotest_proto::unary::*;

use super::jobs::{sched_of, schedule_text};
use super::{state, validate, Ctx};
use crate::auth::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::schedule::cron::{secs, MAX_RUNS};
use crate::store::{JobKind, Run, RunFilter};
use crate::timefmt::{format_python, parse_datetime};

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub async fn update_run(
    ctx: &Ctx,
    _caller: &Caller,
    req: MessageUpdateRun,
) -> ServiceResult<MessageUpdateRunResponse> {
    let fail = |message: String| MessageUpdateRunResponse {
        state: state(false),
        message,
    };
    let r = req.run.unwrap_or_default();
    let checks = validate::id("runid", &r.runid)
        .and_then(|_| validate::text("jobid", &r.jobid))
        .and_then(|_| validate::text("nodeid", &r.nodeid))
        .and_then(|_| validate::text("userid", &r.userid))
        .and_then(|_| validate::text("blob_url", &r.blob_url))
        .and_then(|_| validate::text("status", &r.status))
        .and_then(|_| validate::text("status_message", &r.status_message));
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
    ctx.store.update_run(&run).await?;
    // Reporting a run also counts as a heartbeat of the node, as in the original.
    ctx.store.mark_node(&run.nodeid, Utc::now()).await?;
    Ok(MessageUpdateRunResponse {
        state: state(true),
        message: "updated run successfully".into(),
    })
}

pub async fn get_runs(
    ctx: &Ctx,
    _caller: &Caller,
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
    let filter = RunFilter {
        runid: opt(req.runid),
        jobid: opt(req.jobid),
        nodeid: opt(req.nodeid),
        userid: opt(req.userid),
        start_from,
        start_to,
        limit: u32::try_from(req.limit).ok().filter(|l| *l > 0),
    };
    let runs = ctx.store.get_runs(&filter).await?;
    Ok(MessageGetRunsResponse {
        runs: runs
            .into_iter()
            .map(|r| RunInstance {
                runid: r.runid,
                jobid: r.jobid,
                nodeid: r.nodeid,
                userid: r.userid,
                start_time: format_python(r.start_time),
                end_time: format_python(r.end_time),
                last_updated: format_python(r.last_updated),
                blob_url: r.blob_url,
                status: r.status,
                status_message: r.status_message,
            })
            .collect(),
    })
}

pub async fn get_scheduled_runs(
    ctx: &Ctx,
    _caller: &Caller,
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
    let mut events: Vec<RunEvent> = Vec::with_capacity(total);
    for (job, kind, starts) in planned {
        // Python prints these with the offset of whichever bound it computed them from.
        let off = req_off.or_else(|| crate::schedule::offset_of(&job.start_date));
        let run_length = secs(job.length_secs);
        // Everything but the times and the id is the same for all events of a job: build it
        // once and clone it (exact-size copies) instead of re-formatting per event.
        let template = RunEvent {
            title: job.id.clone(),
            id: 0,
            start: String::new(),
            end: String::new(),
            r#type: kind.to_string(),
            params: Some(JobParams {
                mode: job.params.mode.clone(),
                deploy: job.params.deploy.clone(),
                execute: job.params.execute.clone(),
                finish: job.params.finish.clone(),
            }),
            schedule: schedule_text(job),
            length: i32::try_from(job.length_secs).unwrap_or(i32::MAX),
            overhead: job.overhead,
            trigger: job.trigger.clone().unwrap_or_default(),
            server: job.server.clone().unwrap_or_default(),
        };
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
