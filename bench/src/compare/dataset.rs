//! The data both sides are loaded with: one job with N runs (for `get_runs`) and a busy node
//! with 60 hourly cron jobs (for `get_scheduled_runs`). One set of records goes into ours
//! through the `Store` bulk path and, as JSON, into the original through its own datastore
//! classes (`load_original.py`), so both hold the same documents.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, TimeZone, Utc};
use leotest_orchestrator::store::{CronSchedule, Job, JobKind, JobParams, Run, Store};
use serde_json::{json, Value};

/// The job whose runs `get_runs` reads.
pub(crate) const RUNS_JOB: &str = "compare-runs-job";
/// The node `get_scheduled_runs` asks about, and its cron jobs (one per minute of the hour).
pub(crate) const BUSY_NODE: &str = "compare-busy-node";
pub(crate) const BUSY_JOBS: usize = 60;
/// Width of the `get_scheduled_runs` window.
pub(crate) const WINDOW_DAYS: i64 = 7;
/// Rows `get_runs` asks for.
pub(crate) const LIMIT: usize = 100;
/// Records per bulk insert.
const BATCH: usize = 5_000;

/// The records of one comparison run.
#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    /// Start of the `get_scheduled_runs` window (whole seconds, both sides see one request).
    pub now: DateTime<Utc>,
    pub jobs: Vec<Job>,
    pub runs: Vec<Run>,
}

/// ISO-8601 without zone, as the web portal sends and the original parses.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A cron job of `userid` on `nodeid` at `minute` past every hour for 30 days (shared by
/// the `runs` and `compare-original` datasets).
pub(crate) fn cron_job(
    id: String,
    nodeid: &str,
    userid: &str,
    minute: usize,
    now: DateTime<Utc>,
) -> Job {
    let end = now + Duration::days(30);
    Job {
        id,
        nodeid: nodeid.into(),
        userid: userid.into(),
        kind: JobKind::Cron,
        params: JobParams {
            mode: "local".into(),
            deploy: "deploy".into(),
            execute: "execute".into(),
            finish: "finish".into(),
        },
        schedule: Some(CronSchedule {
            minute: minute.to_string(),
            hour: "*".into(),
            day_of_month: "*".into(),
            month: "*".into(),
            day_of_week: "*".into(),
        }),
        start_date: iso(now - Duration::days(1)),
        end_date: iso(end),
        length_secs: 30,
        overhead: false,
        server: None,
        trigger: None,
        config: None,
        expire_at: Some(end),
    }
}

impl Dataset {
    /// `runs` runs of [`RUNS_JOB`] on `node` owned by `user`, one a minute from 2025-01-01, and
    /// the busy node's jobs, all owned by `user`.
    pub(crate) fn new(node: &str, user: &str, runs: usize) -> Self {
        let now = Utc::now();
        let now = Utc
            .timestamp_opt(now.timestamp(), 0)
            .single()
            .unwrap_or(now);
        let mut jobs = vec![cron_job(RUNS_JOB.into(), node, user, 0, now)];
        jobs.extend(
            (0..BUSY_JOBS).map(|i| cron_job(format!("compare-busy-{i}"), BUSY_NODE, user, i, now)),
        );
        let epoch = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(now);
        let runs = (0..runs)
            .map(|i| {
                let start = epoch + Duration::minutes(i as i64);
                Run {
                    runid: format!("compare-run-{i:08}"),
                    jobid: RUNS_JOB.into(),
                    nodeid: node.into(),
                    userid: user.into(),
                    start_time: start,
                    end_time: start + Duration::seconds(30),
                    last_updated: start + Duration::seconds(30),
                    blob_url: format!("https://blob.invalid/runs/compare-run-{i:08}"),
                    status: "complete".into(),
                    status_message: "ok".into(),
                }
            })
            .collect();
        Dataset { now, jobs, runs }
    }

    /// The `get_scheduled_runs` window: `[now, now + WINDOW_DAYS]`.
    pub(crate) fn window(&self) -> (String, String) {
        (iso(self.now), iso(self.now + Duration::days(WINDOW_DAYS)))
    }

    /// Into one of our stores through its bulk path.
    pub(crate) async fn load_ours(&self, store: &dyn Store) -> Result<()> {
        store.insert_jobs(&self.jobs).await.context("insert_jobs")?;
        for batch in self.runs.chunks(BATCH) {
            store.insert_runs(batch).await.context("insert_runs")?;
        }
        Ok(())
    }

    /// What `load_original.py` reads: the arguments of the original's `LeotestJobCron` and
    /// `LeotestRun` for the same records.
    pub(crate) fn to_original(&self) -> Value {
        let jobs: Vec<Value> = self
            .jobs
            .iter()
            .map(|j| {
                let s = j.schedule.clone().unwrap_or_else(|| CronSchedule {
                    minute: "*".into(),
                    hour: "*".into(),
                    day_of_month: "*".into(),
                    month: "*".into(),
                    day_of_week: "*".into(),
                });
                json!({
                    "jobid": j.id,
                    "nodeid": j.nodeid,
                    "userid": j.userid,
                    "job_params": {
                        "mode": j.params.mode,
                        "deploy": j.params.deploy,
                        "execute": j.params.execute,
                        "finish": j.params.finish,
                    },
                    "schedule": {
                        "minute": s.minute,
                        "hour": s.hour,
                        "day_of_month": s.day_of_month,
                        "month": s.month,
                        "day_of_week": s.day_of_week,
                    },
                    "start_date": j.start_date,
                    "end_date": j.end_date,
                    "length_secs": j.length_secs,
                    "overhead": j.overhead,
                    "server": j.server,
                    "trigger": j.trigger,
                    "config": j.config,
                })
            })
            .collect();
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                json!({
                    "runid": r.runid,
                    "jobid": r.jobid,
                    "nodeid": r.nodeid,
                    "userid": r.userid,
                    "start_time": iso(r.start_time),
                    "end_time": iso(r.end_time),
                    "last_updated": iso(r.last_updated),
                    "blob_url": r.blob_url,
                    "status": r.status,
                    "status_message": r.status_message,
                })
            })
            .collect();
        json!({ "jobs": jobs, "runs": runs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_get_the_same_records() {
        let d = Dataset::new("n", "u", 3);
        let v = d.to_original();
        assert_eq!(v["jobs"].as_array().map(Vec::len), Some(1 + BUSY_JOBS));
        assert_eq!(v["runs"].as_array().map(Vec::len), Some(3));
        assert_eq!(v["jobs"][0]["jobid"], RUNS_JOB);
        assert_eq!(v["jobs"][5]["schedule"]["minute"], "4");
        assert_eq!(v["runs"][2]["start_time"], "2025-01-01T00:02:00");
        assert_eq!(v["runs"][2]["runid"], d.runs[2].runid.as_str());
        assert_eq!(v["jobs"][1]["start_date"], d.jobs[1].start_date.as_str());
        assert!(v["jobs"][1]["server"].is_null());
    }
}
