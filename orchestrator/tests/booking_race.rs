//! Issue 16: bookings of one node are atomic. 40 overlapping `schedule_job` (and 40
//! `reschedule_job_nearest` into one free slot) fired at once, 20 times over, accept exactly
//! one every time: on one orchestrator with the embedded store, and on two orchestrator
//! processes sharing one MongoDB database (when `LEOTEST_TEST_MONGO_URI` is set). Real
//! binaries over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_test_support::future_year;
use std::time::Instant;

use leotest_proto::unary::*;
use leotest_proto::LeotestOrchestratorClient;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{As, Creds, Orchestrator};
use tonic::transport::Channel;

const REPS: usize = 20;
const BURST: usize = 40;

fn ok(state: i32) -> bool {
    state == ResponseState::Success as i32
}

fn atq(id: &str, nodeid: &str, start: &str, end: &str, length: i32) -> MessageScheduleJob {
    MessageScheduleJob {
        id: id.into(),
        nodeid: nodeid.into(),
        r#type: JobType::Atq as i32,
        params: Some(JobParams {
            mode: "docker".into(),
            deploy: "d".into(),
            execute: "e".into(),
            finish: "f".into(),
        }),
        start_date: start.into(),
        end_date: end.into(),
        length_secs: length,
        overhead: true,
        ..Default::default()
    }
}

async fn clients(servers: &[&Orchestrator]) -> Vec<LeotestOrchestratorClient<Channel>> {
    let mut out = Vec::new();
    for s in servers {
        out.push(s.client().await);
    }
    out
}

async fn register_node(c: &mut LeotestOrchestratorClient<Channel>, nodeid: &str) {
    let r = As::new(c, &Creds::admin())
        .register_node(MessageRegisterNode {
            node: Some(Node {
                nodeid: nodeid.into(),
                name: format!("{nodeid}-name"),
                description: "roof".into(),
                ..Default::default()
            }),
        })
        .await;
    assert!(ok(r.state), "register_node {nodeid}: {}", r.message);
}

/// 40 ATQ overhead jobs for one node in one 10-minute window, all at once, spread over the
/// servers; returns how many were accepted.
async fn schedule_burst(cs: &[LeotestOrchestratorClient<Channel>], nodeid: &str) -> usize {
    let y = future_year();
    let calls = (0..BURST).map(|i| {
        let c = cs[i % cs.len()].clone();
        let msg = atq(
            &format!("{nodeid}-j{i}"),
            nodeid,
            &format!("{y}-01-01 00:00:00"),
            &format!("{y}-01-01 00:10:00"),
            600,
        );
        tokio::spawn(async move { As::new(&c, &Creds::admin()).schedule_job(msg).await })
    });
    let replies = futures::future::join_all(calls).await;
    let mut accepted = 0;
    for r in replies {
        let r = r.expect("task");
        if ok(r.state) {
            accepted += 1;
        } else {
            assert!(
                r.message.contains("conflict"),
                "unexpected refusal: {}",
                r.message
            );
        }
    }
    accepted
}

/// A node whose window 00:00-01:00 has one free 10-minute slot (00:30) under the strict
/// rules, and 40 of its jobs parked elsewhere; all 40 are moved into the window at once.
/// Returns how many moves were accepted.
async fn reschedule_burst(cs: &[LeotestOrchestratorClient<Channel>], nodeid: &str) -> usize {
    let y = future_year();
    let mut c = cs[0].clone();
    let put = |msg: MessageScheduleJob| {
        let c = c.clone();
        async move {
            let id = msg.id.clone();
            let r = As::new(&c, &Creds::admin()).schedule_job(msg).await;
            assert!(ok(r.state), "setup job {id}: {}", r.message);
        }
    };
    // Blockers [00:00, 00:30) and [00:40, 01:00): a 600 s run fits only at 00:30.
    put(atq(
        &format!("{nodeid}-b1"),
        nodeid,
        &format!("{y}-01-01 00:00:00"),
        &format!("{y}-01-01 00:30:00"),
        1800,
    ))
    .await;
    put(atq(
        &format!("{nodeid}-b2"),
        nodeid,
        &format!("{y}-01-01 00:40:00"),
        &format!("{y}-01-01 01:00:00"),
        1200,
    ))
    .await;
    // The jobs to move, parked on other days; no overhead, so setting them up books nothing
    // (a move books the node whatever the job's overhead).
    let parked = (0..BURST).map(|i| {
        let (day, hour) = (2 + i / 20, i % 20);
        let mut msg = atq(
            &format!("{nodeid}-p{i}"),
            nodeid,
            &format!("{y}-02-{day:02} {hour:02}:00:00"),
            &format!("{y}-02-{day:02} {hour:02}:10:00"),
            600,
        );
        msg.overhead = false;
        put(msg)
    });
    futures::future::join_all(parked).await;
    let calls = (0..BURST).map(|i| {
        let c = cs[i % cs.len()].clone();
        let msg = MessageRescheduleJob {
            jobid: format!("{nodeid}-p{i}"),
            starttime: format!("{y}-01-01 00:00:00"),
            endtime: format!("{y}-01-01 01:00:00"),
        };
        tokio::spawn(async move {
            As::new(&c, &Creds::admin())
                .reschedule_job_nearest(msg)
                .await
        })
    });
    let mut accepted = 0;
    for r in futures::future::join_all(calls).await {
        let r = r.expect("task");
        if r.rescheduled {
            assert!(
                r.message
                    .ends_with(&format!("next_slot={y}-01-01 00:30:00")),
                "{}",
                r.message
            );
            accepted += 1;
        } else {
            assert!(r.message.contains("empty slot not found"), "{}", r.message);
        }
    }
    c = cs[0].clone();
    let jobs = As::new(&c, &Creds::admin())
        .get_jobs_by_nodeid(MessageGetJobsByNodeid {
            nodeid: nodeid.into(),
        })
        .await;
    let in_window = jobs
        .jobs
        .iter()
        .filter(|j| j.start_date.starts_with(&format!("{y}-01-01 00:30")))
        .count();
    assert_eq!(in_window, accepted, "stored jobs agree with the replies");
    accepted
}

async fn run_schedule(servers: &[&Orchestrator], label: &str) {
    let cs = clients(servers).await;
    let t0 = Instant::now();
    let mut counts = Vec::new();
    for rep in 0..REPS {
        let nodeid = format!("{label}-s{rep}");
        register_node(&mut cs[0].clone(), &nodeid).await;
        counts.push(schedule_burst(&cs, &nodeid).await);
    }
    eprintln!(
        "{label}: schedule_job accepted per burst {counts:?} in {:?}",
        t0.elapsed()
    );
    assert!(
        counts.iter().all(|&n| n == 1),
        "{label}: exactly one of {BURST} overlapping bookings must be accepted, got {counts:?}"
    );
}

async fn run_reschedule(servers: &[&Orchestrator], label: &str) {
    let cs = clients(servers).await;
    let t0 = Instant::now();
    let mut counts = Vec::new();
    for rep in 0..REPS {
        let nodeid = format!("{label}-r{rep}");
        register_node(&mut cs[0].clone(), &nodeid).await;
        counts.push(reschedule_burst(&cs, &nodeid).await);
    }
    eprintln!(
        "{label}: reschedule accepted per burst {counts:?} in {:?}",
        t0.elapsed()
    );
    assert!(
        counts.iter().all(|&n| n == 1),
        "{label}: exactly one of {BURST} moves into one free slot must be accepted, got {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_schedule_burst_accepts_exactly_one() {
    let s = Orchestrator::start(&[]).await;
    run_schedule(&[&s], "emb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_reschedule_burst_takes_the_free_slot_once() {
    let s = Orchestrator::start(&["--overlap-rules", "strict"]).await;
    run_reschedule(&[&s], "emb").await;
}

async fn two_replicas(db: &TestMongo, extra: &[&str]) -> (Orchestrator, Orchestrator) {
    let mut args: Vec<&str> = db.server_args().to_vec();
    args.extend_from_slice(extra);
    let a = Orchestrator::start(&args).await;
    let b = Orchestrator::start(&args).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_two_replicas_schedule_burst_accepts_exactly_one() {
    let Some(db) = TestMongo::fresh("race_sched") else {
        return;
    };
    let (a, b) = two_replicas(&db, &[]).await;
    run_schedule(&[&a, &b], "mongo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_two_replicas_reschedule_burst_takes_the_free_slot_once() {
    let Some(db) = TestMongo::fresh("race_resched") else {
        return;
    };
    let (a, b) = two_replicas(&db, &["--overlap-rules", "strict"]).await;
    run_reschedule(&[&a, &b], "mongo").await;
}
