//! The options of `leotest job`: what the command line says, and the schedule request it
//! becomes. A module of its own because both the command ([`super::run`]) and the dry run
//! ([`super::plan`]) read them.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use crate::cli::times;
use crate::cli::{given, read_small_file, CliError};

/// Experiment config read when --exp-config is not given.
const DEFAULT_EXP_CONFIG: &str = "experiment-config.yaml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum JobAction {
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
pub(crate) enum JobKind {
    Cron,
    Atq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ParamsMode {
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
dates:  ISO 8601 (YYYY-MM-DDTHH:MM:SSZ; without an offset, UTC) or relative to now:
        now, now+N or now-N with N in s, m, h or d (now+2h, now+30d)
Example: leotest job --action=schedule --jobid=j1 --nodeid=n1 --type=cron --schedule='*/6 * * * *' \\
           --start-date=now --end-date=now+30d --length=60 --exp-config=exp.yaml")]
pub(crate) struct JobArgs {
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
    /// Start date (ISO 8601, or now+2h style); for reschedule the start of the search window
    #[arg(long, value_parser = times::absolute)]
    pub start_date: Option<String>,
    /// End date (ISO 8601, or now+30d style); for reschedule the end of the search window
    #[arg(long, value_parser = times::absolute)]
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

    pub(in crate::cli) fn schedule_request(&self) -> Result<unary::MessageScheduleJob, CliError> {
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
