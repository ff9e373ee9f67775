//! Domain records kept by a [`Store`](super::Store), mirroring the original's MongoDB documents.
//!
//! Field names follow the original documents (collections `config`, `users`, `nodes`, `jobs`,
//! `runs`, `tasks`); the MongoDB backend maps them one to one. Nothing here is a wire type.

use chrono::{DateTime, Utc};

/// Role of a user, stored as the original's integer (`users.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin = 0,
    User = 1,
    Node = 2,
    UserPriv = 3,
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
    pub id: String,
    pub name: String,
    pub role: Role,
    pub team: String,
    /// Token issued at registration (hex sha256) or `--admin-access-token` for `admin`.
    pub static_access_token: String,
    /// Second accepted token; empty means none.
    pub access_token: String,
}

/// A testbed node (`nodes` collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub nodeid: String,
    pub name: String,
    pub description: String,
    /// Last heartbeat, stored as a BSON date by the original.
    pub last_active: DateTime<Utc>,
    pub coords: String,
    pub location: String,
    pub provider: String,
    /// The original stores `str(jobs)` at registration (usually `"None"`).
    pub jobs: String,
    pub scavenger_mode_active: bool,
    pub public_ip: String,
}

/// Filters of `get_nodes`; `None` (or empty) means "do not filter on this field".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    pub nodeid: Option<String>,
    pub location: Option<String>,
    pub name: Option<String>,
    pub provider: Option<String>,
    /// Only nodes whose `last_active >= active_since`.
    pub active_since: Option<DateTime<Utc>>,
}

/// Partial node update (`update_node`); only `Some` fields are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub last_active: Option<DateTime<Utc>>,
    pub coords: Option<String>,
    pub location: Option<String>,
    pub provider: Option<String>,
    pub public_ip: Option<String>,
}

/// Kind of job (`jobs.type`, stored as `"cron"` / `"atq"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Cron,
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
    pub mode: String,
    pub deploy: String,
    pub execute: String,
    pub finish: String,
}

/// Crontab fields of a cron job (`jobs.schedule` sub-document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    pub minute: String,
    pub hour: String,
    pub day_of_month: String,
    pub month: String,
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
    pub nodeid: String,
    pub userid: String,
    pub kind: JobKind,
    pub params: JobParams,
    /// `Some` for cron jobs; atq jobs store an empty string.
    pub schedule: Option<CronSchedule>,
    /// Kept as the client sent it (the original stores the string).
    pub start_date: String,
    pub end_date: String,
    pub length_secs: i64,
    pub overhead: bool,
    pub server: Option<String>,
    pub trigger: Option<String>,
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
    pub runid: String,
    pub jobid: String,
    pub nodeid: String,
    pub userid: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    pub blob_url: String,
    pub status: String,
    pub status_message: String,
}

/// Filters of `get_runs`; results are in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub runid: Option<String>,
    pub jobid: Option<String>,
    pub nodeid: Option<String>,
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
    pub taskid: String,
    pub runid: String,
    pub jobid: String,
    pub nodeid: String,
    /// Wire `task_type` value, stored as the original's `task_type` integer.
    pub task_type: i32,
    /// Wire `task_status` value.
    pub status: i32,
    pub ttl_secs: i64,
    pub expire_at: DateTime<Utc>,
}

/// Filters of `get_tasks`; `None` (or empty) means "do not filter on this field".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub taskid: Option<String>,
    pub runid: Option<String>,
    pub jobid: Option<String>,
    pub nodeid: Option<String>,
    pub task_type: Option<i32>,
    pub status: Option<i32>,
}

/// Blob storage settings (`config.datastore.blob`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobConfig {
    /// Stored as `connectionString`.
    pub connection_string: String,
    pub container: String,
    /// Stored as `artifactPath`.
    pub artifact_path: String,
}

/// `config.datastore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatastoreConfig {
    pub blob: Option<BlobConfig>,
}

/// `config.weather`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeatherConfig {
    pub apikey: String,
}

/// The single global config document (`config`, `id: 0`).
///
/// An update replaces each top-level section that is `Some` and keeps the others, like the
/// original's `$set` of the message's dict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalConfig {
    pub datastore: Option<DatastoreConfig>,
    pub weather: Option<WeatherConfig>,
}
