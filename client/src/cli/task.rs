//! `leotest task --action schedule|get|update` (new: the original CLI had no task commands).

use clap::{Args, ValueEnum};
use leotest_client::leotest_proto::unary;

use super::{given, CliError, CliResult, Global, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TaskAction {
    Schedule,
    Get,
    Update,
}

/// Task types as the proto spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskKind {
    #[value(name = "SERVER_START", alias = "server_start")]
    ServerStart,
    #[value(name = "SERVER_STOP", alias = "server_stop")]
    ServerStop,
}

/// Task states as the proto spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskState {
    #[value(name = "TASK_SCHEDULED", alias = "task_scheduled")]
    Scheduled,
    #[value(name = "TASK_COMPLETE", alias = "task_complete")]
    Complete,
}

impl From<TaskState> for unary::TaskStatus {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Scheduled => unary::TaskStatus::TaskScheduled,
            TaskState::Complete => unary::TaskStatus::TaskComplete,
        }
    }
}

impl From<TaskKind> for unary::TaskType {
    fn from(k: TaskKind) -> Self {
        match k {
            TaskKind::ServerStart => unary::TaskType::ServerStart,
            TaskKind::ServerStop => unary::TaskType::ServerStop,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct TaskArgs {
    /// Action to perform on tasks
    #[arg(long, value_enum)]
    pub action: TaskAction,
    /// Task id
    #[arg(long)]
    pub taskid: Option<String>,
    /// Run id
    #[arg(long)]
    pub runid: Option<String>,
    /// Job id
    #[arg(long)]
    pub jobid: Option<String>,
    /// Node id
    #[arg(long)]
    pub nodeid: Option<String>,
    /// Task type (schedule, get filter)
    #[arg(long = "type", value_enum)]
    pub kind: Option<TaskKind>,
    /// Task status (update: new status, default TASK_COMPLETE; get: filter)
    #[arg(long, value_enum)]
    pub status: Option<TaskState>,
    /// Seconds until the task expires (schedule)
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(i32).range(1..))]
    pub ttl_secs: i32,
}

fn need(v: &Option<String>, what: &str) -> Result<String, CliError> {
    v.clone()
        .ok_or_else(|| CliError::Usage(format!("this task action needs --{what}")))
}

impl TaskArgs {
    /// `get_tasks`: the filters the user gave (the server ignores `type` and `status`, as
    /// the original did; they are sent when given, the original client never sent them).
    pub(super) fn get_request(&self) -> unary::MessageGetTasks {
        unary::MessageGetTasks {
            r#type: self.kind.map(|k| unary::TaskType::from(k) as i32),
            taskid: given(&self.taskid),
            runid: given(&self.runid),
            jobid: given(&self.jobid),
            nodeid: given(&self.nodeid),
            status: self.status.map(|s| unary::TaskStatus::from(s) as i32),
        }
    }
}

pub(super) async fn run(global: &Global, out: &Output, args: TaskArgs) -> CliResult {
    match args.action {
        TaskAction::Schedule => {
            let kind = args
                .kind
                .ok_or_else(|| CliError::Usage("task schedule needs --type".into()))?;
            let task = unary::Task {
                r#type: unary::TaskType::from(kind) as i32,
                taskid: need(&args.taskid, "taskid")?,
                runid: need(&args.runid, "runid")?,
                jobid: need(&args.jobid, "jobid")?,
                nodeid: need(&args.nodeid, "nodeid")?,
                status: unary::TaskStatus::TaskScheduled as i32,
                ttl_secs: args.ttl_secs,
            };
            let client = global.connect().await?;
            let reply = client
                .schedule_task(unary::MessageScheduleTask { task: Some(task) })
                .await?;
            out.reply(&reply, "message_schedule_task_response")
        }
        TaskAction::Get => {
            let client = global.connect().await?;
            let reply = client.get_tasks(args.get_request()).await?;
            out.reply(&reply, "message_get_tasks_response")
        }
        TaskAction::Update => {
            let taskid = need(&args.taskid, "taskid")?;
            let status = unary::TaskStatus::from(args.status.unwrap_or(TaskState::Complete));
            let client = global.connect().await?;
            let reply = client
                .update_task(unary::MessageUpdateTask {
                    taskid,
                    status: status as i32,
                })
                .await?;
            out.reply(&reply, "message_update_task_response")
        }
    }
}
