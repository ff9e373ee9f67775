//! `get_scheduled_runs` (the node calendar) against the real orchestrator, issue 21: a USER's
//! job with large params on a busy calendar is answered FAILED in bounded memory instead of a
//! reply that grows with every run, and a USER sees no other user's params in the events
//! (same events, params empty).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_proto::unary::UserRoles;
use leotest_proto::unary::{
    JobParams, JobType, MessageGetScheduledRuns, MessageScheduleJob, ResponseState,
};
use leotest_test_support::calls::{node, user};
use leotest_test_support::future_year;
use leotest_test_support::{As, Creds, Orchestrator};

/// A no-overhead `* * * * *` job of a week on `nodeid`.
fn every_minute(id: &str, nodeid: &str, params: JobParams) -> MessageScheduleJob {
    let y = future_year();
    MessageScheduleJob {
        id: id.into(),
        nodeid: nodeid.into(),
        r#type: JobType::Cron as i32,
        params: Some(params),
        schedule: "* * * * *".into(),
        start_date: format!("{y}-01-01 00:00:00"),
        end_date: format!("{y}-01-08 00:00:00"),
        length_secs: 30,
        overhead: false,
        config: "experiment: x\n".into(),
        ..Default::default()
    }
}

fn calendar(nodeid: &str, start: &str, end: &str) -> MessageGetScheduledRuns {
    MessageGetScheduledRuns {
        nodeid: nodeid.into(),
        start: start.into(),
        end: end.into(),
    }
}

/// The process's peak resident set so far, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_poisoned_calendar_is_answered_in_bounded_memory() {
    let y = future_year();
    let s = Orchestrator::start(&[]).await;
    let pid = s.pid().expect("pid");
    let c = s.client().await;
    node(&s, "n1").await;
    let mallory = As::new(&c, &user(&s, "mallory", UserRoles::User).await);
    // 4 x 60 KiB of params: within the bounds of schedule_job, ~240 KiB per event.
    let big = "p".repeat(60 * 1024);
    let params = JobParams {
        mode: big.clone(),
        deploy: big.clone(),
        execute: big.clone(),
        finish: big,
    };
    let r = mallory
        .schedule_job(every_minute("poison", "n1", params))
        .await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);

    let hwm_before = vm_hwm_kib(pid);
    // A day: 1 441 runs, ~340 MB if every event carried its own copy of the params.
    let day = mallory
        .try_get_scheduled_runs(calendar(
            "n1",
            &format!("{y}-01-02 00:00:00"),
            &format!("{y}-01-03 00:00:00"),
        ))
        .await;
    let hwm_after = vm_hwm_kib(pid);
    eprintln!("poisoned calendar: VmHWM {hwm_before} -> {hwm_after} KiB");
    let day = day.expect("an OK status (the original's clients retry errors forever)");
    assert_eq!(day.state, ResponseState::Failed as i32, "{}", day.message);
    assert!(day.message.contains("shorter range"), "{}", day.message);
    assert!(day.events.is_empty());
    assert!(
        hwm_after <= hwm_before + 32 * 1024,
        "memory peak grew from {hwm_before} to {hwm_after} KiB"
    );
    // A short range of the same calendar is still answered, params included for the owner.
    let ten = mallory
        .get_scheduled_runs(calendar(
            "n1",
            &format!("{y}-01-02 00:00:00"),
            &format!("{y}-01-02 00:10:00"),
        ))
        .await;
    assert_eq!(ten.state, ResponseState::Success as i32, "{}", ten.message);
    assert_eq!(ten.events.len(), 11, "both ends included");
    let p = ten.events[0].params.clone().unwrap_or_default();
    assert_eq!(p.execute.len(), 60 * 1024);

    // Oversized fields are refused when the job is scheduled.
    let huge = JobParams {
        execute: "x".repeat(65 * 1024),
        ..Default::default()
    };
    let r = mallory.schedule_job(every_minute("huge", "n1", huge)).await;
    assert_eq!(r.state, ResponseState::Failed as i32, "{}", r.message);
    assert_eq!(r.message, "invalid params_execute: longer than 65536 bytes");
    let mut portal = every_minute("portal", "n1", JobParams::default());
    portal.config = "k: v\n".repeat(12 * 1024); // 60 KiB of YAML, as the web portal sends
    let r = mallory.schedule_job(portal).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_users_see_no_other_users_params_in_the_calendar() {
    let y = future_year();
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    let n1 = As::new(&c, &node(&s, "n1").await);
    let alice = As::new(&c, &user(&s, "alice", UserRoles::User).await);
    let bob = As::new(&c, &user(&s, "bob", UserRoles::User).await);
    let admin = As::new(&c, &Creds::admin());
    let secret = JobParams {
        mode: "docker".into(),
        deploy: "image=alice/x".into(),
        execute: "run --api-key=s3cr3t".into(),
        finish: "cleanup".into(),
    };
    let r = alice
        .schedule_job(every_minute("alices", "n1", secret.clone()))
        .await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);

    let range = || {
        calendar(
            "n1",
            &format!("{y}-01-02 00:00:00"),
            &format!("{y}-01-02 00:05:00"),
        )
    };
    for (who, sees) in [(&alice, true), (&n1, true), (&admin, true), (&bob, false)] {
        let r = who.get_scheduled_runs(range()).await;
        assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
        assert_eq!(r.events.len(), 6, "{}: same events", who.creds().who());
        for e in &r.events {
            assert_eq!(e.title, "alices");
            assert_eq!(e.schedule, "* * * * *");
            let p = e.params.clone().unwrap_or_default();
            if sees {
                assert_eq!(p, secret, "{} sees the params", who.creds().who());
            } else {
                assert_eq!(p, JobParams::default(), "bob sees no params");
            }
        }
    }
}
