//! Domain records kept by a [`Store`](super::Store), mirroring the original's MongoDB documents.
//!
//! Field names follow the original documents (collections `config`, `users`, `nodes`, `jobs`,
//! `runs`, `tasks`); the MongoDB backend maps them one to one. Nothing here is a wire type.

use chrono::{DateTime, Utc};

/// Role of a user, stored as the original's integer (`users.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including user and node management.
    Admin = 0,
    /// An experimenter: schedules jobs and sees its own.
    User = 1,
    /// A node agent or kernel service.
    Node = 2,
    /// A user with privileges beyond `User` (the original's `USER_PRIV`).
    UserPriv = 3,
    /// A node with privileges beyond `Node` (the original's `NODE_PRIV`).
    NodePriv = 4,
}

impl Role {
    /// The original's integer value.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// Parses the original's integer value; `None` for anything unknown.
    pub fn from_i32(value: i32) -> Option<Role> {
        match value {
            0 => Some(Role::Admin),
            1 => Some(Role::User),
            2 => Some(Role::Node),
            3 => Some(Role::UserPriv),
            4 => Some(Role::NodePriv),
            _ => None,
        }
    }

    /// The original's enum name (`ADMIN`, `USER`, ...), used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::User => "USER",
            Role::Node => "NODE",
            Role::UserPriv => "USER_PRIV",
            Role::NodePriv => "NODE_PRIV",
        }
    }
}

/// A user or node identity (`users` collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id, unique; also the node id of node identities.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What the identity may do.
    pub role: Role,
    /// Team name, free text.
    pub team: String,
    /// Token issued at registration (hex sha256) or `--admin-access-token` for `admin`.
    pub static_access_token: String,
    /// Second accepted token; empty means none.
    pub access_token: String,
}

/// A testbed node (`nodes` collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node id, unique; the id of its node identity.
    pub nodeid: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Last heartbeat, stored as a BSON date by the original.
    pub last_active: DateTime<Utc>,
    /// Coordinates as the node sent them (free text).
    pub coords: String,
    /// Location name as the node sent it.
    pub location: String,
    /// Network provider of the node's link, as the node sent it.
    pub provider: String,
    /// The original stores `str(jobs)` at registration (usually `"None"`).
    pub jobs: String,
    /// Whether scavenger mode is on (`set_scavenger_status`); the node agent reads it and exempts
    /// jobs without overhead from it.
    pub scavenger_mode_active: bool,
    /// Public IP address as the node reported it.
    pub public_ip: String,
}

/// Filters of `get_nodes`; `None` (or empty) means "do not filter on this field".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Only this node.
    pub nodeid: Option<String>,
    /// Only nodes at this location.
    pub location: Option<String>,
    /// Only nodes of this name.
    pub name: Option<String>,
    /// Only nodes of this provider.
    pub provider: Option<String>,
    /// Only nodes whose `last_active >= active_since`.
    pub active_since: Option<DateTime<Utc>>,
}

/// Partial node update (`update_node`); only `Some` fields are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New heartbeat time.
    pub last_active: Option<DateTime<Utc>>,
    /// New coordinates.
    pub coords: Option<String>,
    /// New location.
    pub location: Option<String>,
    /// New provider.
    pub provider: Option<String>,
    /// New public IP address.
    pub public_ip: Option<String>,
}

/// Kind of job (`jobs.type`, stored as `"cron"` / `"atq"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Runs on a crontab schedule until `end_date`.
    Cron,
    /// Runs once, at `start_date`.
    Atq,
}

impl JobKind {
    /// The original's stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Cron => "cron",
            JobKind::Atq => "atq",
        }
    }

    /// Parses the stored spelling (case-insensitive).
    pub fn parse(value: &str) -> Option<JobKind> {
        if value.eq_ignore_ascii_case("cron") {
            Some(JobKind::Cron)
        } else if value.eq_ignore_ascii_case("atq") {
            Some(JobKind::Atq)
        } else {
            None
        }
    }
}

/// What the node agent runs for a job (`jobs.params`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobParams {
    /// Run mode, as the client sent it (`params_mode`).
    pub mode: String,
    /// What to deploy before the run (`params_deploy`): a command or an image.
    pub deploy: String,
    /// What to run (`params_execute`).
    pub execute: String,
    /// What to run afterwards (`params_finish`).
    pub finish: String,
}

/// Crontab fields of a cron job (`jobs.schedule` sub-document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    /// Crontab minute field.
    pub minute: String,
    /// Crontab hour field.
    pub hour: String,
    /// Crontab day-of-month field.
    pub day_of_month: String,
    /// Crontab month field.
    pub month: String,
    /// Crontab day-of-week field.
    pub day_of_week: String,
}

impl CronSchedule {
    /// `"m h dom mon dow"`, as the original's `get_cron_string`.
    pub fn to_cron_string(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.minute, self.hour, self.day_of_month, self.month, self.day_of_week
        )
    }

    /// Splits a five-field crontab string; `None` unless there are exactly five fields.
    pub fn parse(cron: &str) -> Option<CronSchedule> {
        let mut it = cron.split_whitespace();
        let s = CronSchedule {
            minute: it.next()?.to_string(),
            hour: it.next()?.to_string(),
            day_of_month: it.next()?.to_string(),
            month: it.next()?.to_string(),
            day_of_week: it.next()?.to_string(),
        };
        if it.next().is_some() {
            return None;
        }
        Some(s)
    }
}

/// A scheduled job (`jobs` collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Stored as `id`.
    pub id: String,
    /// Node the job runs on.
    pub nodeid: String,
    /// Owner: the user who scheduled it.
    pub userid: String,
    /// Cron or one-shot.
    pub kind: JobKind,
    /// What the node agent runs.
    pub params: JobParams,
    /// `Some` for cron jobs; atq jobs store an empty string.
    pub schedule: Option<CronSchedule>,
    /// Kept as the client sent it (the original stores the string).
    pub start_date: String,
    /// Kept as the client sent it.
    pub end_date: String,
    /// Length of each run, in seconds.
    pub length_secs: i64,
    /// Whether the job loads the link; only such jobs conflict with each other.
    pub overhead: bool,
    /// Node id of the server side of the experiment, when there is one.
    pub server: Option<String>,
    /// Trigger expression gating the runs (see `schedule::trigger`); `None` when not sent.
    pub trigger: Option<String>,
    /// Experiment configuration (a whole YAML document); `None` when not sent.
    pub config: Option<String>,
    /// TTL: the job disappears after this instant (original: parsed `end_date`).
    pub expire_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The server node the job names, if any: `server` stored as `""` (a client that set it
    /// explicitly empty; the original stores that too) names none, as the original's
    /// `if server:` read it.
    pub fn server_node(&self) -> Option<&str> {
        self.server.as_deref().filter(|s| !s.is_empty())
    }
}

/// One execution of a job on a node (`runs` collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Run id, unique; chosen by the node agent.
    pub runid: String,
    /// Job the run belongs to.
    pub jobid: String,
    /// Node it ran on.
    pub nodeid: String,
    /// Owner of the job.
    pub userid: String,
    /// When the run started.
    pub start_time: DateTime<Utc>,
    /// When the run ended (or is to end).
    pub end_time: DateTime<Utc>,
    /// When the node agent last reported it.
    pub last_updated: DateTime<Utc>,
    /// Where the run's artifacts were uploaded.
    pub blob_url: String,
    /// Status as the node agent reports it (free text).
    pub status: String,
    /// Human-readable status detail, e.g. `Executing job.`.
    pub status_message: String,
}

/// Filters of `get_runs`; results are in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this run.
    pub runid: Option<String>,
    /// Only runs of this job.
    pub jobid: Option<String>,
    /// Only runs on this node.
    pub nodeid: Option<String>,
    /// Only runs of this user's jobs.
    pub userid: Option<String>,
    /// Inclusive lower bound on `start_time`.
    pub start_from: Option<DateTime<Utc>>,
    /// Inclusive upper bound on `start_time`.
    pub start_to: Option<DateTime<Utc>>,
    /// At most this many runs; `None` or 0 means no limit.
    pub limit: Option<u32>,
}

/// A short-lived node-to-node task (`tasks` collection), invisible once `expire_at` passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Task id, unique.
    pub taskid: String,
    /// Run the task belongs to.
    pub runid: String,
    /// Job the task belongs to.
    pub jobid: String,
    /// Node the task is for.
    pub nodeid: String,
    /// Wire `task_type` value, stored as the original's `task_type` integer.
    pub task_type: i32,
    /// Wire `task_status` value.
    pub status: i32,
    /// Lifetime asked for at scheduling, in seconds.
    pub ttl_secs: i64,
    /// When the task stops being visible: scheduling time plus `ttl_secs`.
    pub expire_at: DateTime<Utc>,
}

/// Filters of `get_tasks`; `None` (or empty) means "do not filter on this field".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only this task.
    pub taskid: Option<String>,
    /// Only tasks of this run.
    pub runid: Option<String>,
    /// Only tasks of this job.
    pub jobid: Option<String>,
    /// Only tasks for this node.
    pub nodeid: Option<String>,
    /// Only tasks of this type.
    pub task_type: Option<i32>,
    /// Only tasks in this status.
    pub status: Option<i32>,
}

/// Blob storage settings (`config.datastore.blob`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobConfig {
    /// Stored as `connectionString`.
    pub connection_string: String,
    /// Blob container the artifacts go to.
    pub container: String,
    /// Stored as `artifactPath`.
    pub artifact_path: String,
}

/// `config.datastore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatastoreConfig {
    /// Blob storage for run artifacts; `None` when not configured.
    pub blob: Option<BlobConfig>,
}

/// `config.weather`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeatherConfig {
    /// API key of the weather service the node agents query.
    pub apikey: String,
}

/// The single global config document (`config`, `id: 0`).
///
/// An update replaces each top-level section that is `Some` and keeps the others, like the
/// original's `$set` of the message's dict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Where run artifacts are stored; `None` when not set.
    pub datastore: Option<DatastoreConfig>,
    /// Weather service settings; `None` when not set.
    pub weather: Option<WeatherConfig>,
}
