//! Embedded store: one SQLite file (WAL, fully synchronous) under the data directory.
//!
//! Writes go through a single connection behind a mutex; reads use a small pool of read-only
//! connections so they never queue behind writes. Users are also held in memory (loaded at
//! open, updated under the writer lock) because every authenticated request looks one up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::{Type, Value};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use super::model::*;
use super::{Store, StoreError, StoreResult};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "leotest.sqlite3";

/// Read connections kept open between requests.
const READ_POOL_SIZE: usize = 4;

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
CREATE INDEX IF NOT EXISTS runs_start_time ON runs (start_time DESC);
CREATE INDEX IF NOT EXISTS runs_jobid ON runs (jobid, start_time DESC);
CREATE INDEX IF NOT EXISTS runs_nodeid ON runs (nodeid, start_time DESC);
CREATE INDEX IF NOT EXISTS runs_userid ON runs (userid, start_time DESC);
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

const USER_COLS: &str = "id, name, role, team, static_access_token, access_token";
const NODE_COLS: &str = "nodeid, name, description, last_active, coords, location, provider, \
                         jobs, scavenger_mode_active, public_ip";
const JOB_COLS: &str = "id, nodeid, userid, type, mode, deploy, execute, finish, cron_minute, \
                        cron_hour, cron_day_of_month, cron_month, cron_day_of_week, start_date, \
                        end_date, length_secs, overhead, server, trigger, config, expire_at";
const RUN_COLS: &str = "runid, jobid, nodeid, userid, start_time, end_time, last_updated, \
                        blob_url, status, status_message";
const TASK_COLS: &str = "taskid, runid, jobid, nodeid, task_type, status, ttl_secs, expire_at";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(_, _, inner) => {
                StoreError::Corrupt(inner.to_string())
            }
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// The embedded SQLite backend. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    users: RwLock<HashMap<String, User>>,
}

fn lock_err<T>(_: T) -> StoreError {
    StoreError::Backend("store lock poisoned".to_string())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let v: i64 = row.get(idx)?;
    DateTime::from_timestamp_micros(v).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            Type::Integer,
            "timestamp out of range".into(),
        )
    })
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let role: i32 = row.get(2)?;
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        role: Role::from_i32(role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(2, Type::Integer, "unknown role".into())
        })?,
        team: row.get(3)?,
        static_access_token: row.get(4)?,
        access_token: row.get(5)?,
    })
}

fn node_from_row(row: &Row<'_>) -> rusqlite::Result<Node> {
    Ok(Node {
        nodeid: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        last_active: time_at(row, 3)?,
        coords: row.get(4)?,
        location: row.get(5)?,
        provider: row.get(6)?,
        jobs: row.get(7)?,
        scavenger_mode_active: row.get(8)?,
        public_ip: row.get(9)?,
    })
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let kind: String = row.get(3)?;
    let kind = JobKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(3, Type::Text, "unknown job type".into())
    })?;
    let minute: Option<String> = row.get(8)?;
    let schedule = match minute {
        Some(minute) => Some(CronSchedule {
            minute,
            hour: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
            day_of_month: row.get::<_, Option<String>>(10)?.unwrap_or_default(),
            month: row.get::<_, Option<String>>(11)?.unwrap_or_default(),
            day_of_week: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
        }),
        None => None,
    };
    let expire_at: Option<i64> = row.get(20)?;
    Ok(Job {
        id: row.get(0)?,
        nodeid: row.get(1)?,
        userid: row.get(2)?,
        kind,
        params: JobParams {
            mode: row.get(4)?,
            deploy: row.get(5)?,
            execute: row.get(6)?,
            finish: row.get(7)?,
        },
        schedule,
        start_date: row.get(13)?,
        end_date: row.get(14)?,
        length_secs: row.get(15)?,
        overhead: row.get(16)?,
        server: row.get(17)?,
        trigger: row.get(18)?,
        config: row.get(19)?,
        expire_at: expire_at.and_then(DateTime::from_timestamp_micros),
    })
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        runid: row.get(0)?,
        jobid: row.get(1)?,
        nodeid: row.get(2)?,
        userid: row.get(3)?,
        start_time: time_at(row, 4)?,
        end_time: time_at(row, 5)?,
        last_updated: time_at(row, 6)?,
        blob_url: row.get(7)?,
        status: row.get(8)?,
        status_message: row.get(9)?,
    })
}

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        taskid: row.get(0)?,
        runid: row.get(1)?,
        jobid: row.get(2)?,
        nodeid: row.get(3)?,
        task_type: row.get(4)?,
        status: row.get(5)?,
        ttl_secs: row.get(6)?,
        expire_at: time_at(row, 7)?,
    })
}

/// Collects `column = ?` conditions for the filters that are set and non-empty.
#[derive(Default)]
struct Conditions {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Conditions {
    fn eq_text(&mut self, column: &str, value: &Option<String>) {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            self.clauses.push(format!("{column} = ?"));
            self.values.push(Value::Text(v.to_string()));
        }
    }

    fn push(&mut self, clause: &str, value: Value) {
        self.clauses.push(clause.to_string());
        self.values.push(value);
    }

    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn now_micros() -> i64 {
    micros(Utc::now())
}

fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
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

impl EmbeddedStore {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", data_dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The database holds access tokens: keep the directory private.
            let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = data_dir.join(DB_FILE);
        let writer = open_connection(&path, false)?;
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

        let mut users = HashMap::new();
        {
            let mut stmt = writer.prepare(&format!("SELECT {USER_COLS} FROM users"))?;
            let rows = stmt.query_map([], user_from_row)?;
            for user in rows {
                let user = user?;
                users.insert(user.id.clone(), user);
            }
        }
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                users: RwLock::new(users),
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().map_err(lock_err)?;
            f(&mut conn, &inner)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store worker failed: {e}")))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().map_err(lock_err)?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, true)?,
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock().map_err(lock_err)?;
            if pool.len() < READ_POOL_SIZE {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store worker failed: {e}")))?
    }
}

fn insert_user(conn: &Connection, user: &User, replace: bool) -> rusqlite::Result<usize> {
    let verb = if replace {
        "INSERT OR REPLACE"
    } else {
        "INSERT OR IGNORE"
    };
    conn.execute(
        &format!("{verb} INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            user.id,
            user.name,
            user.role.as_i32(),
            user.team,
            user.static_access_token,
            user.access_token
        ],
    )
}

/// Placeholders for [`RUN_COLS`], in [`exec_run`]'s order.
const RUN_PARAMS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10";

/// Executes an insert of [`RUN_COLS`] / [`RUN_PARAMS`] for one run.
fn exec_run(st: &mut rusqlite::Statement<'_>, r: &Run) -> rusqlite::Result<usize> {
    st.execute(params![
        r.runid,
        r.jobid,
        r.nodeid,
        r.userid,
        micros(r.start_time),
        micros(r.end_time),
        micros(r.last_updated),
        r.blob_url,
        r.status,
        r.status_message
    ])
}

fn job_values(job: &Job) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    let opt = |s: &Option<String>| match s {
        Some(v) => Value::Text(v.clone()),
        None => Value::Null,
    };
    let cron = |f: fn(&CronSchedule) -> &String| match &job.schedule {
        Some(s) => Value::Text(f(s).clone()),
        None => Value::Null,
    };
    vec![
        text(&job.id),
        text(&job.nodeid),
        text(&job.userid),
        text(job.kind.as_str()),
        text(&job.params.mode),
        text(&job.params.deploy),
        text(&job.params.execute),
        text(&job.params.finish),
        cron(|s| &s.minute),
        cron(|s| &s.hour),
        cron(|s| &s.day_of_month),
        cron(|s| &s.month),
        cron(|s| &s.day_of_week),
        text(&job.start_date),
        text(&job.end_date),
        Value::Integer(job.length_secs),
        Value::Integer(i64::from(job.overhead)),
        opt(&job.server),
        opt(&job.trigger),
        opt(&job.config),
        match job.expire_at {
            Some(t) => Value::Integer(micros(t)),
            None => Value::Null,
        },
    ]
}

/// SQL condition that a job row is still alive.
const JOB_LIVE: &str = "(expire_at IS NULL OR expire_at > ?)";

#[async_trait]
impl Store for EmbeddedStore {
    async fn update_config(&self, config: &GlobalConfig) -> StoreResult<()> {
        let config = config.clone();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO config VALUES (0, 0, 0, '', '', '', 0, '')",
                [],
            )?;
            if let Some(ds) = &config.datastore {
                let blob = ds.blob.clone().unwrap_or_default();
                tx.execute(
                    "UPDATE config SET has_datastore = 1, has_blob = ?1, \
                     blob_connection_string = ?2, blob_container = ?3, blob_artifact_path = ?4 \
                     WHERE id = 0",
                    params![
                        ds.blob.is_some(),
                        blob.connection_string,
                        blob.container,
                        blob.artifact_path
                    ],
                )?;
            }
            if let Some(w) = &config.weather {
                tx.execute(
                    "UPDATE config SET has_weather = 1, weather_apikey = ?1 WHERE id = 0",
                    params![w.apikey],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_config(&self) -> StoreResult<Option<GlobalConfig>> {
        self.read(|conn| {
            let row = conn
                .query_row(
                    "SELECT has_datastore, has_blob, blob_connection_string, blob_container, \
                     blob_artifact_path, has_weather, weather_apikey FROM config WHERE id = 0",
                    [],
                    |r| {
                        let has_ds: bool = r.get(0)?;
                        let has_blob: bool = r.get(1)?;
                        let has_weather: bool = r.get(5)?;
                        Ok(GlobalConfig {
                            datastore: if has_ds {
                                Some(DatastoreConfig {
                                    blob: if has_blob {
                                        Some(BlobConfig {
                                            connection_string: r.get(2)?,
                                            container: r.get(3)?,
                                            artifact_path: r.get(4)?,
                                        })
                                    } else {
                                        None
                                    },
                                })
                            } else {
                                None
                            },
                            weather: if has_weather {
                                Some(WeatherConfig { apikey: r.get(6)? })
                            } else {
                                None
                            },
                        })
                    },
                )
                .optional()?;
            Ok(row)
        })
        .await
    }

    async fn add_user(&self, user: &User) -> StoreResult<bool> {
        let user = user.clone();
        self.write(move |conn, inner| {
            let inserted = insert_user(conn, &user, false)? == 1;
            if inserted {
                inner
                    .users
                    .write()
                    .map_err(lock_err)?
                    .insert(user.id.clone(), user);
            }
            Ok(inserted)
        })
        .await
    }

    async fn put_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write(move |conn, inner| {
            insert_user(conn, &user, true)?;
            inner
                .users
                .write()
                .map_err(lock_err)?
                .insert(user.id.clone(), user);
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        // Served from memory: the cache is updated under the writer lock on every change.
        let users = self.inner.users.read().map_err(lock_err)?;
        Ok(users.get(id).cloned())
    }

    async fn modify_user(&self, id: &str, name: &str, role: Role, team: &str) -> StoreResult<bool> {
        let (id, name, team) = (id.to_string(), name.to_string(), team.to_string());
        self.write(move |conn, inner| {
            let changed = conn.execute(
                "UPDATE users SET name = ?2, role = ?3, team = ?4 WHERE id = ?1",
                params![id, name, role.as_i32(), team],
            )? == 1;
            if changed {
                let mut users = inner.users.write().map_err(lock_err)?;
                if let Some(u) = users.get_mut(&id) {
                    u.name = name;
                    u.role = role;
                    u.team = team;
                }
            }
            Ok(changed)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn, inner| {
            let deleted = conn.execute("DELETE FROM users WHERE id = ?1", params![id])? == 1;
            inner.users.write().map_err(lock_err)?.remove(&id);
            Ok(deleted)
        })
        .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let users = self.inner.users.read().map_err(lock_err)?;
        let mut all: Vec<User> = users.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    async fn register_node(&self, node: &Node) -> StoreResult<bool> {
        let n = node.clone();
        self.write(move |conn, _| {
            let inserted = conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO nodes ({NODE_COLS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    n.nodeid,
                    n.name,
                    n.description,
                    micros(n.last_active),
                    n.coords,
                    n.location,
                    n.provider,
                    n.jobs,
                    n.scavenger_mode_active,
                    n.public_ip
                ],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn get_node(&self, nodeid: &str) -> StoreResult<Option<Node>> {
        let nodeid = nodeid.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {NODE_COLS} FROM nodes WHERE nodeid = ?1"),
                    params![nodeid],
                    node_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn get_nodes(&self, filter: &NodeFilter) -> StoreResult<Vec<Node>> {
        let mut c = Conditions::default();
        c.eq_text("nodeid", &filter.nodeid);
        c.eq_text("location", &filter.location);
        c.eq_text("name", &filter.name);
        c.eq_text("provider", &filter.provider);
        if let Some(since) = filter.active_since {
            c.push("last_active >= ?", Value::Integer(micros(since)));
        }
        self.read(move |conn| {
            let sql = format!(
                "SELECT {NODE_COLS} FROM nodes{} ORDER BY nodeid",
                c.where_sql()
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(c.values.iter()), node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn update_node(&self, nodeid: &str, update: &NodeUpdate) -> StoreResult<bool> {
        let mut sets: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut text = |col: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                sets.push(col);
                values.push(Value::Text(v.clone()));
            }
        };
        text("name = ?", &update.name);
        text("description = ?", &update.description);
        text("coords = ?", &update.coords);
        text("location = ?", &update.location);
        text("provider = ?", &update.provider);
        text("public_ip = ?", &update.public_ip);
        if let Some(t) = update.last_active {
            sets.push("last_active = ?");
            values.push(Value::Integer(micros(t)));
        }
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            if sets.is_empty() {
                let exists = conn
                    .query_row(
                        "SELECT 1 FROM nodes WHERE nodeid = ?1",
                        params![nodeid],
                        |_| Ok(()),
                    )
                    .optional()?;
                return Ok(exists.is_some());
            }
            values.push(Value::Text(nodeid));
            let sql = format!("UPDATE nodes SET {} WHERE nodeid = ?", sets.join(", "));
            Ok(conn.execute(&sql, params_from_iter(values.iter()))? == 1)
        })
        .await
    }

    async fn delete_node(&self, nodeid: &str) -> StoreResult<bool> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute("DELETE FROM nodes WHERE nodeid = ?1", params![nodeid])? == 1)
        })
        .await
    }

    async fn mark_node(&self, nodeid: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE nodes SET last_active = ?2 WHERE nodeid = ?1",
                params![nodeid, micros(at)],
            )? == 1)
        })
        .await
    }

    async fn set_scavenger_status(&self, nodeid: &str, active: bool) -> StoreResult<bool> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE nodes SET scavenger_mode_active = ?2 WHERE nodeid = ?1",
                params![nodeid, active],
            )? == 1)
        })
        .await
    }

    async fn get_scavenger_status(&self, nodeid: &str) -> StoreResult<Option<bool>> {
        let nodeid = nodeid.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT scavenger_mode_active FROM nodes WHERE nodeid = ?1",
                    params![nodeid],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn add_job(&self, job: &Job) -> StoreResult<bool> {
        let values = job_values(job);
        let id = job.id.clone();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            // An expired job is gone for readers; let its id be reused.
            tx.execute(
                "DELETE FROM jobs WHERE id = ?1 AND expire_at IS NOT NULL AND expire_at <= ?2",
                params![id, now_micros()],
            )?;
            let n = tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO jobs ({JOB_COLS}) VALUES ({})",
                    vec!["?"; 21].join(", ")
                ),
                params_from_iter(values.iter()),
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn replace_job(&self, job: &Job) -> StoreResult<bool> {
        let mut values = job_values(job);
        let id = values.remove(0);
        values.push(id);
        values.push(Value::Integer(now_micros()));
        self.write(move |conn, _| {
            let cols: Vec<String> = JOB_COLS
                .split(',')
                .skip(1)
                .map(|c| format!("{} = ?", c.trim()))
                .collect();
            let sql = format!(
                "UPDATE jobs SET {} WHERE id = ? AND {JOB_LIVE}",
                cols.join(", ")
            );
            Ok(conn.execute(&sql, params_from_iter(values.iter()))? == 1)
        })
        .await
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<Job>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1 AND {JOB_LIVE}"),
                    params![id, now_micros()],
                    job_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn get_jobs_by_userid(&self, userid: Option<&str>) -> StoreResult<Vec<Job>> {
        let userid = userid.map(str::to_string);
        self.read(move |conn| {
            let now = now_micros();
            let (sql, values) = match userid {
                Some(u) => (
                    format!(
                        "SELECT {JOB_COLS} FROM jobs WHERE userid = ? AND {JOB_LIVE} ORDER BY id"
                    ),
                    vec![Value::Text(u), Value::Integer(now)],
                ),
                None => (
                    format!("SELECT {JOB_COLS} FROM jobs WHERE {JOB_LIVE} ORDER BY id"),
                    vec![Value::Integer(now)],
                ),
            };
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values.iter()), job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<Vec<Job>> {
        let nodeid = nodeid.to_string();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs WHERE (nodeid = ?1 OR server = ?1) \
                 AND (expire_at IS NULL OR expire_at > ?2) ORDER BY id"
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params![nodeid, now_micros()], job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn update_job_dates(
        &self,
        id: &str,
        start_date: &str,
        end_date: &str,
    ) -> StoreResult<bool> {
        let (id, start, end) = (id.to_string(), start_date.to_string(), end_date.to_string());
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE jobs SET start_date = ?2, end_date = ?3 \
                 WHERE id = ?1 AND (expire_at IS NULL OR expire_at > ?4)",
                params![id, start, end, now_micros()],
            )? == 1)
        })
        .await
    }

    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            let live = tx.execute(
                "DELETE FROM jobs WHERE id = ?1 AND (expire_at IS NULL OR expire_at > ?2)",
                params![id, now_micros()],
            )? == 1;
            tx.execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
            tx.commit()?;
            Ok(live)
        })
        .await
    }

    async fn delete_jobs_by_nodeid(&self, nodeid: &str) -> StoreResult<u64> {
        let nodeid = nodeid.to_string();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            let live = tx.execute(
                "DELETE FROM jobs WHERE nodeid = ?1 AND (expire_at IS NULL OR expire_at > ?2)",
                params![nodeid, now_micros()],
            )?;
            tx.execute("DELETE FROM jobs WHERE nodeid = ?1", params![nodeid])?;
            tx.commit()?;
            Ok(live as u64)
        })
        .await
    }

    async fn update_run(&self, run: &Run) -> StoreResult<()> {
        let r = run.clone();
        self.write(move |conn, _| {
            let mut st = conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO runs ({RUN_COLS}) VALUES ({RUN_PARAMS})"
            ))?;
            exec_run(&mut st, &r)?;
            Ok(())
        })
        .await
    }

    async fn insert_jobs(&self, jobs: &[Job]) -> StoreResult<u64> {
        let rows: Vec<Vec<Value>> = jobs.iter().map(job_values).collect();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            let mut inserted = 0u64;
            {
                let mut st = tx.prepare(&format!(
                    "INSERT OR IGNORE INTO jobs ({JOB_COLS}) VALUES ({})",
                    vec!["?"; 21].join(", ")
                ))?;
                for values in &rows {
                    inserted += st.execute(params_from_iter(values.iter()))? as u64;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn insert_runs(&self, runs: &[Run]) -> StoreResult<u64> {
        let runs = runs.to_vec();
        self.write(move |conn, _| {
            // One transaction: one fsync for the whole batch instead of one per run.
            let tx = conn.transaction()?;
            let mut inserted = 0u64;
            {
                let mut st = tx.prepare(&format!(
                    "INSERT OR IGNORE INTO runs ({RUN_COLS}) VALUES ({RUN_PARAMS})"
                ))?;
                for r in &runs {
                    inserted += exec_run(&mut st, r)? as u64;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn get_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let mut c = Conditions::default();
        c.eq_text("runid", &filter.runid);
        c.eq_text("jobid", &filter.jobid);
        c.eq_text("nodeid", &filter.nodeid);
        c.eq_text("userid", &filter.userid);
        if let Some(t) = filter.start_from {
            c.push("start_time >= ?", Value::Integer(micros(t)));
        }
        if let Some(t) = filter.start_to {
            c.push("start_time <= ?", Value::Integer(micros(t)));
        }
        let limit = match filter.limit {
            Some(n) if n > 0 => format!(" LIMIT {n}"),
            _ => String::new(),
        };
        self.read(move |conn| {
            let sql = format!(
                "SELECT {RUN_COLS} FROM runs{} ORDER BY start_time DESC, runid{limit}",
                c.where_sql()
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(c.values.iter()), run_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn schedule_task(&self, task: &Task) -> StoreResult<bool> {
        let t = task.clone();
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM tasks WHERE taskid = ?1 AND expire_at <= ?2",
                params![t.taskid, now_micros()],
            )?;
            let n = tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO tasks ({TASK_COLS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.taskid,
                    t.runid,
                    t.jobid,
                    t.nodeid,
                    t.task_type,
                    t.status,
                    t.ttl_secs,
                    micros(t.expire_at)
                ],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        let mut c = Conditions::default();
        c.push("expire_at > ?", Value::Integer(now_micros()));
        c.eq_text("taskid", &filter.taskid);
        c.eq_text("runid", &filter.runid);
        c.eq_text("jobid", &filter.jobid);
        c.eq_text("nodeid", &filter.nodeid);
        if let Some(t) = filter.task_type {
            c.push("task_type = ?", Value::Integer(i64::from(t)));
        }
        if let Some(s) = filter.status {
            c.push("status = ?", Value::Integer(i64::from(s)));
        }
        self.read(move |conn| {
            let sql = format!(
                "SELECT {TASK_COLS} FROM tasks{} ORDER BY taskid",
                c.where_sql()
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(c.values.iter()), task_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn update_task(&self, taskid: &str, status: i32) -> StoreResult<bool> {
        let taskid = taskid.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE tasks SET status = ?2 WHERE taskid = ?1 AND expire_at > ?3",
                params![taskid, status, now_micros()],
            )? == 1)
        })
        .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |conn, _| {
            let tx = conn.transaction()?;
            let t = tx.execute(
                "DELETE FROM tasks WHERE expire_at <= ?1",
                params![micros(now)],
            )?;
            let j = tx.execute(
                "DELETE FROM jobs WHERE expire_at IS NOT NULL AND expire_at <= ?1",
                params![micros(now)],
            )?;
            tx.commit()?;
            Ok((t + j) as u64)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}
