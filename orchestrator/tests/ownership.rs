//! The ownership rule (ADMIN, the job's owner, or the job's node — `nodeid` or `server`) on
//! every RPC that touches a job, its runs or its tasks, over TLS on the real binary: each
//! attack of the security review fails, and the original node agent's flows still pass
//! (node/executor.py: a client node reports its runs and asks its server node for a server;
//! the server node reads the client's run, reports its own and completes the task).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_proto::unary::*;
use leotest_test_support::calls::*;
use leotest_test_support::future_year;
use leotest_test_support::{As, Creds, Orchestrator};

const OK: i32 = ResponseState::Success as i32;
const FAILED: i32 = ResponseState::Failed as i32;

/// alice's atq job `aj` on node n1 with server n2; bob's job `bj` on n1; nodes n1..n3.
struct World {
    s: Orchestrator,
    c: Client,
    alice: Creds,
    bob: Creds,
    n1: Creds,
    n2: Creds,
    n3: Creds,
}

async fn world() -> World {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let alice = user(&s, "alice", UserRoles::User).await;
    let bob = user(&s, "bob", UserRoles::UserPriv).await;
    let (n1, n2, n3) = (
        node(&s, "n1").await,
        node(&s, "n2").await,
        node(&s, "n3").await,
    );
    let r = schedule(&mut c, &alice, atq_job("aj", "n1", "n2")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    let r = schedule(&mut c, &bob, atq_job("bj", "n1", "")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    World {
        s,
        c,
        alice,
        bob,
        n1,
        n2,
        n3,
    }
}

#[tokio::test]
async fn security_get_job_by_id_shows_a_job_only_to_admin_owner_and_its_nodes() {
    let World {
        s: _server,
        mut c,
        alice,
        bob,
        n1,
        n2,
        n3,
        ..
    } = world().await;
    for who in [&Creds::admin(), &alice, &n1, &n2] {
        let got = get_job(&mut c, who, "aj").await;
        assert!(got.exists, "{who:?}");
        assert_eq!(got.config, "secret: config of aj\n");
    }
    // Attack: another user (or an unrelated node) reads the job's config. It reads as an
    // unknown job: the reply type has no field for a refusal.
    for who in [&bob, &n3] {
        assert_eq!(
            get_job(&mut c, who, "aj").await,
            MessageGetJobByIdResponse::default(),
            "{who:?}"
        );
    }
}

#[tokio::test]
async fn security_get_jobs_by_nodeid_lists_only_the_callers_jobs() {
    let World {
        s: _server,
        c,
        alice,
        bob,
        n1,
        n2,
        n3,
        ..
    } = world().await;
    let ids = |r: MessageGetJobsByNodeidResponse| -> (bool, Vec<String>) {
        (r.exists, r.jobs.into_iter().map(|j| j.id).collect())
    };
    let list = |who: Creds, nodeid: &'static str| {
        let c = c.clone();
        async move {
            As::new(&c, &who)
                .get_jobs_by_nodeid(MessageGetJobsByNodeid {
                    nodeid: nodeid.into(),
                })
                .await
        }
    };
    // The node agent's own call (scheduler.py) and the admin see every job of the node.
    let (exists, mut all) = ids(list(n1.clone(), "n1").await);
    all.sort();
    assert!(exists);
    assert_eq!(all, ["aj", "bj"]);
    let (_, mut all) = ids(list(Creds::admin(), "n1").await);
    all.sort();
    assert_eq!(all, ["aj", "bj"]);
    // The server node sees the job it serves.
    assert_eq!(ids(list(n2.clone(), "n2").await), (true, vec!["aj".into()]));
    // Owners see their own; nothing else.
    assert_eq!(
        ids(list(alice.clone(), "n1").await),
        (true, vec!["aj".into()])
    );
    assert_eq!(
        ids(list(bob.clone(), "n1").await),
        (true, vec!["bj".into()])
    );
    assert_eq!(ids(list(bob.clone(), "n2").await), (false, vec![]));
    assert_eq!(ids(list(n3.clone(), "n1").await), (false, vec![]));
}

#[tokio::test]
async fn security_forged_runs_are_refused_and_do_not_mark_a_node_alive() {
    let World {
        s: _server,
        mut c,
        alice,
        bob,
        n1,
        n3,
        ..
    } = world().await;
    let active = |c: &mut Client| {
        let mut c = c.clone();
        async move {
            nodes(
                &mut c,
                &Creds::admin(),
                MessageGetNodes {
                    active: Some(true),
                    ..Default::default()
                },
            )
            .await
            .into_iter()
            .map(|n| n.nodeid)
            .collect::<Vec<_>>()
        }
    };
    assert!(active(&mut c).await.is_empty(), "nodes start inactive");

    // Attack: a USER reports a run of another user's job (blob_url anywhere).
    let r = update_run(&mut c, &bob, run("forged", "aj", "n1", "alice")).await;
    assert_eq!((r.state, r.message), (FAILED, denied(&bob, "USER_PRIV")));
    // ... or of a job that does not exist, naming the node.
    let r = update_run(&mut c, &bob, run("forged2", "ghost", "n1", "bob")).await;
    assert_eq!(r.state, FAILED);
    // ... or of its own job, naming another user: nobody plants runs in someone's list.
    let r = update_run(&mut c, &bob, run("forged3", "bj", "n1", "alice")).await;
    assert_eq!(r.state, FAILED);
    // An unrelated node cannot report runs of a job that is not on it.
    let r = update_run(&mut c, &n3, run("forged4", "aj", "n3", "alice")).await;
    assert_eq!((r.state, r.message), (FAILED, denied(&n3, "NODE")));
    // The owner may report a run of its own job, but that does not make the node look alive.
    let r = update_run(&mut c, &bob, run("own", "bj", "n1", "bob")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    assert!(
        active(&mut c).await.is_empty(),
        "only the node marks itself alive"
    );

    let all = get_runs(&mut c, &Creds::admin(), MessageGetRuns::default()).await;
    let ids: Vec<&str> = all.iter().map(|r| r.runid.as_str()).collect();
    assert_eq!(ids, ["own"]);

    // Attack: rewrite another user's run by its runid from one's own job.
    let r = update_run(&mut c, &n1, run("alice-run", "aj", "n1", "alice")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    let r = update_run(&mut c, &bob, run("alice-run", "bj", "n1", "bob")).await;
    assert_eq!(r.state, FAILED);
    let got = get_runs(
        &mut c,
        &alice,
        MessageGetRuns {
            runid: Some("alice-run".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].jobid.as_str(), got[0].userid.as_str()),
        ("aj", "alice")
    );
}

#[tokio::test]
async fn security_the_original_node_agent_flow_passes() {
    let y = future_year();
    let World {
        s: _server,
        mut c,
        alice,
        bob,
        n1,
        n2,
        ..
    } = world().await;
    // Client node n1 runs alice's job: reports the run (executor.py update_run) ...
    let r = update_run(&mut c, &n1, run("r1", "aj", "n1", "alice")).await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (OK, "updated run successfully")
    );
    // ... which marks it alive, as the original.
    let active: Vec<String> = nodes(
        &mut c,
        &Creds::admin(),
        MessageGetNodes {
            active: Some(true),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|n| n.nodeid)
    .collect();
    assert_eq!(active, ["n1"]);
    // ... asks its server node for the server side (schedule_task on n2) and polls it.
    let r = schedule_task(&mut c, &n1, task("t1", "r1", "aj", "n2")).await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (OK, "task successfully scheduled")
    );
    let polled = get_tasks(
        &mut c,
        &n1,
        MessageGetTasks {
            taskid: Some("t1".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(polled.len(), 1);
    // Server node n2: sees the task (scheduler.py get_tasks(nodeid)), reads the client's run
    // (executor.py server mode, get_runs(runid)), reports its own run under the client's
    // nodeid, and completes the task.
    let mine = get_tasks(
        &mut c,
        &n2,
        MessageGetTasks {
            nodeid: Some("n2".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(mine.len(), 1);
    let read = get_runs(
        &mut c,
        &n2,
        MessageGetRuns {
            runid: Some("r1".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(read.len(), 1);
    let r = update_run(&mut c, &n2, run("r1_server", "aj", "n1", "alice")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    let r = update_task(&mut c, &n2, "t1").await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (OK, "updated task successfully")
    );
    // The owner reads its runs; another user sees none of them.
    let got = get_runs(
        &mut c,
        &alice,
        MessageGetRuns {
            jobid: Some("aj".into()),
            ..Default::default()
        },
    )
    .await;
    let mut ids: Vec<String> = got.into_iter().map(|r| r.runid).collect();
    ids.sort();
    assert_eq!(ids, ["r1", "r1_server"]);
    assert!(get_runs(&mut c, &bob, MessageGetRuns::default())
        .await
        .is_empty());
    assert!(get_runs(
        &mut c,
        &bob,
        MessageGetRuns {
            userid: Some("alice".into()),
            ..Default::default()
        }
    )
    .await
    .is_empty());
    // The node reschedules its atq job (executor.py, scavenger mode).
    let r = As::new(&c, &n1)
        .reschedule_job_nearest(MessageRescheduleJob {
            jobid: "aj".into(),
            starttime: format!("{y}-03-01 11:00:00"),
            endtime: format!("{y}-03-02 10:00:00"),
        })
        .await;
    // (No free slot here: bob's atq job blocks its window, under the original's rules.)
    assert!(!r.message.starts_with("permission denied"), "{}", r.message);
}

#[tokio::test]
async fn security_tasks_on_another_users_node_are_refused() {
    let World {
        s: _server,
        mut c,
        alice,
        bob,
        n1,
        n3,
        ..
    } = world().await;
    // Attack: a USER puts a task on the server node of someone else's job ...
    let r = schedule_task(&mut c, &bob, task("evil", "r", "aj", "n2")).await;
    assert_eq!((r.state, r.message), (FAILED, denied(&bob, "USER_PRIV")));
    // ... or on a node that is not one of its own job's nodes.
    let r = schedule_task(&mut c, &bob, task("evil2", "r", "bj", "n2")).await;
    assert_eq!(r.state, FAILED);
    // ... or names no job at all.
    let r = schedule_task(&mut c, &bob, task("evil3", "r", "", "n2")).await;
    assert_eq!(r.state, FAILED);
    // An unrelated node cannot either.
    let r = schedule_task(&mut c, &n3, task("evil4", "r", "aj", "n2")).await;
    assert_eq!(r.state, FAILED);
    assert!(
        get_tasks(&mut c, &Creds::admin(), MessageGetTasks::default())
            .await
            .is_empty()
    );

    // The owner may ask its job's server node; a node may put a task on itself.
    let r = schedule_task(&mut c, &alice, task("t-own", "r", "aj", "n2")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    let r = schedule_task(&mut c, &n3, task("t-self", "r", "", "n3")).await;
    assert_eq!(r.state, OK, "{}", r.message);

    // Attack: read or complete someone else's task.
    for who in [&bob, &n3] {
        let seen = get_tasks(
            &mut c,
            who,
            MessageGetTasks {
                taskid: Some("t-own".into()),
                ..Default::default()
            },
        )
        .await;
        assert!(seen.is_empty(), "{who:?}");
    }
    let r = update_task(&mut c, &bob, "t-own").await;
    assert_eq!((r.state, r.message), (FAILED, denied(&bob, "USER_PRIV")));
    let r = update_task(&mut c, &bob, "no-such-task").await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (FAILED, "task with given id does not exist")
    );
    let still = get_tasks(
        &mut c,
        &Creds::admin(),
        MessageGetTasks {
            taskid: Some("t-own".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(still[0].status, TaskStatus::TaskScheduled as i32);
    // The job's client node may read and complete it (it polls the task).
    let r = update_task(&mut c, &n1, "t-own").await;
    assert_eq!(r.state, OK, "{}", r.message);
}

#[tokio::test]
async fn security_reschedule_and_delete_follow_the_rule() {
    let y = future_year();
    let World {
        s: _server,
        mut c,
        bob,
        n1,
        n3,
        ..
    } = world().await;
    for who in [&bob, &n3] {
        let r = As::new(&c, who)
            .reschedule_job_nearest(MessageRescheduleJob {
                jobid: "aj".into(),
                starttime: format!("{y}-03-01 11:00:00"),
                endtime: format!("{y}-03-02 10:00:00"),
            })
            .await;
        assert!(!r.rescheduled);
        assert!(r.message.starts_with("permission denied"), "{}", r.message);
    }
    // Deleting stays ADMIN or owner, as in the original: not even the job's node.
    for (who, role) in [(&bob, "USER_PRIV"), (&n1, "NODE")] {
        let r = As::new(&c, who)
            .delete_job_by_id(MessageDeleteJobById { jobid: "aj".into() })
            .await;
        assert_eq!((r.exists, r.message), (true, denied(who, role)));
    }
    assert!(get_job(&mut c, &Creds::admin(), "aj").await.exists);
}

#[tokio::test]
async fn security_runs_of_a_job_that_is_gone_can_still_be_finished_by_its_node() {
    let World {
        s,
        mut c,
        alice,
        bob,
        n1,
        ..
    } = world().await;
    let r = update_run(&mut c, &n1, run("late", "aj", "n1", "alice")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    // The job ends (here: deleted) while its last run is still finishing.
    let r = As::new(&c, &alice)
        .delete_job_by_id(MessageDeleteJobById { jobid: "aj".into() })
        .await;
    assert!(r.exists);
    let mut done = run("late", "aj", "n1", "alice");
    done.status = "COMPLETE".into();
    let r = update_run(&mut c, &n1, done.clone()).await;
    assert_eq!(r.state, OK, "{}", r.message);
    // Nobody else can take over the orphaned run.
    done.status = "FORGED".into();
    let r = update_run(&mut c, &bob, done).await;
    assert_eq!(r.state, FAILED);
    let got = get_runs(
        &mut c,
        &alice,
        MessageGetRuns {
            runid: Some("late".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got[0].status, "COMPLETE");
    drop(s);
}
