//! Records to and from the exact BSON documents the Python orchestrator writes and reads.
//!
//! Writes use the original's field names, field order and BSON types (pymongo stores Python
//! `int` as int32 when it fits, `datetime` as a UTC date, `None` as null). The Python side
//! rebuilds nodes, runs and tasks with `Class(**document)`, so a write must never add a field.
//! Reads are lenient about what pymongo may have produced (int32/int64/double numbers, dates
//! stored as strings by the original's `update_node`, fields `MessageToDict` left out).

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};

use crate::store::model::*;
use crate::store::StoreError;
use crate::timefmt;

/// Collection names of the original (`LeotestDatastoreMongo.__init__`).
pub(super) const CONFIG: &str = "config";
pub(super) const USERS: &str = "users";
pub(super) const NODES: &str = "nodes";
pub(super) const JOBS: &str = "jobs";
pub(super) const RUNS: &str = "runs";
pub(super) const TASKS: &str = "tasks";

fn corrupt(collection: &str, field: &str, why: &str) -> StoreError {
    StoreError::Corrupt(format!("{collection}.{field}: {why}"))
}

/// A BSON date from a chrono instant (MongoDB keeps milliseconds).
pub(super) fn date(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_chrono(t))
}

/// An integer the way pymongo encodes a Python `int`: int32 when it fits, else int64.
fn int(v: i64) -> Bson {
    match i32::try_from(v) {
        Ok(small) => Bson::Int32(small),
        Err(_) => Bson::Int64(v),
    }
}

fn opt_str(v: &Option<String>) -> Bson {
    match v {
        Some(s) => Bson::String(s.clone()),
        None => Bson::Null,
    }
}

/// A boolean, also from the integers 0 and 1: some MongoDB-wire servers (nx-27017) and
/// hand-edited documents store flags that way.
pub(super) fn as_bool(v: &Bson) -> Option<bool> {
    match v {
        Bson::Boolean(b) => Some(*b),
        Bson::Int32(0) | Bson::Int64(0) => Some(false),
        Bson::Int32(1) | Bson::Int64(1) => Some(true),
        _ => None,
    }
}

/// Typed, lenient field access on one stored document.
struct Fields<'a> {
    collection: &'static str,
    doc: &'a Document,
}

impl<'a> Fields<'a> {
    fn new(collection: &'static str, doc: &'a Document) -> Self {
        Fields { collection, doc }
    }

    fn err(&self, field: &str, why: &str) -> StoreError {
        corrupt(self.collection, field, why)
    }

    /// A key field: must be a string.
    fn key(&self, field: &str) -> Result<String, StoreError> {
        match self.doc.get(field) {
            Some(Bson::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.err(field, "not a string")),
            None => Err(self.err(field, "missing")),
        }
    }

    /// A text field; absent or null reads as empty (protobuf's default).
    fn text(&self, field: &str) -> Result<String, StoreError> {
        match self.doc.get(field) {
            Some(Bson::String(s)) => Ok(s.clone()),
            None | Some(Bson::Null) => Ok(String::new()),
            Some(_) => Err(self.err(field, "not a string")),
        }
    }

    /// A text field where null (Python `None`) is meaningful.
    fn opt_text(&self, field: &str) -> Result<Option<String>, StoreError> {
        match self.doc.get(field) {
            Some(Bson::String(s)) => Ok(Some(s.clone())),
            None | Some(Bson::Null) => Ok(None),
            Some(_) => Err(self.err(field, "not a string")),
        }
    }

    /// An integer stored as int32, int64 or an integral double; absent or null reads as 0.
    fn int(&self, field: &str) -> Result<i64, StoreError> {
        match self.doc.get(field) {
            Some(Bson::Int32(v)) => Ok(i64::from(*v)),
            Some(Bson::Int64(v)) => Ok(*v),
            Some(Bson::Double(v)) if v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 => {
                // Integral and within f64's exact integer range, so the cast is lossless.
                Ok(*v as i64)
            }
            None | Some(Bson::Null) => Ok(0),
            Some(_) => Err(self.err(field, "not an integer")),
        }
    }

    fn int32(&self, field: &str) -> Result<i32, StoreError> {
        let v = self.int(field)?;
        i32::try_from(v).map_err(|_| self.err(field, "out of range"))
    }

    fn boolean(&self, field: &str, default: bool) -> Result<bool, StoreError> {
        match self.doc.get(field) {
            None | Some(Bson::Null) => Ok(default),
            Some(v) => as_bool(v).ok_or_else(|| self.err(field, "not a boolean")),
        }
    }

    /// A date; the original's `update_node` stores the client's string, so parse strings too.
    fn date(&self, field: &str) -> Result<DateTime<Utc>, StoreError> {
        match self.doc.get(field) {
            Some(Bson::DateTime(d)) => Ok(d.to_chrono()),
            Some(Bson::String(s)) => {
                timefmt::parse_datetime(s).ok_or_else(|| self.err(field, "unparsable date"))
            }
            Some(_) => Err(self.err(field, "not a date")),
            None => Err(self.err(field, "missing")),
        }
    }

    fn opt_date(&self, field: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.date(field).map(Some),
        }
    }

    fn sub(&self, field: &str) -> Result<Option<&'a Document>, StoreError> {
        match self.doc.get(field) {
            Some(Bson::Document(d)) => Ok(Some(d)),
            None | Some(Bson::Null) => Ok(None),
            Some(_) => Err(self.err(field, "not a document")),
        }
    }
}

// ---- config ------------------------------------------------------------------------------

/// The `$set` of `update_config`: `id: 0` plus every section that is present.
pub(super) fn config_set(config: &GlobalConfig) -> Document {
    let mut set = doc! { "id": 0_i32 };
    if let Some(ds) = &config.datastore {
        let mut datastore = Document::new();
        if let Some(blob) = &ds.blob {
            datastore.insert(
                "blob",
                doc! {
                    "connectionString": &blob.connection_string,
                    "container": &blob.container,
                    "artifactPath": &blob.artifact_path,
                },
            );
        }
        set.insert("datastore", datastore);
    }
    if let Some(w) = &config.weather {
        set.insert("weather", doc! { "apikey": &w.apikey });
    }
    set
}

pub(super) fn config_from(doc: &Document) -> Result<GlobalConfig, StoreError> {
    let f = Fields::new(CONFIG, doc);
    let datastore = match f.sub("datastore")? {
        Some(ds) => {
            let ds = Fields::new(CONFIG, ds);
            let blob = match ds.sub("blob")? {
                Some(b) => {
                    let b = Fields::new(CONFIG, b);
                    Some(BlobConfig {
                        connection_string: b.text("connectionString")?,
                        container: b.text("container")?,
                        artifact_path: b.text("artifactPath")?,
                    })
                }
                None => None,
            };
            Some(DatastoreConfig { blob })
        }
        None => None,
    };
    let weather = match f.sub("weather")? {
        Some(w) => Some(WeatherConfig {
            apikey: Fields::new(CONFIG, w).text("apikey")?,
        }),
        None => None,
    };
    Ok(GlobalConfig { datastore, weather })
}

// ---- users -------------------------------------------------------------------------------

pub(super) fn user_doc(user: &User) -> Document {
    doc! {
        "id": &user.id,
        "name": &user.name,
        "role": user.role.as_i32(),
        "team": &user.team,
        "static_access_token": &user.static_access_token,
        "access_token": &user.access_token,
    }
}

pub(super) fn user_from(doc: &Document) -> Result<User, StoreError> {
    let f = Fields::new(USERS, doc);
    let role = f.int32("role")?;
    Ok(User {
        id: f.key("id")?,
        name: f.text("name")?,
        role: Role::from_i32(role).ok_or_else(|| f.err("role", "unknown role"))?,
        team: f.text("team")?,
        static_access_token: f.text("static_access_token")?,
        access_token: f.text("access_token")?,
    })
}

// ---- nodes -------------------------------------------------------------------------------

pub(super) fn node_doc(node: &Node) -> Document {
    doc! {
        "nodeid": &node.nodeid,
        "name": &node.name,
        "description": &node.description,
        "last_active": date(node.last_active),
        "coords": &node.coords,
        "location": &node.location,
        "provider": &node.provider,
        "jobs": &node.jobs,
        "scavenger_mode_active": node.scavenger_mode_active,
        "public_ip": &node.public_ip,
    }
}

pub(super) fn node_from(doc: &Document) -> Result<Node, StoreError> {
    let f = Fields::new(NODES, doc);
    Ok(Node {
        nodeid: f.key("nodeid")?,
        name: f.text("name")?,
        description: f.text("description")?,
        last_active: f.date("last_active")?,
        coords: f.text("coords")?,
        location: f.text("location")?,
        provider: f.text("provider")?,
        jobs: f.text("jobs")?,
        scavenger_mode_active: f.boolean("scavenger_mode_active", false)?,
        public_ip: f.text("public_ip")?,
    })
}

/// The `$set` of `update_node`; empty when nothing is to change.
pub(super) fn node_update_set(update: &NodeUpdate) -> Document {
    let mut set = Document::new();
    let mut text = |field: &str, v: &Option<String>| {
        if let Some(v) = v {
            set.insert(field, v.as_str());
        }
    };
    text("name", &update.name);
    text("description", &update.description);
    text("coords", &update.coords);
    text("location", &update.location);
    text("provider", &update.provider);
    text("public_ip", &update.public_ip);
    if let Some(t) = update.last_active {
        set.insert("last_active", date(t));
    }
    set
}

// ---- jobs --------------------------------------------------------------------------------

/// The full job document, in the original's field order. `expire_at` is left out when the
/// job has none (the TTL index ignores such documents).
pub(super) fn job_doc(job: &Job) -> Document {
    let schedule = match &job.schedule {
        Some(s) => Bson::Document(doc! {
            "minute": &s.minute,
            "hour": &s.hour,
            "day_of_month": &s.day_of_month,
            "month": &s.month,
            "day_of_week": &s.day_of_week,
        }),
        // The original's atq jobs store `schedule: ''`.
        None => Bson::String(String::new()),
    };
    let mut d = doc! {
        "id": &job.id,
        "nodeid": &job.nodeid,
        "userid": &job.userid,
        "type": job.kind.as_str(),
        "params": {
            "mode": &job.params.mode,
            "deploy": &job.params.deploy,
            "execute": &job.params.execute,
            "finish": &job.params.finish,
        },
        "schedule": schedule,
        "start_date": &job.start_date,
        "end_date": &job.end_date,
        "length_secs": int(job.length_secs),
        "overhead": job.overhead,
        "server": opt_str(&job.server),
        "trigger": opt_str(&job.trigger),
        "config": opt_str(&job.config),
    };
    if let Some(t) = job.expire_at {
        d.insert("expire_at", date(t));
    }
    d
}

fn schedule_from(f: &Fields<'_>) -> Result<Option<CronSchedule>, StoreError> {
    match f.doc.get("schedule") {
        Some(Bson::Document(s)) => {
            let s = Fields::new(JOBS, s);
            // A missing crontab field means "every", as the original's constructor defaults.
            let field = |name: &str| -> Result<String, StoreError> {
                let v = s.text(name)?;
                Ok(if v.is_empty() { "*".to_string() } else { v })
            };
            Ok(Some(CronSchedule {
                minute: field("minute")?,
                hour: field("hour")?,
                day_of_month: field("day_of_month")?,
                month: field("month")?,
                day_of_week: field("day_of_week")?,
            }))
        }
        Some(Bson::String(s)) => Ok(CronSchedule::parse(s)),
        None | Some(Bson::Null) => Ok(None),
        Some(_) => Err(f.err("schedule", "neither a document nor a string")),
    }
}

pub(super) fn job_from(doc: &Document) -> Result<Job, StoreError> {
    let f = Fields::new(JOBS, doc);
    let kind = f.key("type")?;
    let kind = JobKind::parse(&kind).ok_or_else(|| f.err("type", "unknown job type"))?;
    let params = match f.sub("params")? {
        Some(p) => {
            // `MessageToDict` omits empty strings, so each may be absent.
            let p = Fields::new(JOBS, p);
            JobParams {
                mode: p.text("mode")?,
                deploy: p.text("deploy")?,
                execute: p.text("execute")?,
                finish: p.text("finish")?,
            }
        }
        None => JobParams::default(),
    };
    Ok(Job {
        id: f.key("id")?,
        nodeid: f.text("nodeid")?,
        userid: f.text("userid")?,
        kind,
        params,
        schedule: schedule_from(&f)?,
        start_date: f.text("start_date")?,
        end_date: f.text("end_date")?,
        length_secs: f.int("length_secs")?,
        overhead: f.boolean("overhead", true)?,
        server: f.opt_text("server")?,
        trigger: f.opt_text("trigger")?,
        config: f.opt_text("config")?,
        expire_at: f.opt_date("expire_at")?,
    })
}

// ---- runs --------------------------------------------------------------------------------

pub(super) fn run_doc(run: &Run) -> Document {
    doc! {
        "runid": &run.runid,
        "jobid": &run.jobid,
        "nodeid": &run.nodeid,
        "userid": &run.userid,
        "start_time": date(run.start_time),
        "end_time": date(run.end_time),
        "last_updated": date(run.last_updated),
        "blob_url": &run.blob_url,
        "status": &run.status,
        "status_message": &run.status_message,
    }
}

pub(super) fn run_from(doc: &Document) -> Result<Run, StoreError> {
    let f = Fields::new(RUNS, doc);
    Ok(Run {
        runid: f.key("runid")?,
        jobid: f.text("jobid")?,
        nodeid: f.text("nodeid")?,
        userid: f.text("userid")?,
        start_time: f.date("start_time")?,
        end_time: f.date("end_time")?,
        last_updated: f.date("last_updated")?,
        blob_url: f.text("blob_url")?,
        status: f.text("status")?,
        status_message: f.text("status_message")?,
    })
}

// ---- tasks -------------------------------------------------------------------------------

pub(super) fn task_doc(task: &Task) -> Document {
    doc! {
        "taskid": &task.taskid,
        "runid": &task.runid,
        "jobid": &task.jobid,
        "nodeid": &task.nodeid,
        "status": task.status,
        "task_type": task.task_type,
        "ttl_secs": int(task.ttl_secs),
        "expire_at": date(task.expire_at),
    }
}

pub(super) fn task_from(doc: &Document) -> Result<Task, StoreError> {
    let f = Fields::new(TASKS, doc);
    Ok(Task {
        taskid: f.key("taskid")?,
        runid: f.text("runid")?,
        jobid: f.text("jobid")?,
        nodeid: f.text("nodeid")?,
        task_type: f.int32("task_type")?,
        status: f.int32("status")?,
        ttl_secs: f.int("ttl_secs")?,
        expire_at: f.date("expire_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("valid")
    }

    fn keys(d: &Document) -> Vec<&str> {
        d.keys().map(String::as_str).collect()
    }

    #[test]
    fn user_document_has_the_original_fields_and_types() {
        let u = User {
            id: "alice".into(),
            name: "Alice".into(),
            role: Role::UserPriv,
            team: "t".into(),
            static_access_token: "s".into(),
            access_token: "".into(),
        };
        let d = user_doc(&u);
        assert_eq!(
            keys(&d),
            [
                "id",
                "name",
                "role",
                "team",
                "static_access_token",
                "access_token"
            ]
        );
        assert_eq!(d.get("role"), Some(&Bson::Int32(3)));
        assert_eq!(user_from(&d).expect("decodes"), u);
    }

    #[test]
    fn role_written_as_int64_or_double_still_reads() {
        let mut d = user_doc(&User {
            id: "n".into(),
            name: "".into(),
            role: Role::Node,
            team: "".into(),
            static_access_token: "".into(),
            access_token: "".into(),
        });
        d.insert("role", Bson::Int64(2));
        assert_eq!(user_from(&d).expect("int64").role, Role::Node);
        d.insert("role", Bson::Double(2.0));
        assert_eq!(user_from(&d).expect("double").role, Role::Node);
        d.insert("role", Bson::Int32(9));
        assert!(matches!(user_from(&d), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn atq_job_stores_empty_schedule_string_and_cron_a_subdocument() {
        let mut job = Job {
            id: "j".into(),
            nodeid: "n".into(),
            userid: "u".into(),
            kind: JobKind::Atq,
            params: JobParams::default(),
            schedule: None,
            start_date: "2024-01-01".into(),
            end_date: "2024-01-02".into(),
            length_secs: 60,
            overhead: true,
            server: None,
            trigger: None,
            config: Some(String::new()),
            expire_at: Some(at(1_704_153_600)),
        };
        let d = job_doc(&job);
        assert_eq!(d.get("schedule"), Some(&Bson::String(String::new())));
        assert_eq!(d.get("server"), Some(&Bson::Null));
        assert_eq!(d.get("length_secs"), Some(&Bson::Int32(60)));
        assert_eq!(job_from(&d).expect("decodes"), job);

        job.kind = JobKind::Cron;
        job.schedule = CronSchedule::parse("*/5 * * * 1");
        let d = job_doc(&job);
        let s = d.get_document("schedule").expect("sub-document");
        assert_eq!(
            keys(s),
            ["minute", "hour", "day_of_month", "month", "day_of_week"]
        );
        assert_eq!(s.get_str("minute"), Ok("*/5"));
        assert_eq!(job_from(&d).expect("decodes"), job);
    }

    #[test]
    fn job_without_expiry_has_no_expire_at_field() {
        let job = Job {
            id: "j".into(),
            nodeid: "n".into(),
            userid: "u".into(),
            kind: JobKind::Atq,
            params: JobParams::default(),
            schedule: None,
            start_date: "".into(),
            end_date: "".into(),
            length_secs: 1 << 40,
            overhead: false,
            server: Some("s".into()),
            trigger: None,
            config: None,
            expire_at: None,
        };
        let d = job_doc(&job);
        assert!(!d.contains_key("expire_at"));
        assert_eq!(d.get("length_secs"), Some(&Bson::Int64(1 << 40)));
        assert_eq!(job_from(&d).expect("decodes"), job);
    }

    #[test]
    fn node_last_active_string_from_original_update_node_is_parsed() {
        let n = Node {
            nodeid: "n".into(),
            name: "".into(),
            description: "Leopard Node".into(),
            last_active: at(1_700_000_000),
            coords: "1,2".into(),
            location: "x".into(),
            provider: "starlink".into(),
            jobs: "None".into(),
            scavenger_mode_active: false,
            public_ip: "".into(),
        };
        let mut d = node_doc(&n);
        assert!(matches!(d.get("last_active"), Some(Bson::DateTime(_))));
        d.insert("last_active", "2023-11-14 22:13:20");
        assert_eq!(node_from(&d).expect("decodes"), n);
        d.insert("last_active", "yesterday");
        assert!(matches!(node_from(&d), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn config_set_writes_only_present_sections() {
        let c = GlobalConfig {
            datastore: None,
            weather: Some(WeatherConfig { apikey: "k".into() }),
        };
        let set = config_set(&c);
        assert_eq!(keys(&set), ["id", "weather"]);
        assert_eq!(config_from(&set).expect("decodes"), c);
    }
}
