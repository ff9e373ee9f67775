//! Jobs, runs and tasks over TLS on the real binary: scheduling, conflicts, bad input, slots,
//! runs, tasks, deletion rules; embedded store always, MongoDB too when `LEOTEST_TEST_MONGO_URI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_proto::unary::*;
use leotest_test_support::future_year;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{calls, req, As, Creds, Orchestrator};

fn atq(id: &str, start: &str, end: &str) -> MessageScheduleJob {
    MessageScheduleJob {
        id: id.into(),
        nodeid: "node-1".into(),
        r#type: JobType::Atq as i32,
        params: Some(JobParams::default()),
        start_date: start.into(),
        end_date: end.into(),
        length_secs: 600,
        overhead: true,
        ..Default::default()
    }
}

fn cron(id: &str, schedule: &str) -> MessageScheduleJob {
    let y = future_year();
    MessageScheduleJob {
        r#type: JobType::Cron as i32,
        schedule: schedule.into(),
        ..atq(
            id,
            &format!("{y}-01-01T00:00:00"),
            &format!("{y}-01-02T00:00:00"),
        )
    }
}

async fn schedule(
    c: &mut leotest_proto::LeotestOrchestratorClient<tonic::transport::Channel>,
    msg: MessageScheduleJob,
) -> MessageScheduleJobResponse {
    As::new(c, &Creds::admin()).schedule_job(msg).await
}

#[tokio::test]
async fn schedule_read_conflict_and_delete() {
    let y = future_year();
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;

    let r = schedule(&mut c, cron("c1", "0 */2 * * *")).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    assert_eq!(r.message, "job successfully scheduled");

    let dup = schedule(&mut c, cron("c1", "0 1 * * *")).await;
    assert_eq!(dup.state, ResponseState::Failed as i32);
    assert_eq!(dup.message, "job with the given id exists");

    let got = As::new(&c, &Creds::admin())
        .get_job_by_id(MessageGetJobById { jobid: "c1".into() })
        .await;
    assert!(got.exists);
    assert_eq!(got.schedule, "0 */2 * * *");
    assert_eq!(got.userid, "admin");
    assert_eq!(got.start_date, format!("{y}-01-01T00:00:00"));

    // An ATQ run at 01:55 for 10 minutes holds the 02:00 cron start: a conflict. (One that
    // starts inside a cron run already under way is not detected, as in the original.)
    let clash = schedule(
        &mut c,
        atq(
            "a1",
            &format!("{y}-01-01T01:55:00"),
            &format!("{y}-01-01T03:00:00"),
        ),
    )
    .await;
    assert_eq!(clash.state, ResponseState::Failed as i32);
    assert!(
        clash.message.starts_with("schedule conflict:") && clash.message.contains("jobid=c1"),
        "{}",
        clash.message
    );

    let runs = As::new(&c, &Creds::admin())
        .get_scheduled_runs(MessageGetScheduledRuns {
            nodeid: "node-1".into(),
            start: format!("{y}-01-01T00:00:00"),
            end: format!("{y}-01-01T05:00:00"),
        })
        .await;
    assert_eq!(
        runs.state,
        ResponseState::Success as i32,
        "{}",
        runs.message
    );
    assert_eq!(runs.events.len(), 3, "runs at 00:00, 02:00, 04:00");

    let del = As::new(&c, &Creds::admin())
        .delete_job_by_id(MessageDeleteJobById { jobid: "c1".into() })
        .await;
    assert!(del.exists);
    assert_eq!(del.message, "deleted job successfully");
    let gone = As::new(&c, &Creds::admin())
        .get_job_by_id(MessageGetJobById { jobid: "c1".into() })
        .await;
    assert!(!gone.exists);

    // With the cron job gone the ATQ job fits.
    let ok = schedule(
        &mut c,
        atq(
            "a1",
            &format!("{y}-01-01T02:05:00"),
            &format!("{y}-01-01T03:00:00"),
        ),
    )
    .await;
    assert_eq!(ok.state, ResponseState::Success as i32, "{}", ok.message);
}

/// The same requests under both `--overlap-rules`: what `original` accepts as in the Python
/// orchestrator and `strict` refuses (and the other way round), and the slot each one finds.
#[tokio::test]
async fn overlap_rules_flag_changes_conflicts_and_slots() {
    let y = future_year();
    const OK: i32 = ResponseState::Success as i32;
    const FAILED: i32 = ResponseState::Failed as i32;
    // (rules, ATQ during a running cron run, ATQ touching another ATQ, reschedule slot)
    for (rules, under_way, touching, slot) in [
        ("original", OK, FAILED, format!("{y}-01-01 04:03:00")),
        ("strict", FAILED, OK, format!("{y}-01-01 04:10:00")),
    ] {
        let s = Orchestrator::start(&["--overlap-rules", rules]).await;
        let mut c = s.client().await;
        let r = schedule(&mut c, cron("c1", "0 */2 * * *")).await;
        assert_eq!(r.state, OK, "{rules}: {}", r.message);

        // 02:05 for 10 min while the 02:00 run (10 min) is still going.
        let r = schedule(
            &mut c,
            atq(
                "a1",
                &format!("{y}-01-01T02:05:00"),
                &format!("{y}-01-01T03:00:00"),
            ),
        )
        .await;
        assert_eq!(r.state, under_way, "{rules}: {}", r.message);
        if under_way == FAILED {
            assert!(
                r.message.starts_with("schedule conflict:<0, jobid=c1,")
                    && r.message
                        .contains(&format!("conflict_start={y}-01-01 02:05:00"))
                    && r.message
                        .contains(&format!("conflict_end={y}-01-01 02:10:00")),
                "{rules}: {}",
                r.message
            );
        }

        // 11:10 right after an ATQ run 11:00-11:10.
        let r = schedule(
            &mut c,
            atq(
                "t1",
                &format!("{y}-01-01T11:00:00"),
                &format!("{y}-01-01T11:10:00"),
            ),
        )
        .await;
        assert_eq!(r.state, OK, "{rules}: {}", r.message);
        let r = schedule(
            &mut c,
            atq(
                "t2",
                &format!("{y}-01-01T11:10:00"),
                &format!("{y}-01-01T11:20:00"),
            ),
        )
        .await;
        assert_eq!(r.state, touching, "{rules}: {}", r.message);

        // An ATQ job without overhead is never checked, under either rule set (with overhead,
        // holding the 20:00 cron start would conflict under both).
        let quiet = MessageScheduleJob {
            overhead: false,
            ..atq(
                "q1",
                &format!("{y}-01-01T19:55:00"),
                &format!("{y}-01-01T20:30:00"),
            )
        };
        let r = schedule(&mut c, quiet).await;
        assert_eq!(r.state, OK, "{rules}: {}", r.message);

        // Nearest slot from 04:03: strict sees the 04:00 run still going until 04:10.
        let r = As::new(&c, &Creds::admin())
            .reschedule_job_nearest(MessageRescheduleJob {
                jobid: "t1".into(),
                starttime: format!("{y}-01-01 04:03:00"),
                endtime: format!("{y}-01-01 05:00:00"),
            })
            .await;
        assert_eq!(
            (r.rescheduled, r.message),
            (
                true,
                format!("updated job schedule successfully; next_slot={slot}")
            ),
            "{rules}"
        );
    }
}

#[tokio::test]
async fn invalid_dates_crontabs_and_triggers_fail_with_a_message() {
    let y = future_year();
    let mut s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let bad = [
        (
            atq("d1", "not-a-date", &format!("{y}-01-02")),
            "invalid start_date",
        ),
        (
            atq("d2", &format!("{y}-01-01"), &format!("{y}-13-45")),
            "invalid end_date",
        ),
        (atq("d3", "", &format!("{y}-01-02")), "invalid start_date"),
        (cron("d4", "61 * * * *"), "invalid crontab"),
        (cron("d5", "* * * *"), "invalid crontab"),
        (cron("d6", &"9".repeat(100_000)), "invalid crontab"),
        (
            MessageScheduleJob {
                trigger: Some("weather_temp >> 3".into()),
                ..atq("d7", &format!("{y}-01-01"), &format!("{y}-01-02"))
            },
            "trigger",
        ),
        (
            MessageScheduleJob {
                trigger: Some("(weather_temp > 3".into()),
                ..atq("d8", &format!("{y}-01-01"), &format!("{y}-01-02"))
            },
            "trigger",
        ),
    ];
    for (msg, want) in bad {
        let id = msg.id.clone();
        let r = schedule(&mut c, msg).await;
        assert_eq!(r.state, ResponseState::Failed as i32, "{id}: {}", r.message);
        assert!(r.message.contains(want), "{id}: {}", r.message);
    }
    let good = schedule(
        &mut c,
        MessageScheduleJob {
            trigger: Some("(weather_temp > 20) & !(currently_obstructed == 1)".into()),
            ..atq(
                "t1",
                &format!("{y}-01-01T10:00:00+05:30"),
                &format!("{y}-01-02T10:00:00+05:30"),
            )
        },
    )
    .await;
    assert_eq!(
        good.state,
        ResponseState::Success as i32,
        "{}",
        good.message
    );
    assert!(s.is_running(), "server survived bad input");
}

// ---- full flow, run on each store -----------------------------------------------------------

const OK: i32 = ResponseState::Success as i32;
const FAILED: i32 = ResponseState::Failed as i32;

fn job_req(
    id: &str,
    node: &str,
    kind: JobType,
    schedule: &str,
    start: &str,
    end: &str,
    len: i32,
) -> MessageScheduleJob {
    MessageScheduleJob {
        id: id.into(),
        nodeid: node.into(),
        r#type: kind as i32,
        params: Some(JobParams {
            mode: "docker".into(),
            deploy: format!("deploy {id}"),
            execute: "run".into(),
            finish: "done".into(),
        }),
        schedule: schedule.into(),
        start_date: start.into(),
        end_date: end.into(),
        length_secs: len,
        overhead: true,
        ..Default::default()
    }
}

async fn schedule_as(s: &Orchestrator, who: &Creds, m: MessageScheduleJob) -> (i32, String) {
    let r = s
        .client()
        .await
        .schedule_job(req(m, who))
        .await
        .expect("schedule_job")
        .into_inner();
    (r.state, r.message)
}

fn scheduled() -> (i32, String) {
    (OK, "job successfully scheduled".into())
}

async fn scenario(s: &Orchestrator) {
    let y = future_year();
    let admin = Creds::admin();
    let alice = calls::user(s, "alice", UserRoles::User).await;
    let bob = calls::user(s, "bob", UserRoles::User).await;
    let node = calls::node(s, "n1").await;
    let c = s.client().await;
    let (d0, d1) = (format!("{y}-01-15 10:00:00"), format!("{y}-01-15 14:00:00"));

    // Scheduling, duplicates and refusals of invalid input.
    assert_eq!(
        schedule_as(
            s,
            &alice,
            job_req("c1", "n1", JobType::Cron, "0 * * * *", &d0, &d1, 600)
        )
        .await,
        scheduled()
    );
    assert_eq!(
        schedule_as(
            s,
            &alice,
            job_req("c1", "n1", JobType::Cron, "0 3 * * *", &d0, &d1, 600)
        )
        .await,
        (FAILED, "job with the given id exists".into())
    );
    let conflict = schedule_as(
        s,
        &bob,
        job_req("c2", "n1", JobType::Cron, "5 * * * *", &d0, &d1, 600),
    )
    .await;
    assert_eq!(
        conflict,
        (
            FAILED,
            format!(
                "schedule conflict:<0, jobid=c1, cron='0 * * * *', start={y}-01-15 10:00:00, \
             end={y}-01-15 14:00:00,conflict_start={y}-01-15 09:55:00, \
             conflict_end={y}-01-15 10:15:00>"
            )
        )
    );
    let mut t = job_req(
        "x5",
        "n1",
        JobType::Atq,
        "",
        &format!("{y}-01-15 12:30:00"),
        &d1,
        120,
    );
    t.trigger = Some("weather_temp >".into());
    assert_eq!(
        schedule_as(s, &alice, t).await,
        (FAILED, "trigger: syntax error at end of input".into())
    );
    let mut t = job_req(
        "a1",
        "n1",
        JobType::Atq,
        "",
        &format!("{y}-01-15 12:30:00"),
        &d1,
        120,
    );
    t.trigger = Some("weather_temp > 20 & !(currently_obstructed == 1)".into());
    assert_eq!(schedule_as(s, &alice, t).await, scheduled());

    // Reads and role rules: another user's job reads as unknown.
    let got = As::new(&c, &bob)
        .get_job_by_id(MessageGetJobById { jobid: "a1".into() })
        .await;
    assert_eq!(got, MessageGetJobByIdResponse::default());
    let got = As::new(&c, &alice)
        .get_job_by_id(MessageGetJobById { jobid: "a1".into() })
        .await;
    assert!(got.exists);
    assert_eq!(
        (got.userid.as_str(), got.r#type, got.schedule.as_str()),
        ("alice", JobType::Atq as i32, "")
    );
    let mine = As::new(&c, &alice)
        .get_jobs_by_userid(MessageGetJobsByUserid {
            userid: "alice".into(),
        })
        .await;
    assert_eq!(
        mine.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["c1", "a1"],
        "insertion order, as the original"
    );
    let theirs = As::new(&c, &bob)
        .get_jobs_by_userid(MessageGetJobsByUserid {
            userid: "alice".into(),
        })
        .await;
    assert_eq!(
        (theirs.exists, theirs.message.as_str()),
        (false, "permission denied: userid=bob and role=USER")
    );

    // Expansion of the node's schedule.
    let runs = As::new(&c, &node)
        .get_scheduled_runs(MessageGetScheduledRuns {
            nodeid: "n1".into(),
            start: d0.clone(),
            end: format!("{y}-01-15 13:00:00"),
        })
        .await;
    assert_eq!((runs.state, runs.message.as_str()), (OK, "success"));
    let mut ev: Vec<(String, String, String)> = runs
        .events
        .iter()
        .map(|e| (e.title.clone(), e.start.clone(), e.end.clone()))
        .collect();
    ev.sort();
    let want: Vec<(String, String, String)> = [
        (
            "a1",
            format!("{y}-01-15 12:30:00"),
            format!("{y}-01-15 12:32:00"),
        ),
        (
            "c1",
            format!("{y}-01-15 10:00:00"),
            format!("{y}-01-15 10:10:00"),
        ),
        (
            "c1",
            format!("{y}-01-15 11:00:00"),
            format!("{y}-01-15 11:10:00"),
        ),
        (
            "c1",
            format!("{y}-01-15 12:00:00"),
            format!("{y}-01-15 12:10:00"),
        ),
        (
            "c1",
            format!("{y}-01-15 13:00:00"),
            format!("{y}-01-15 13:10:00"),
        ),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(ev, want);
    let bad = As::new(&c, &node)
        .get_scheduled_runs(MessageGetScheduledRuns {
            nodeid: "n1".into(),
            start: d1.clone(),
            end: d0.clone(),
        })
        .await;
    assert_eq!(
        (bad.state, bad.message.as_str()),
        (FAILED, "error: end must be greater than start")
    );

    // Nearest free slot: [11:59, 12:01] holds the 12:00 cron start, whose run lasts until 12:10.
    // (A run already under way at the start is not seen, as in the original.)
    let r = As::new(&c, &alice)
        .reschedule_job_nearest(MessageRescheduleJob {
            jobid: "a1".into(),
            starttime: format!("{y}-01-15 11:59:00"),
            endtime: format!("{y}-01-15 12:40:00"),
        })
        .await;
    assert_eq!(
        (r.rescheduled, r.message.clone()),
        (
            true,
            format!("updated job schedule successfully; next_slot={y}-01-15 12:10:00")
        )
    );
    let r = As::new(&c, &alice)
        .reschedule_job_nearest(MessageRescheduleJob {
            jobid: "c1".into(),
            starttime: d0.clone(),
            endtime: d1.clone(),
        })
        .await;
    assert_eq!(
        (r.rescheduled, r.message.as_str()),
        (false, "only jobs of type 'atq' can be rescheduled.")
    );

    // Runs: upsert by runid (in place), filters, insertion order as the original.
    for (runid, h, status) in [
        ("r1", 10, "running"),
        ("r2", 11, "done"),
        ("r1", 10, "done"),
    ] {
        let r = As::new(&c, &node)
            .update_run(MessageUpdateRun {
                run: Some(RunInstance {
                    runid: runid.into(),
                    jobid: "c1".into(),
                    nodeid: "n1".into(),
                    userid: "alice".into(),
                    start_time: format!("{y}-01-15T{h}:00:00+00:00"),
                    end_time: format!("{y}-01-15T{h}:10:00+00:00"),
                    last_updated: format!("{y}-01-15T{h}:10:00+00:00"),
                    status: status.into(),
                    ..Default::default()
                }),
            })
            .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (OK, "updated run successfully")
        );
    }
    let got = As::new(&c, &alice)
        .get_runs(MessageGetRuns {
            jobid: Some("c1".into()),
            ..Default::default()
        })
        .await;
    let seen: Vec<(&str, &str, &str)> = got
        .runs
        .iter()
        .map(|r| (r.runid.as_str(), r.status.as_str(), r.start_time.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("r1", "done", format!("{y}-01-15 10:00:00").as_str()),
            ("r2", "done", format!("{y}-01-15 11:00:00").as_str())
        ]
    );
    // Times come back at the precision of the original's database (MongoDB: milliseconds).
    let r = As::new(&c, &node)
        .update_run(MessageUpdateRun {
            run: Some(RunInstance {
                runid: "r-precise".into(),
                jobid: "c9".into(),
                nodeid: "n1".into(),
                userid: "alice".into(),
                start_time: format!("{y}-01-01 00:10:00.000123"),
                end_time: format!("{y}-01-01 00:10:32.910943"),
                last_updated: format!("{y}-01-01 00:10:32.910943"),
                status: "done".into(),
                ..Default::default()
            }),
        })
        .await;
    assert_eq!(r.state, OK, "{}", r.message);
    let got = As::new(&c, &alice)
        .get_runs(MessageGetRuns {
            runid: Some("r-precise".into()),
            ..Default::default()
        })
        .await;
    let times: Vec<(&str, &str, &str)> = got
        .runs
        .iter()
        .map(|r| {
            (
                r.start_time.as_str(),
                r.end_time.as_str(),
                r.last_updated.as_str(),
            )
        })
        .collect();
    assert_eq!(
        times,
        [(
            format!("{y}-01-01 00:10:00").as_str(),
            format!("{y}-01-01 00:10:32.910000").as_str(),
            format!("{y}-01-01 00:10:32.910000").as_str()
        )]
    );
    let bad = As::new(&c, &node)
        .update_run(MessageUpdateRun {
            run: Some(RunInstance {
                runid: "r3".into(),
                start_time: "soon".into(),
                ..Default::default()
            }),
        })
        .await;
    assert_eq!(
        (bad.state, bad.message.as_str()),
        (FAILED, "invalid start_time: 'soon'")
    );

    // Tasks.
    let task = Task {
        taskid: "t1".into(),
        runid: "r1".into(),
        jobid: "c1".into(),
        nodeid: "n1".into(),
        ttl_secs: 300,
        status: 2,
        ..Default::default()
    };
    let r = As::new(&c, &node)
        .schedule_task(MessageScheduleTask {
            task: Some(task.clone()),
        })
        .await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (OK, "task successfully scheduled")
    );
    let r = As::new(&c, &node)
        .schedule_task(MessageScheduleTask { task: Some(task) })
        .await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (FAILED, "task with the given id exists")
    );
    let r = As::new(&c, &node)
        .update_task(MessageUpdateTask {
            taskid: "t1".into(),
            status: TaskStatus::TaskComplete as i32,
        })
        .await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (OK, "updated task successfully")
    );
    let tasks = As::new(&c, &node)
        .get_tasks(MessageGetTasks {
            nodeid: Some("n1".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(
        tasks
            .tasks
            .iter()
            .map(|t| (t.taskid.as_str(), t.status))
            .collect::<Vec<_>>(),
        [("t1", TaskStatus::TaskComplete as i32)]
    );

    // Deletion rules.
    let r = As::new(&c, &bob)
        .delete_job_by_id(MessageDeleteJobById { jobid: "c1".into() })
        .await;
    assert_eq!(
        (r.exists, r.message.as_str()),
        (true, "permission denied: userid=bob and role=USER")
    );
    let r = As::new(&c, &alice)
        .delete_jobs_by_nodeid(MessageDeleteJobsByNodeid {
            nodeid: "n1".into(),
        })
        .await;
    assert_eq!(
        (r.num_deleted, r.message.as_str()),
        (0, "permission denied: userid=alice and role=USER")
    );
    let r = As::new(&c, &alice)
        .delete_job_by_id(MessageDeleteJobById { jobid: "a1".into() })
        .await;
    assert_eq!(
        (r.exists, r.message.as_str()),
        (true, "deleted job successfully")
    );
    let r = As::new(&c, &admin)
        .delete_jobs_by_nodeid(MessageDeleteJobsByNodeid {
            nodeid: "n1".into(),
        })
        .await;
    assert_eq!(
        (r.num_deleted, r.message.as_str()),
        (1, "deleted records successfully")
    );
    let r = As::new(&c, &admin)
        .delete_job_by_id(MessageDeleteJobById { jobid: "c1".into() })
        .await;
    assert_eq!(
        (r.exists, r.message.as_str()),
        (false, "job with given jobid does not exist")
    );
}

#[tokio::test]
async fn jobs_runs_tasks_on_the_embedded_store() {
    let s = Orchestrator::start(&[]).await;
    scenario(&s).await;
}

#[tokio::test]
async fn jobs_runs_tasks_on_mongodb() {
    let Some(db) = TestMongo::fresh("jobs") else {
        return;
    };
    let s = Orchestrator::builder().store(&db).start().await;
    scenario(&s).await;
}
