//! `leotest run --action get|download|get-scheduled`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use super::{given, times, CliError, CliResult, Global, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunAction {
    Get,
    Download,
    GetScheduled,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Times: ISO 8601 (YYYY-MM-DDTHH:MM:SSZ; without an offset, UTC) or relative to now: \
now, now+N or now-N with N in s, m, h or d\n\
Example: leotest run --action=get-scheduled --nodeid=n1 --time-range=now,now+1d"
)]
pub(crate) struct RunArgs {
    /// Action to perform on runs
    #[arg(long, value_enum)]
    pub action: RunAction,
    /// Run id
    #[arg(long)]
    pub runid: Option<String>,
    /// Job id
    #[arg(long)]
    pub jobid: Option<String>,
    /// Node id
    #[arg(long)]
    pub nodeid: Option<String>,
    /// Time range START,END (ISO 8601, or relative as now-1d,now)
    #[arg(long, value_parser = parse_time_range)]
    pub time_range: Option<TimeRange>,
    /// Maximum number of runs returned
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..))]
    pub limit: i32,
    /// Global config JSON (download; accepted for compatibility)
    #[arg(long, default_value = "global_config.json")]
    pub global_config: PathBuf,
    /// Local path for downloaded artifacts (download; accepted for compatibility)
    #[arg(long, default_value = "")]
    pub local_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub start: String,
    pub end: String,
}

/// `START,END`, each an absolute date (sent as typed) or a relative time ([`times::absolute`]).
pub(super) fn parse_time_range(text: &str) -> Result<TimeRange, String> {
    match text.split_once(',') {
        Some((start, end)) if !start.trim().is_empty() && !end.trim().is_empty() => Ok(TimeRange {
            start: times::absolute(start.trim())?,
            end: times::absolute(end.trim())?,
        }),
        _ => Err("expected START,END".to_string()),
    }
}

impl RunArgs {
    /// `get_runs`: the filters the user gave, as the original client (`--limit 0`: none).
    pub(super) fn get_request(&self) -> unary::MessageGetRuns {
        unary::MessageGetRuns {
            runid: given(&self.runid),
            jobid: given(&self.jobid),
            nodeid: given(&self.nodeid),
            userid: None,
            time_range: self.time_range.clone().map(|t| unary::MessageTimeRange {
                start: t.start,
                end: t.end,
            }),
            limit: (self.limit > 0).then_some(self.limit),
        }
    }
}

pub(super) async fn run(global: &Global, out: &Output, args: RunArgs) -> CliResult {
    match args.action {
        RunAction::Get => {
            let client = global.connect().await?;
            let reply = client.get_runs(args.get_request()).await?;
            out.reply(&reply, "message_get_runs_response")
        }
        RunAction::GetScheduled => {
            let (Some(nodeid), Some(range)) = (args.nodeid, args.time_range) else {
                return Err(CliError::Usage(
                    "run get-scheduled needs --nodeid and --time-range=START,END".into(),
                ));
            };
            let client = global.connect().await?;
            let reply = client
                .get_scheduled_runs(unary::MessageGetScheduledRuns {
                    nodeid,
                    start: range.start,
                    end: range.end,
                })
                .await?;
            out.reply(&reply, "message_get_scheduled_runs_response")
        }
        RunAction::Download => Err(CliError::Unsupported(
            "run download needs Azure Blob storage, which this client does not include; \
             list runs with `run --action=get` and fetch each blob_url"
                .into(),
        )),
    }
}
