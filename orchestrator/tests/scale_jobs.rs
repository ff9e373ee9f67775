//! Scale: 10 000 jobs and 1 000 000 runs loaded into each store through the `Store` trait's
//! bulk path, then checked through the real binary's RPCs over TLS: `get_runs` by jobid (insertion
//! order, limit), by nodeid and by time range, `get_scheduled_runs` of a busy node, and
//! `schedule_job` still finding a conflict among the 10 000 jobs. Prints timings; asserts
//! only behaviour.
//!
//! `cargo test -p leotest-orchestrator --release --test scale_jobs -- --ignored --nocapture`
//! (`LEOTEST_SCALE_RUNS` lowers the run count; the MongoDB variant needs
//! `LEOTEST_TEST_MONGO_URI`, and fails without it under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_test_support::future_year;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::mongo::MongoStore;
use leotest_orchestrator::store::*;
use leotest_proto::unary::{
    JobParams as WireParams, JobType, MessageGetRuns, MessageGetScheduledRuns, MessageScheduleJob,
    MessageTimeRange, ResponseState,
};
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{As, Creds, Orchestrator};

const JOBS: usize = 10_000;
const NODES: usize = 100;
/// Records per bulk call (one SQLite transaction / one insert_many).
const BATCH: usize = 10_000;
/// The busy node of the checks (100 cron jobs, one run start every minute).
const NODE: usize = 42;

fn runs_total() -> usize {
    std::env::var("LEOTEST_SCALE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(future_year(), 1, 15, 0, 0, 0)
        .single()
        .expect("date")
}

fn nodeid(n: usize) -> String {
    format!("node-{n:03}")
}

/// Job `i` runs on node `i % NODES` at minute `(i / NODES) % 60` of every hour for 30 s, so
/// each node's 100 jobs cover every minute of the day; all are overhead jobs.
fn job(i: usize) -> Job {
    let y = future_year();
    Job {
        id: format!("job-{i:05}"),
        nodeid: nodeid(i % NODES),
        userid: format!("user-{}", i % 50),
        kind: JobKind::Cron,
        params: JobParams {
            mode: "local".into(),
            deploy: "deploy".into(),
            execute: "execute".into(),
            finish: "finish".into(),
        },
        schedule: CronSchedule::parse(&format!("{} * * * *", (i / NODES) % 60)),
        start_date: format!("{y}-01-15 00:00:00"),
        end_date: format!("{y}-01-16 00:00:00"),
        length_secs: 30,
        overhead: true,
        server: None,
        trigger: None,
        config: None,
        expire_at: Some(base() + Duration::days(3650)),
    }
}

/// Run `r` belongs to job `r % JOBS` (so to node `r % NODES`) and starts `r` seconds after
/// the base time: the newest runs have the highest numbers.
fn run(r: usize) -> Run {
    let start = base() + Duration::seconds(r as i64);
    Run {
        runid: format!("run-{r:07}"),
        jobid: format!("job-{:05}", r % JOBS),
        nodeid: nodeid(r % NODES),
        userid: format!("user-{}", r % 50),
        start_time: start,
        end_time: start + Duration::seconds(30),
        last_updated: start,
        blob_url: format!("https://blob.invalid/run-{r:07}"),
        status: "complete".into(),
        status_message: String::new(),
    }
}

/// Loads jobs and runs in batches; returns (jobs seconds, runs seconds).
async fn load(store: &dyn Store, runs: usize) -> (f64, f64) {
    let t = Instant::now();
    for lo in (0..JOBS).step_by(BATCH) {
        let batch: Vec<Job> = (lo..(lo + BATCH).min(JOBS)).map(job).collect();
        let n = store.insert_jobs(&batch).await.expect("insert_jobs");
        assert_eq!(n as usize, batch.len());
    }
    let jobs_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for lo in (0..runs).step_by(BATCH) {
        let batch: Vec<Run> = (lo..(lo + BATCH).min(runs)).map(run).collect();
        let n = store.insert_runs(&batch).await.expect("insert_runs");
        assert_eq!(n as usize, batch.len());
    }
    (jobs_secs, t.elapsed().as_secs_f64())
}

fn runids(runs: &[leotest_proto::unary::RunInstance]) -> Vec<String> {
    runs.iter().map(|r| r.runid.clone()).collect()
}

/// The checks over TLS; returns a timing summary.
async fn check(s: &Orchestrator, runs: usize) -> String {
    let y = future_year();
    let admin = Creds::admin();
    let c = s.client().await;
    let t = Instant::now();

    // get_runs by jobid: insertion order (as the original), limited: the first runs stored.
    let jobno = 123 % JOBS;
    let per_job: Vec<usize> = (0..runs).filter(|r| r % JOBS == jobno).collect();
    let got = As::new(&c, &admin)
        .get_runs(MessageGetRuns {
            jobid: Some(format!("job-{jobno:05}")),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .runs;
    let want: Vec<String> = per_job.iter().take(10).map(|r| run(*r).runid).collect();
    assert_eq!(runids(&got), want, "first 10 runs of the job");
    assert!(got
        .iter()
        .all(|r| r.jobid == format!("job-{jobno:05}") && r.status == "complete"));
    let all = As::new(&c, &admin)
        .get_runs(MessageGetRuns {
            jobid: Some(format!("job-{jobno:05}")),
            ..Default::default()
        })
        .await
        .runs;
    assert_eq!(all.len(), per_job.len());

    // By nodeid, limited.
    let got = As::new(&c, &admin)
        .get_runs(MessageGetRuns {
            nodeid: Some(nodeid(NODE)),
            limit: Some(50),
            ..Default::default()
        })
        .await
        .runs;
    let want: Vec<String> = (0..runs)
        .filter(|r| r % NODES == NODE)
        .take(50)
        .map(|r| run(r).runid)
        .collect();
    assert_eq!(runids(&got), want, "first 50 runs of the node");

    // By time range (both bounds inclusive): the 100 runs starting in it, in insertion order.
    let mid = runs / 2;
    let fmt = |r: usize| run(r).start_time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let got = As::new(&c, &admin)
        .get_runs(MessageGetRuns {
            time_range: Some(MessageTimeRange {
                start: fmt(mid),
                end: fmt((mid + 99).min(runs - 1)),
            }),
            ..Default::default()
        })
        .await
        .runs;
    let want: Vec<String> = (mid..(mid + 100).min(runs)).map(|r| run(r).runid).collect();
    assert_eq!(runids(&got), want, "runs in the time range");
    let get_runs_ms = t.elapsed().as_secs_f64() * 1e3;

    // get_scheduled_runs of the busy node: 100 jobs x 24 hourly runs.
    let t = Instant::now();
    let sched = As::new(&c, &admin)
        .get_scheduled_runs(MessageGetScheduledRuns {
            nodeid: nodeid(NODE),
            start: format!("{y}-01-15 00:00:00"),
            end: format!("{y}-01-15 23:59:59"),
        })
        .await;
    assert_eq!(
        sched.state,
        ResponseState::Success as i32,
        "{}",
        sched.message
    );
    assert_eq!(sched.events.len(), (JOBS / NODES) * 24);
    assert!(sched.events.iter().all(|e| e.r#type == "cron"));
    let sched_ms = t.elapsed().as_secs_f64() * 1e3;

    // schedule_job among the 10 000 jobs: an atq run at 10:00:10 for 60 s holds the 10:01
    // start of the node's minute-1 job (job 1 * NODES + NODE); after the jobs' end it is free.
    let t = Instant::now();
    let atq = |id: &str, start: &str| MessageScheduleJob {
        id: id.into(),
        nodeid: nodeid(NODE),
        r#type: JobType::Atq as i32,
        params: Some(WireParams::default()),
        start_date: start.into(),
        end_date: format!("{y}-01-20 00:00:00"),
        length_secs: 60,
        overhead: true,
        ..Default::default()
    };
    let r = As::new(&c, &admin)
        .schedule_job(atq("scale-clash", &format!("{y}-01-15 10:00:10")))
        .await;
    assert_eq!(r.state, ResponseState::Failed as i32, "{}", r.message);
    let clashing = format!("jobid=job-{:05},", NODES + NODE);
    assert!(
        r.message.starts_with("schedule conflict:<0, ") && r.message.contains(&clashing),
        "{}",
        r.message
    );
    let r = As::new(&c, &admin)
        .schedule_job(atq("scale-free", &format!("{y}-01-17 10:00:10")))
        .await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    let schedule_ms = t.elapsed().as_secs_f64() * 1e3;

    format!(
        "get_runs checks {get_runs_ms:.0} ms; get_scheduled_runs ({} events) {sched_ms:.0} ms; \
         2 x schedule_job {schedule_ms:.0} ms",
        sched.events.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale test: run explicitly (see the file's header)"]
async fn scale_embedded() {
    let runs = runs_total();
    let mut s = Orchestrator::start(&[]).await;
    // The embedded store serves one process at a time (a lock on the data dir): load while
    // the server is stopped, then start it on the loaded data.
    s.stop();
    let store = EmbeddedStore::open(&s.data_dir()).expect("open");
    let (jobs_secs, runs_secs) = load(&store, runs).await;
    drop(store);
    s.launch().await;
    let checks = check(&s, runs).await;
    println!(
        "[embedded] load {JOBS} jobs {jobs_secs:.1} s, {runs} runs {runs_secs:.1} s; {checks}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale test: run explicitly (see the file's header)"]
async fn scale_mongo() {
    let Some(db) = TestMongo::fresh("scale") else {
        return;
    };
    let runs = runs_total();
    let s = Orchestrator::builder().store(&db).start().await;
    let store: Arc<dyn Store> = Arc::new(
        MongoStore::connect(&db.uri, &db.name)
            .await
            .expect("connect"),
    );
    let (jobs_secs, runs_secs) = load(store.as_ref(), runs).await;
    let checks = check(&s, runs).await;
    println!("[mongo] load {JOBS} jobs {jobs_secs:.1} s, {runs} runs {runs_secs:.1} s; {checks}");
}
