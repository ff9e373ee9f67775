//! `leotest` job, run and task commands against the real orchestrator, including the job part
//! of the original `cli/cli-test.sh` with `leotest` in place of `python3 cli.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use leotest_test_support::future_year;
use support::*;

fn jobs_on(o: &Orchestrator, node: &str) -> (i32, usize) {
    let r = o.leotest(&["--json", "job", "--action=get", &format!("--nodeid={node}")]);
    assert!(r.code == 0 || r.code == 1, "{r:?}");
    let n = r.json()["jobs"].as_array().map(Vec::len).unwrap_or(0);
    (r.code, n)
}

#[test]
fn original_cli_test_job_sequence() {
    let y = future_year();
    let o = orchestrator();
    // The original read ./experiment-config.yaml by default.
    std::fs::write(
        o.cwd().join("experiment-config.yaml"),
        "experiment:\n  name: cli-test\n",
    )
    .unwrap();
    let jobs = [
        ("test-id-1", "test-node-1", "*/6 * * * *"),
        ("test-id-2", "test-node-1", "* 3-10 * * *"),
        ("test-id-3", "test-node-1", "*/6 * * 2-10 *"),
        ("test-id-4", "test-node-2", "*/6 * * * *"),
        ("test-id-5", "test-node-2", "* 3-10 * * *"),
        ("test-id-6", "test-node-2", "*/6 * * 2-10 *"),
    ];
    let mut scheduled = Vec::new();
    for (jobid, nodeid, schedule) in jobs {
        let r = o.leotest(&[
            "job",
            "--action=schedule",
            &format!("--jobid={jobid}"),
            &format!("--nodeid={nodeid}"),
            "--type=cron",
            "--params_mode=docker",
            "--params_deploy=random deploy",
            "--params_execute=random execute",
            "--params_finish=random finish",
            &format!("--schedule={schedule}"),
            // The original script gives no dates; the original orchestrator then failed in
            // add_job (dateutil cannot parse ""), so the translation supplies a window.
            &format!("--start-date={y}-01-01T00:00:00"),
            &format!("--end-date={y}-01-02T00:00:00"),
            "--length=60",
        ]);
        // 0 = scheduled, 1 = refused by the orchestrator (e.g. a schedule conflict); never a
        // usage, auth or transport error.
        assert!(r.code == 0 || r.code == 1, "{jobid}: {r:?}");
        if r.code == 0 {
            scheduled.push((jobid, nodeid));
        }
    }
    assert!(
        scheduled.iter().any(|(j, _)| *j == "test-id-1")
            && scheduled.iter().any(|(j, _)| *j == "test-id-4"),
        "the first job on an empty node must be scheduled: {scheduled:?}\n{}",
        o.log()
    );
    let count = |node: &str| scheduled.iter().filter(|(_, n)| *n == node).count();

    assert_eq!(jobs_on(&o, "test-node-1").1, count("test-node-1"));
    assert_eq!(jobs_on(&o, "test-node-2").1, count("test-node-2"));

    // The stored job carries what the command line said.
    let r = o.leotest(&["--json", "job", "--action=get", "--jobid=test-id-1"]);
    r.expect(0);
    let job = r.json();
    assert_eq!(job["nodeid"], "test-node-1");
    assert_eq!(job["schedule"], "*/6 * * * *");
    assert_eq!(job["params"]["deploy"], "random deploy");
    assert_eq!(job["overhead"], true);
    assert!(
        job["config"].as_str().unwrap_or("").contains("cli-test"),
        "{job}"
    );

    let had_5 = scheduled.iter().any(|(j, _)| *j == "test-id-5");
    let r = o.leotest(&["job", "--action=delete", "--jobid=test-id-5"]);
    r.expect(if had_5 { 0 } else { 1 });
    let left_2 = count("test-node-2") - usize::from(had_5);
    assert_eq!(jobs_on(&o, "test-node-2").1, left_2);

    let r = o.leotest(&["--json", "job", "--action=delete", "--nodeid=test-node-1"]);
    r.expect(0);
    assert_eq!(r.json()["num_deleted"], count("test-node-1") as u64);
    assert_eq!(jobs_on(&o, "test-node-1"), (1, 0));

    let r = o.leotest(&["--json", "job", "--action=delete", "--nodeid=test-node-2"]);
    r.expect(0);
    assert_eq!(r.json()["num_deleted"], left_2 as u64);
    assert_eq!(jobs_on(&o, "test-node-2"), (1, 0));

    let r = o.leotest(&["job", "--action=get", "--jobid=test-id-1"]);
    r.expect(1);
}

#[test]
fn jobs_of_the_calling_user_and_reschedule() {
    let y = future_year();
    let o = orchestrator();
    o.leotest(&[
        "job",
        "--action=schedule",
        "--jobid=j-atq",
        "--nodeid=n1",
        "--type=atq",
        &format!("--start-date={y}-01-01T10:00:00"),
        &format!("--end-date={y}-01-01T11:00:00"),
        "--length=600",
        "--exp-config=/dev/null",
    ])
    .expect(0);
    // Without --jobid/--nodeid, `job get` lists the jobs of --userid, like the original.
    let r = o.leotest(&["--json", "job", "--action=get"]);
    r.expect(0);
    let ids: Vec<String> = r.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, ["j-atq"]);

    let r = o.leotest(&[
        "--json",
        "job",
        "--action=reschedule",
        "--jobid=j-atq",
        &format!("--start-date={y}-01-02T00:00:00"),
        &format!("--end-date={y}-01-03T00:00:00"),
    ]);
    assert!(r.code == 0 || r.code == 1, "{r:?}");
    assert!(r.json()["rescheduled"].is_boolean());
    o.leotest(&["job", "--action=reschedule", "--jobid=j-atq"])
        .expect(2);
}

#[test]
fn runs_can_be_listed() {
    let y = future_year();
    let o = orchestrator();
    let r = o.leotest(&["--json", "run", "--action=get", "--jobid=none"]);
    r.expect(0);
    assert_eq!(r.json()["runs"].as_array().map(Vec::len), Some(0));
    let r = o.leotest(&["run", "--action=get", "--jobid=none"]);
    assert!(r.stdout.contains("runs: none"), "{r:?}");

    let r = o.leotest(&[
        "--json",
        "run",
        "--action=get-scheduled",
        "--nodeid=n1",
        &format!("--time-range={y}-01-01T00:00:00,{y}-01-02T00:00:00"),
    ]);
    assert!(r.code == 0 || r.code == 1, "{r:?}");
    assert!(r.json()["events"].is_array());
    o.leotest(&["run", "--action=get-scheduled", "--nodeid=n1"])
        .expect(2);
}

#[test]
fn task_lifecycle() {
    let o = orchestrator();
    o.leotest(&[
        "task",
        "--action=schedule",
        "--taskid=t1",
        "--runid=r1",
        "--jobid=j1",
        "--nodeid=n1",
        "--type=SERVER_START",
    ])
    .expect(0);
    let r = o.leotest(&["--json", "task", "--action=get", "--nodeid=n1"]);
    r.expect(0);
    let tasks = r.json()["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["status"], "TASK_SCHEDULED");
    o.leotest(&["task", "--action=update", "--taskid=t1"])
        .expect(0);
    let r = o.leotest(&["--json", "task", "--action=get", "--taskid=t1"]);
    assert_eq!(r.json()["tasks"][0]["status"], "TASK_COMPLETE");
    o.leotest(&["task", "--action=schedule", "--taskid=t2"])
        .expect(2);
}
