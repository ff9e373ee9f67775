//! Wire ↔ store conversions, in one place: the handlers see `pb::X` for wire messages and the
//! store's records by their own names, and never build one from the other inline.
//!
//! What a reply carries follows the original's result dicts (orchestrator.py): which fields
//! it sets, and their text forms (`str()` of dates, `None` of absent optionals).

use leotest_proto::unary as pb;

use crate::store::{
    BlobConfig, DatastoreConfig, GlobalConfig, Job, JobKind, JobParams, Node, Run, Task,
    WeatherConfig,
};
use crate::timefmt::format_python;

/// Wire `job_type` of a kind.
pub fn job_type(kind: JobKind) -> i32 {
    match kind {
        JobKind::Cron => pb::JobType::Cron as i32,
        JobKind::Atq => pb::JobType::Atq as i32,
    }
}

/// Kind of a wire `job_type`; `None` for values the contract does not define.
pub fn job_kind(wire: i32) -> Option<JobKind> {
    match pb::JobType::try_from(wire) {
        Ok(pb::JobType::Cron) => Some(JobKind::Cron),
        Ok(pb::JobType::Atq) => Some(JobKind::Atq),
        Err(_) => None,
    }
}

/// Job params from the wire.
pub fn params_from_wire(p: pb::JobParams) -> JobParams {
    JobParams {
        mode: p.mode,
        deploy: p.deploy,
        execute: p.execute,
        finish: p.finish,
    }
}

/// Job params for the wire.
pub fn params_to_wire(p: &JobParams) -> pb::JobParams {
    pb::JobParams {
        mode: p.mode.clone(),
        deploy: p.deploy.clone(),
        execute: p.execute.clone(),
        finish: p.finish.clone(),
    }
}

/// The crontab of a cron job, `""` for atq jobs (the original's `schedule` field).
pub fn schedule_text(job: &Job) -> String {
    match (&job.kind, &job.schedule) {
        (JobKind::Cron, Some(s)) => s.to_cron_string(),
        _ => String::new(),
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// An entry of `get_jobs_by_userid` / `get_jobs_by_nodeid` (the original sets no `config`).
pub fn job_to_wire(job: &Job) -> pb::Job {
    pb::Job {
        id: job.id.clone(),
        nodeid: job.nodeid.clone(),
        userid: job.userid.clone(),
        r#type: job_type(job.kind),
        params: Some(params_to_wire(&job.params)),
        schedule: schedule_text(job),
        start_date: job.start_date.clone(),
        end_date: job.end_date.clone(),
        length_secs: clamp_i32(job.length_secs),
        overhead: job.overhead,
        // Present exactly when stored (`""` included), absent when null: the original passes
        // `job.server` / `job.trigger` (None or a string) to these `optional` fields.
        server: job.server.clone(),
        trigger: job.trigger.clone(),
        config: String::new(),
    }
}

/// The `get_job_by_id` reply for a found job.
pub fn job_by_id_reply(job: &Job) -> pb::MessageGetJobByIdResponse {
    pb::MessageGetJobByIdResponse {
        exists: true,
        id: job.id.clone(),
        nodeid: job.nodeid.clone(),
        r#type: job_type(job.kind),
        params: Some(params_to_wire(&job.params)),
        schedule: schedule_text(job),
        userid: job.userid.clone(),
        trigger: job.trigger.clone().unwrap_or_default(),
        config: job.config.clone().unwrap_or_default(),
        server: job.server.clone().unwrap_or_default(),
        overhead: job.overhead,
        start_date: job.start_date.clone(),
        end_date: job.end_date.clone(),
    }
}

/// One `get_scheduled_runs` event of `job` without its times and index (filled per run).
pub fn event_template(job: &Job, kind: &str) -> pb::RunEvent {
    pb::RunEvent {
        title: job.id.clone(),
        id: 0,
        start: String::new(),
        end: String::new(),
        r#type: kind.to_string(),
        params: Some(params_to_wire(&job.params)),
        schedule: schedule_text(job),
        length: clamp_i32(job.length_secs),
        overhead: job.overhead,
        trigger: job.trigger.clone().unwrap_or_default(),
        server: job.server.clone().unwrap_or_default(),
    }
}

/// A stored run for the wire.
pub fn run_to_wire(r: Run) -> pb::RunInstance {
    pb::RunInstance {
        runid: r.runid,
        jobid: r.jobid,
        nodeid: r.nodeid,
        userid: r.userid,
        start_time: format_python(r.start_time),
        end_time: format_python(r.end_time),
        last_updated: format_python(r.last_updated),
        blob_url: r.blob_url,
        status: r.status,
        status_message: r.status_message,
    }
}

/// A stored task for the wire.
pub fn task_to_wire(t: Task) -> pb::Task {
    pb::Task {
        r#type: t.task_type,
        taskid: t.taskid,
        runid: t.runid,
        jobid: t.jobid,
        nodeid: t.nodeid,
        status: t.status,
        ttl_secs: clamp_i32(t.ttl_secs),
    }
}

/// A `get_nodes` entry; `jobs` is the summary the original computes from the node's jobs.
pub fn node_to_wire(n: Node, jobs: String) -> pb::Node {
    // The original sets both always (`jobs` is `""` for a node without jobs): present.
    pb::Node {
        jobs: Some(jobs),
        last_active: Some(format_python(n.last_active)),
        nodeid: n.nodeid,
        name: n.name,
        description: n.description,
        coords: n.coords,
        location: n.location,
        provider: n.provider,
        scavenger_mode_active: n.scavenger_mode_active,
        public_ip: n.public_ip,
    }
}

fn py_opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("None")
}

fn py_bool(v: bool) -> &'static str {
    if v {
        "True"
    } else {
        "False"
    }
}

/// The original's summary of a node's jobs in `_node.jobs` (no separator between entries).
pub fn jobs_summary(jobs: &[Job]) -> String {
    let mut out = String::new();
    for job in jobs {
        out.push_str(&format!(
            "<jobid={} userid={} type={} start={} end={} length={} schedule={} overhead={} \
             server={} trigger={}>",
            job.id,
            job.userid,
            job.kind.as_str(),
            job.start_date,
            job.end_date,
            job.length_secs,
            schedule_text(job),
            py_bool(job.overhead),
            py_opt(&job.server),
            py_opt(&job.trigger),
        ));
    }
    out
}

/// Global configuration from the wire.
pub fn config_from_wire(s: pb::Settings) -> GlobalConfig {
    GlobalConfig {
        datastore: s.datastore.map(|d| DatastoreConfig {
            blob: d.blob.map(|b| BlobConfig {
                connection_string: b.connection_string,
                container: b.container,
                artifact_path: b.artifact_path,
            }),
        }),
        weather: s.weather.map(|w| WeatherConfig { apikey: w.apikey }),
    }
}

/// Global configuration for the wire.
pub fn config_to_wire(c: GlobalConfig) -> pb::Settings {
    pb::Settings {
        datastore: c.datastore.map(|d| pb::DatastoreSettings {
            blob: d.blob.map(|b| pb::BlobSettings {
                connection_string: b.connection_string,
                container: b.container,
                artifact_path: b.artifact_path,
            }),
        }),
        weather: c
            .weather
            .map(|w| pb::WeatherApiSettings { apikey: w.apikey }),
    }
}

/// The config without its credentials (blob connection string, weather API key); every
/// section and the other values stay where they are.
pub fn without_credentials(mut c: GlobalConfig) -> GlobalConfig {
    if let Some(blob) = c.datastore.as_mut().and_then(|d| d.blob.as_mut()) {
        blob.connection_string.clear();
    }
    if let Some(w) = c.weather.as_mut() {
        w.apikey.clear();
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CronSchedule;

    fn settings() -> pb::Settings {
        pb::Settings {
            datastore: Some(pb::DatastoreSettings {
                blob: Some(pb::BlobSettings {
                    connection_string: "cs".into(),
                    container: "c".into(),
                    artifact_path: "p".into(),
                }),
            }),
            weather: Some(pb::WeatherApiSettings {
                apikey: "key".into(),
            }),
        }
    }

    #[test]
    fn config_round_trip_and_redaction() {
        let s = settings();
        assert_eq!(config_to_wire(config_from_wire(s.clone())), s);
        let r = config_to_wire(without_credentials(config_from_wire(s)));
        let blob = r.datastore.and_then(|d| d.blob).expect("blob kept");
        assert_eq!(blob.connection_string, "");
        assert_eq!(
            (blob.container.as_str(), blob.artifact_path.as_str()),
            ("c", "p")
        );
        assert_eq!(r.weather.expect("weather kept").apikey, "");
    }

    #[test]
    fn jobs_summary_matches_the_original_format() {
        let job = Job {
            id: "j1".into(),
            nodeid: "n1".into(),
            userid: "u1".into(),
            kind: JobKind::Cron,
            params: JobParams::default(),
            schedule: CronSchedule::parse("*/5 * * * *"),
            start_date: "2024-01-01T00:00:00".into(),
            end_date: "2024-02-01T00:00:00".into(),
            length_secs: 60,
            overhead: true,
            server: None,
            trigger: Some("t".into()),
            config: None,
            expire_at: None,
        };
        assert_eq!(
            jobs_summary(&[job]),
            "<jobid=j1 userid=u1 type=cron start=2024-01-01T00:00:00 end=2024-02-01T00:00:00 \
             length=60 schedule=*/5 * * * * overhead=True server=None trigger=t>"
        );
        assert_eq!(jobs_summary(&[]), "");
    }

    #[test]
    fn job_kinds() {
        assert_eq!(job_kind(0), Some(JobKind::Cron));
        assert_eq!(job_kind(1), Some(JobKind::Atq));
        assert_eq!(job_kind(7), None);
        assert_eq!(job_type(JobKind::Atq), 1);
    }
}
