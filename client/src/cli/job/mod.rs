//! `leotest job --action schedule|get|modify|delete|reschedule`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use super::{given, plan, read_small_file, CliError, CliResult, Global, Outcome, Output};

/// Experiment config read when --exp-config is not given.
const DEFAULT_EXP_CONFIG: &str = "experiment-config.yaml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobAction {
    Schedule,
    Get,
    Modify,
    Delete,
    /// Move a job to the nearest free slot in [--start-date, --end-date] (new)
    Reschedule,
    /// Dry run of schedule: conflicts on the node and the nearest free slot (new)
    Plan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobKind {
    Cron,
    Atq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParamsMode {
    Docker,
}

#[derive(Debug, Args)]
#[command(after_help = "\
get:    --jobid, else --nodeid, else the jobs of --owner (default: the user logged in;
        --all: every job, ADMIN only)
delete: --jobid, or every job of --nodeid
schedule checks dates (end after start, not over), --length, and --schedule for cron jobs
        before sending, and warns about a node that is not registered
plan:   the schedule options without creating anything: conflicts with the node's booked
        runs and, for --type=atq, the nearest free slot (exit 0 free, 1 conflicts)
Example: leotest job --action=schedule --jobid=j1 --nodeid=n1 --type=cron --schedule='*/6 * * * *' \\
           --start-date=2026-01-01T00:00:00 --end-date=2026-02-01T00:00:00 --length=60 --exp-config=exp.yaml")]
pub struct JobArgs {
    /// Action to perform on the job
    #[arg(long, value_enum)]
    pub action: JobAction,
    /// Job id
    #[arg(long)]
    pub jobid: Option<String>,
    /// Node the job is scheduled on
    #[arg(long)]
    pub nodeid: Option<String>,
    /// Type of job
    #[arg(long = "type", value_enum, default_value = "cron")]
    pub kind: JobKind,
    /// Mode
    #[arg(long = "params_mode", value_enum, default_value = "docker")]
    pub params_mode: ParamsMode,
    /// Deploy parameter
    #[arg(long = "params_deploy", default_value = "params_deploy")]
    pub params_deploy: String,
    /// Execute parameter
    #[arg(long = "params_execute", default_value = "params_execute")]
    pub params_execute: String,
    /// Finish parameter
    #[arg(long = "params_finish", default_value = "params_finish")]
    pub params_finish: String,
    /// Cron schedule (5 fields), for cron jobs
    #[arg(long)]
    pub schedule: Option<String>,
    /// Trigger expression that must hold for a run to start
    #[arg(long)]
    pub trigger: Option<String>,
    /// Start date (ISO 8601); for reschedule the start of the search window
    #[arg(long)]
    pub start_date: Option<String>,
    /// End date (ISO 8601); for reschedule the end of the search window
    #[arg(long)]
    pub end_date: Option<String>,
    /// Test length in seconds
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub length: Option<i32>,
    /// Overhead experiment (default)
    #[arg(long, conflicts_with = "no_overhead")]
    pub overhead: bool,
    /// No-overhead experiment
    #[arg(long)]
    pub no_overhead: bool,
    /// Node id of the server used by the experiment
    #[arg(long)]
    pub server: Option<String>,
    /// Experiment config YAML sent with the job
    #[arg(long)]
    pub exp_config: Option<PathBuf>,
    /// get: list the jobs of this user (ADMIN: anyone's) instead of the login's
    #[arg(long, conflicts_with = "all")]
    pub owner: Option<String>,
    /// get: list every job (ADMIN only)
    #[arg(long)]
    pub all: bool,
}

impl JobArgs {
    /// The experiment config text: an explicitly named file must exist; the default one may
    /// be absent (then the job carries no config).
    fn experiment_config(&self) -> Result<String, CliError> {
        match &self.exp_config {
            Some(path) => read_small_file(path),
            None => {
                let path = PathBuf::from(DEFAULT_EXP_CONFIG);
                if path.exists() {
                    read_small_file(&path)
                } else {
                    eprintln!("warn: {DEFAULT_EXP_CONFIG} not found, scheduling without an experiment config");
                    Ok(String::new())
                }
            }
        }
    }

    pub(super) fn schedule_request(&self) -> Result<unary::MessageScheduleJob, CliError> {
        let id = self
            .jobid
            .clone()
            .ok_or_else(|| CliError::Usage("job schedule needs --jobid".into()))?;
        let nodeid = self
            .nodeid
            .clone()
            .ok_or_else(|| CliError::Usage("job schedule needs --nodeid".into()))?;
        let kind = match self.kind {
            JobKind::Cron => unary::JobType::Cron,
            JobKind::Atq => unary::JobType::Atq,
        };
        Ok(unary::MessageScheduleJob {
            id,
            nodeid,
            r#type: kind as i32,
            params: Some(unary::JobParams {
                mode: "docker".into(),
                deploy: self.params_deploy.clone(),
                execute: self.params_execute.clone(),
                finish: self.params_finish.clone(),
            }),
            schedule: self.schedule.clone().unwrap_or_default(),
            start_date: self.start_date.clone().unwrap_or_default(),
            end_date: self.end_date.clone().unwrap_or_default(),
            length_secs: self.length.unwrap_or(0),
            overhead: !self.no_overhead,
            // As the original client: `server` only when non-empty, `trigger` whenever given
            // (an explicitly empty trigger is sent, and stored, as `""`).
            server: given(&self.server),
            trigger: self.trigger.clone(),
            userid: String::new(),
            config: self.experiment_config()?,
        })
    }
}

pub async fn run(global: &Global, out: &Output, args: JobArgs) -> CliResult {
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
