//! `leotest job --action schedule|get|modify|delete|reschedule|plan`.

mod args;
mod plan;

use leotest_client::leotest_proto::unary;

use args::JobAction;
pub(super) use args::JobArgs;

use super::{CliError, CliResult, Global, Outcome, Output};

pub(super) async fn run(global: &Global, out: &Output, args: JobArgs) -> CliResult {
    match args.action {
        JobAction::Schedule => {
            plan::check(&args, chrono::Utc::now())?;
            let request = args.schedule_request()?;
            let client = global.connect().await?;
            plan::warn_unknown_node(&client, &request.nodeid).await;
            let reply = client.schedule_job(request).await?;
            out.reply(&reply, "message_schedule_job_response")
        }
        JobAction::Plan => {
            if args.nodeid.is_none() {
                return Err(CliError::Usage("job plan needs --nodeid".into()));
            }
            let checked = plan::check(&args, chrono::Utc::now())?;
            let client = global.connect().await?;
            let (report, free) = plan::plan(&client, &args, &checked, out.tz).await?;
            out.value(&report)?;
            Ok(if free { Outcome::Ok } else { Outcome::Failed })
        }
        JobAction::Get => {
            let client = global.connect().await?;
            if let Some(jobid) = args.jobid {
                let what = format!("job {jobid:?}");
                let reply = client
                    .get_job_by_id(unary::MessageGetJobById { jobid })
                    .await?;
                out.record(&reply, "message_get_job_by_id_response", &what)
            } else if let Some(nodeid) = args.nodeid {
                let reply = client
                    .get_jobs_by_nodeid(unary::MessageGetJobsByNodeid { nodeid })
                    .await?;
                out.reply(&reply, "message_get_jobs_by_nodeid_response")
            } else {
                // An empty userid lists every job (ADMIN only, as the original's `if userid:`).
                let userid = if args.all {
                    String::new()
                } else {
                    args.owner.unwrap_or_else(|| global.userid.clone())
                };
                let reply = client
                    .get_jobs_by_userid(unary::MessageGetJobsByUserid { userid })
                    .await?;
                out.reply(&reply, "message_get_jobs_by_userid_response")
            }
        }
        JobAction::Delete => {
            if let Some(jobid) = args.jobid {
                let client = global.connect().await?;
                let reply = client
                    .delete_job_by_id(unary::MessageDeleteJobById { jobid })
                    .await?;
                if !reply.exists {
                    return Err(CliError::NotFound(reply.message));
                }
                out.reply(&reply, "message_delete_job_by_id_response")
            } else if let Some(nodeid) = args.nodeid {
                let client = global.connect().await?;
                let reply = client
                    .delete_jobs_by_nodeid(unary::MessageDeleteJobsByNodeid { nodeid })
                    .await?;
                out.reply(&reply, "message_delete_jobs_by_nodeid_response")
            } else {
                Err(CliError::Usage(
                    "job delete: at least one of --jobid or --nodeid must be specified".into(),
                ))
            }
        }
        JobAction::Reschedule => {
            let (Some(jobid), Some(starttime), Some(endtime)) =
                (args.jobid, args.start_date, args.end_date)
            else {
                return Err(CliError::Usage(
                    "job reschedule needs --jobid, --start-date and --end-date".into(),
                ));
            };
            let client = global.connect().await?;
            let reply = client
                .reschedule_job_nearest(unary::MessageRescheduleJob {
                    jobid,
                    starttime,
                    endtime,
                })
                .await?;
            out.reply(&reply, "message_reschedule_job_response")
        }
        JobAction::Modify => Err(CliError::Unsupported(
            "job modify: the orchestrator has no job fields to modify; delete and schedule again"
                .into(),
        )),
    }
}
