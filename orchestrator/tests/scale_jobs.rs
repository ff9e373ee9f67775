//! Scale check (ignored by default): 10 000 jobs and 1 000 000 runs into each store, then
//! `get_runs` by jobid and `get_scheduled_runs` of a node. Prints timings; asserts only counts.
//!
//! `cargo test -p leotest-orchestrator --release --test scale_jobs -- --ignored --nocapture`
//! (`LEOTEST_SCALE_RUNS` lowers the run count; MongoDB too when `LEOTEST_TEST_MONGO_URI` is set).

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use leotest_orchestrator::auth::Caller;
use leotest_orchestrator::service::{runs, Ctx};
use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::mongo::MongoStore;
use leotest_orchestrator::store::*;
use leotest_proto::unary::{MessageGetScheduledRuns, ResponseState};

const JOBS: usize = 10_000;
const NODES: usize = 100;

async fn load_and_measure(label: &str, store: Arc<dyn Store>) {
    let runs_total: usize = std::env::var("LEOTEST_SCALE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let day = Utc
        .with_ymd_and_hms(2030, 1, 15, 0, 0, 0)
        .single()
        .expect("date");
    let t = Instant::now();
    for i in 0..JOBS {
        let job = Job {
            id: format!("job-{i:05}"),
            nodeid: format!("node-{:03}", i % NODES),
            userid: format!("user-{}", i % 50),
            kind: JobKind::Cron,
            params: JobParams::default(),
            schedule: CronSchedule::parse(&format!("{} * * * *", i % 60)),
            start_date: "2030-01-15 00:00:00".into(),
            end_date: "2030-01-16 00:00:00".into(),
            length_secs: 30,
            overhead: false,
            server: None,
            trigger: None,
            config: None,
            expire_at: Some(day + Duration::days(3650)),
        };
        assert!(store.add_job(&job).await.expect("add_job"));
    }
    let jobs_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for r in 0..runs_total {
        let start = day + Duration::seconds(r as i64);
        let run = Run {
            runid: format!("run-{r:07}"),
            jobid: format!("job-{:05}", r % JOBS),
            nodeid: format!("node-{:03}", r % NODES),
            userid: format!("user-{}", r % 50),
            start_time: start,
            end_time: start + Duration::seconds(30),
            last_updated: start,
            blob_url: String::new(),
            status: "complete".into(),
            status_message: String::new(),
        };
        store.update_run(&run).await.expect("update_run");
    }
    let runs_secs = t.elapsed().as_secs_f64();

    let per_job = runs_total / JOBS;
    let t = Instant::now();
    for q in 0..100 {
        let filter = RunFilter {
            jobid: Some(format!("job-{:05}", q * 97 % JOBS)),
            ..Default::default()
        };
        assert_eq!(
            store.get_runs(&filter).await.expect("get_runs").len(),
            per_job
        );
    }
    let get_runs_ms = t.elapsed().as_secs_f64() * 1000.0 / 100.0;

    let ctx = Ctx {
        store: store.clone(),
    };
    let caller = Caller {
        userid: "admin".into(),
        role: Role::Admin,
    };
    let t = Instant::now();
    for q in 0..20 {
        let r = runs::get_scheduled_runs(
            &ctx,
            &caller,
            MessageGetScheduledRuns {
                nodeid: format!("node-{:03}", q),
                start: "2030-01-15 00:00:00".into(),
                end: "2030-01-15 23:59:59".into(),
            },
        )
        .await
        .expect("get_scheduled_runs");
        assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
        assert_eq!(r.events.len(), (JOBS / NODES) * 24);
    }
    let sched_ms = t.elapsed().as_secs_f64() * 1000.0 / 20.0;
    println!(
        "[{label}] load {JOBS} jobs {jobs_secs:.1}s, {runs_total} runs {runs_secs:.1}s; \
         get_runs(jobid, {per_job} hits) {get_runs_ms:.2} ms/query; \
         get_scheduled_runs(node, 1 day, {} events) {sched_ms:.2} ms/query",
        (JOBS / NODES) * 24
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale test: minutes of load, run explicitly"]
async fn scale_embedded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    load_and_measure("embedded", Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale test: minutes of load, run explicitly"]
async fn scale_mongo() {
    let Ok(uri) = std::env::var("LEOTEST_TEST_MONGO_URI") else {
        eprintln!("LEOTEST_TEST_MONGO_URI not set: skipped");
        return;
    };
    let name = format!("leotest_scale_{}", std::process::id());
    let store = MongoStore::connect(&uri, &name).await.expect("connect");
    load_and_measure("mongo", Arc::new(store)).await;
    if let Ok(client) = mongodb::Client::with_uri_str(&uri).await {
        let _ = client.database(&name).drop().await;
    }
}
