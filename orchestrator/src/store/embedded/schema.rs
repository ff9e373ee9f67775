//! Embedded store schema: the SQLite tables, their column lists and how a connection is opened.
//!
//! Lists come back in insertion order (`ORDER BY rowid`), the original's natural order; rows
//! are updated in place (never deleted and re-inserted) so they keep their place, and the
//! single-column indexes keep equal keys in rowid order, so no list needs a sort step.
//! Times are INTEGER microseconds since the epoch (values are kept at MongoDB's millisecond
//! precision, see `rows::micros`); the column lists here are the order `rows` reads and writes.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::store::{StoreError, StoreResult};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "leotest.sqlite3";

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS config (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    has_datastore INTEGER NOT NULL,
    has_blob INTEGER NOT NULL,
    blob_connection_string TEXT NOT NULL,
    blob_container TEXT NOT NULL,
    blob_artifact_path TEXT NOT NULL,
    has_weather INTEGER NOT NULL,
    weather_apikey TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role INTEGER NOT NULL,
    team TEXT NOT NULL,
    static_access_token TEXT NOT NULL,
    access_token TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    nodeid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    last_active INTEGER NOT NULL,
    coords TEXT NOT NULL,
    location TEXT NOT NULL,
    provider TEXT NOT NULL,
    jobs TEXT NOT NULL,
    scavenger_mode_active INTEGER NOT NULL,
    public_ip TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_last_active ON nodes (last_active);
CREATE INDEX IF NOT EXISTS nodes_location ON nodes (location);
CREATE INDEX IF NOT EXISTS nodes_provider ON nodes (provider);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    nodeid TEXT NOT NULL,
    userid TEXT NOT NULL,
    type TEXT NOT NULL,
    mode TEXT NOT NULL,
    deploy TEXT NOT NULL,
    execute TEXT NOT NULL,
    finish TEXT NOT NULL,
    cron_minute TEXT,
    cron_hour TEXT,
    cron_day_of_month TEXT,
    cron_month TEXT,
    cron_day_of_week TEXT,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    length_secs INTEGER NOT NULL,
    overhead INTEGER NOT NULL,
    server TEXT,
    trigger TEXT,
    config TEXT,
    expire_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_nodeid ON jobs (nodeid);
CREATE INDEX IF NOT EXISTS jobs_server ON jobs (server);
CREATE INDEX IF NOT EXISTS jobs_userid ON jobs (userid);
CREATE INDEX IF NOT EXISTS jobs_expire_at ON jobs (expire_at);
CREATE TABLE IF NOT EXISTS runs (
    runid TEXT PRIMARY KEY,
    jobid TEXT NOT NULL,
    nodeid TEXT NOT NULL,
    userid TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    blob_url TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL
);
DROP INDEX IF EXISTS runs_start_time;
DROP INDEX IF EXISTS runs_jobid;
DROP INDEX IF EXISTS runs_nodeid;
DROP INDEX IF EXISTS runs_userid;
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (jobid);
CREATE INDEX IF NOT EXISTS runs_by_node ON runs (nodeid);
CREATE INDEX IF NOT EXISTS runs_by_user ON runs (userid);
CREATE TABLE IF NOT EXISTS tasks (
    taskid TEXT PRIMARY KEY,
    runid TEXT NOT NULL,
    jobid TEXT NOT NULL,
    nodeid TEXT NOT NULL,
    task_type INTEGER NOT NULL,
    status INTEGER NOT NULL,
    ttl_secs INTEGER NOT NULL,
    expire_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_expire_at ON tasks (expire_at);
CREATE INDEX IF NOT EXISTS tasks_nodeid ON tasks (nodeid);
CREATE INDEX IF NOT EXISTS tasks_runid ON tasks (runid);
CREATE INDEX IF NOT EXISTS tasks_jobid ON tasks (jobid);
"#;

pub(super) const USER_COLS: &str = "id, name, role, team, static_access_token, access_token";
pub(super) const NODE_COLS: &str =
    "nodeid, name, description, last_active, coords, location, provider, \
                         jobs, scavenger_mode_active, public_ip";
pub(super) const JOB_COLS: &str =
    "id, nodeid, userid, type, mode, deploy, execute, finish, cron_minute, \
                        cron_hour, cron_day_of_month, cron_month, cron_day_of_week, start_date, \
                        end_date, length_secs, overhead, server, trigger, config, expire_at";
pub(super) const RUN_COLS: &str =
    "runid, jobid, nodeid, userid, start_time, end_time, last_updated, \
                        blob_url, status, status_message";
pub(super) const CONFIG_COLS: &str = "has_datastore, has_blob, blob_connection_string, \
                                      blob_container, blob_artifact_path, has_weather, \
                                      weather_apikey";
pub(super) const NODE_PARAMS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10";
/// `update_run`'s SET clause: every column but the key, from [`RUN_PARAMS`].
pub(super) const RUN_UPDATE: &str = "jobid = ?2, nodeid = ?3, userid = ?4, start_time = ?5, \
                                     end_time = ?6, last_updated = ?7, blob_url = ?8, \
                                     status = ?9, status_message = ?10";
pub(super) const TASK_COLS: &str =
    "taskid, runid, jobid, nodeid, task_type, status, ttl_secs, expire_at";

/// Placeholders for [`RUN_COLS`], in `rows::exec_run`'s order.
pub(super) const RUN_PARAMS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10";

/// SQL condition that a job row is still alive.
pub(super) const JOB_LIVE: &str = "(expire_at IS NULL OR expire_at > ?)";

pub(super) fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Opens the one writing connection: WAL, fully synchronous, schema created or checked.
pub(super) fn open_writer(path: &Path) -> StoreResult<Connection> {
    let writer = open_connection(path, false)?;
    writer.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a committed write survives power loss, not only a process crash.
    writer.pragma_update(None, "synchronous", "FULL")?;
    writer.execute_batch(SCHEMA)?;
    let version: i64 = writer.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "{} has schema version {version}, this build knows {SCHEMA_VERSION}",
            path.display()
        )));
    }
    writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(writer)
}
