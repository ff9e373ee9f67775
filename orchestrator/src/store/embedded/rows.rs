//! Rows to and from records: the SQL side of what `mongo::codec` does for BSON documents.
//!
//! Every SELECT uses a column list from [`super::schema`]; the `*_from_row` functions read
//! columns by position in that order, and the writers bind values in the same order.

use chrono::{DateTime, Utc};
use rusqlite::types::{Type, Value};
use rusqlite::{params, Connection, Row};

use super::schema::USER_COLS;
use crate::store::model::*;
use crate::store::StoreError;

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

/// A time as stored: microseconds since the epoch, cut to whole milliseconds, the precision
/// of MongoDB's dates. The original prints what its database gives back, so a time sent as
/// `00:10:32.910943` reads back as `00:10:32.910000` in both stores.
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis().saturating_mul(1000)
}

/// A stored time back (rows written before the cut to milliseconds are cut on read).
fn from_stored(v: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v.div_euclid(1000))
}

pub(super) fn time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let v: i64 = row.get(idx)?;
    from_stored(v).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            Type::Integer,
            "timestamp out of range".into(),
        )
    })
}

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
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

pub(super) fn node_from_row(row: &Row<'_>) -> rusqlite::Result<Node> {
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

pub(super) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
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
        expire_at: expire_at.and_then(from_stored),
    })
}

pub(super) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
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

pub(super) fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
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
pub(super) struct Conditions {
    pub(super) clauses: Vec<String>,
    pub(super) values: Vec<Value>,
}

impl Conditions {
    pub(super) fn eq_text(&mut self, column: &str, value: &Option<String>) {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            self.clauses.push(format!("{column} = ?"));
            self.values.push(Value::Text(v.to_string()));
        }
    }

    pub(super) fn push(&mut self, clause: &str, value: Value) {
        self.clauses.push(clause.to_string());
        self.values.push(value);
    }

    pub(super) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

pub(super) fn insert_user(
    conn: &Connection,
    user: &User,
    replace: bool,
) -> rusqlite::Result<usize> {
    // Replace in place (keeps the row), like MongoDB's replace_one.
    let sql = if replace {
        format!(
            "INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (id) DO UPDATE SET name = ?2, role = ?3, team = ?4, \
             static_access_token = ?5, access_token = ?6"
        )
    } else {
        format!("INSERT OR IGNORE INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
    };
    conn.execute(
        &sql,
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

/// Executes an insert of `RUN_COLS` / `RUN_PARAMS` ([`super::schema`]) for one run.
pub(super) fn exec_run(st: &mut rusqlite::Statement<'_>, r: &Run) -> rusqlite::Result<usize> {
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

pub(super) fn job_values(job: &Job) -> Vec<Value> {
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

/// The config row ([`super::schema::CONFIG_COLS`]) as the record; flags say which sections exist.
pub(super) fn config_from_row(r: &Row<'_>) -> rusqlite::Result<GlobalConfig> {
    let has_ds: bool = r.get(0)?;
    let has_blob: bool = r.get(1)?;
    let has_weather: bool = r.get(5)?;
    let blob = if has_blob {
        Some(BlobConfig {
            connection_string: r.get(2)?,
            container: r.get(3)?,
            artifact_path: r.get(4)?,
        })
    } else {
        None
    };
    Ok(GlobalConfig {
        datastore: has_ds.then_some(DatastoreConfig { blob }),
        weather: if has_weather {
            Some(WeatherConfig { apikey: r.get(6)? })
        } else {
            None
        },
    })
}

/// Values of [`super::schema::NODE_COLS`] for one node.
pub(super) fn node_values(n: &Node) -> Vec<Value> {
    vec![
        Value::Text(n.nodeid.clone()),
        Value::Text(n.name.clone()),
        Value::Text(n.description.clone()),
        Value::Integer(micros(n.last_active)),
        Value::Text(n.coords.clone()),
        Value::Text(n.location.clone()),
        Value::Text(n.provider.clone()),
        Value::Text(n.jobs.clone()),
        Value::Integer(i64::from(n.scavenger_mode_active)),
        Value::Text(n.public_ip.clone()),
    ]
}
