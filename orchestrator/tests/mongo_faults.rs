//! The MongoDB store against what a real replica set does and the test server never does:
//! failover errors, write-concern time-outs, dropped connections (through the fault-injecting
//! wire proxy of leotest-test-support), and the commands the store sends for new records.
//! Runs against `LEOTEST_TEST_MONGO_URI` (skipped when unset).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use chrono::{Duration, Utc};
use leotest_orchestrator::store::mongo::MongoStore;
use leotest_orchestrator::store::*;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::mongo_proxy::{Fault, FaultProxy};

/// A store on a fresh database, connected through a new proxy.
async fn through_proxy() -> Option<(MongoStore, FaultProxy, TestMongo)> {
    let db = TestMongo::fresh("faults")?;
    let proxy = FaultProxy::start(&db.uri).await;
    let store = MongoStore::connect(&proxy.uri(), &db.name)
        .await
        .expect("connect through the proxy");
    proxy.take_seen();
    Some((store, proxy, db))
}

fn user(id: &str) -> User {
    User {
        id: id.to_string(),
        name: format!("{id} name"),
        role: Role::User,
        team: "team".to_string(),
        static_access_token: format!("{id}-static"),
        access_token: String::new(),
    }
}

fn node(id: &str) -> Node {
    Node {
        nodeid: id.to_string(),
        name: format!("{id}-name"),
        description: "Leopard Node".to_string(),
        last_active: Utc::now(),
        coords: "1,2".to_string(),
        location: "here".to_string(),
        provider: "p".to_string(),
        jobs: "None".to_string(),
        scavenger_mode_active: false,
        public_ip: String::new(),
    }
}

fn job(id: &str, nodeid: &str) -> Job {
    let start = Utc::now() + Duration::days(1);
    Job {
        id: id.to_string(),
        nodeid: nodeid.to_string(),
        userid: "alice".to_string(),
        kind: JobKind::Atq,
        params: JobParams {
            mode: "docker".into(),
            deploy: "d".into(),
            execute: "e".into(),
            finish: String::new(),
        },
        schedule: None,
        start_date: start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        end_date: (start + Duration::hours(1))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        length_secs: 60,
        overhead: false,
        server: None,
        trigger: None,
        config: None,
        expire_at: Some(start + Duration::days(2)),
    }
}

fn task(id: &str) -> Task {
    Task {
        taskid: id.to_string(),
        runid: "r1".to_string(),
        jobid: "j1".to_string(),
        nodeid: "n1".to_string(),
        task_type: 1,
        status: 1,
        ttl_secs: 300,
        expire_at: Utc::now() + Duration::seconds(300),
    }
}

fn unavailable<T: std::fmt::Debug>(r: StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::Unavailable(_)))
}

/// MongoDB 5.0+ applies an upsert's `$setOnInsert` fields in name order, so new records must
/// be `insert` commands to keep the original's field order on a real server (nx-27017 keeps
/// the order either way, so the command is what is pinned here).
#[tokio::test]
async fn new_records_are_inserted_not_upserted() {
    let Some((s, proxy, _db)) = through_proxy().await else {
        return;
    };
    assert!(s.add_user(&user("alice")).await.expect("user"));
    assert!(s.register_node(&node("n1")).await.expect("node"));
    assert!(s.add_job(&job("j1", "n1")).await.expect("job"));
    assert!(s.schedule_task(&task("t1")).await.expect("task"));
    let mut node_user = user("n2");
    node_user.role = Role::Node;
    assert!(s.claim_node_user(&node_user).await.expect("claim"));
    let seen = proxy.take_seen();
    for coll in ["users", "nodes", "jobs", "tasks"] {
        assert!(
            seen.iter().any(|(c, on)| c == "insert" && on == coll),
            "no insert into {coll}: {seen:?}"
        );
        assert!(
            !seen
                .iter()
                .any(|(c, on)| on == coll && c == "update" && coll != "users"),
            "an update of {coll}: {seen:?}"
        );
    }
    // claim_node_user first tries the conditional update of an existing NODE user; the new
    // user itself is an insert (checked above). Taken ids are still refused.
    assert!(!s.add_user(&user("alice")).await.expect("again"));
    assert!(!s.register_node(&node("n1")).await.expect("again"));
    assert!(!s.add_job(&job("j1", "n1")).await.expect("again"));
    assert!(!s.schedule_task(&task("t1")).await.expect("again"));
}

/// A primary that stepped down answers NotWritablePrimary: the caller must see "unavailable"
/// (gRPC UNAVAILABLE, retried by clients), not an internal error.
#[tokio::test]
async fn failover_errors_are_unavailable() {
    let Some((s, proxy, _db)) = through_proxy().await else {
        return;
    };
    assert!(s.add_user(&user("alice")).await.expect("user"));
    // Reads are retried once by the driver: fail both attempts.
    proxy.inject("find", Some("users"), 2, Fault::not_writable_primary());
    assert!(unavailable(s.get_user("alice").await));
    proxy.inject(
        "update",
        Some("users"),
        1,
        Fault::CommandError {
            code: 189,
            name: "PrimarySteppedDown",
            labels: vec![],
        },
    );
    assert!(unavailable(
        s.modify_user("alice", "A", Role::User, "t").await
    ));
    proxy.inject(
        "insert",
        Some("nodes"),
        1,
        Fault::CommandError {
            code: 11602,
            name: "InterruptedDueToReplStateChange",
            labels: vec![],
        },
    );
    assert!(unavailable(s.register_node(&node("n1")).await));
    // Once the new primary answers, everything works again.
    assert!(s.register_node(&node("n1")).await.expect("after failover"));
    // The refused update was never applied.
    assert_eq!(
        s.get_user("alice")
            .await
            .expect("after failover")
            .map(|u| u.name),
        Some("alice name".to_string())
    );
}

/// A write the majority did not confirm in time is "unavailable" (its outcome is unknown),
/// not a fault of the request.
#[tokio::test]
async fn write_concern_timeouts_are_unavailable() {
    let Some((s, proxy, _db)) = through_proxy().await else {
        return;
    };
    assert!(s.add_user(&user("alice")).await.expect("user"));
    proxy.inject("update", Some("users"), 1, Fault::wtimeout());
    assert!(unavailable(
        s.modify_user("alice", "A", Role::User, "t").await
    ));
}

/// Multi-document writes are not retried by the driver; ours are idempotent and retried.
#[tokio::test]
async fn idempotent_multi_document_writes_ride_out_a_failover() {
    let Some((s, proxy, _db)) = through_proxy().await else {
        return;
    };
    assert!(s.schedule_task(&task("t1")).await.expect("task"));
    // Applied, then the connection drops before the reply: sent again, same result.
    proxy.inject("update", Some("tasks"), 1, Fault::DropAfter);
    assert!(s
        .update_task("t1", 2)
        .await
        .expect("update_task rides it out"));
    let got = s
        .get_tasks(&TaskFilter {
            taskid: Some("t1".into()),
            ..Default::default()
        })
        .await
        .expect("tasks");
    assert_eq!(got.iter().map(|t| t.status).collect::<Vec<_>>(), [2]);

    assert!(s.add_user(&user("bob")).await.expect("user"));
    proxy.inject("delete", Some("users"), 1, Fault::not_writable_primary());
    assert!(s
        .delete_user("bob")
        .await
        .expect("delete_user rides it out"));
    assert_eq!(s.get_user("bob").await.expect("get"), None);

    assert!(s.add_job(&job("j1", "n1")).await.expect("job"));
    proxy.inject("delete", Some("jobs"), 1, Fault::not_writable_primary());
    assert!(s.delete_job("j1").await.expect("delete_job rides it out"));
    assert_eq!(s.get_job("j1").await.expect("get"), None);

    // The budget is bounded: a database that keeps failing is reported, not waited on.
    proxy.inject("delete", Some("users"), 10, Fault::not_writable_primary());
    assert!(unavailable(s.delete_user("alice").await));
    proxy.clear();
}

/// Health follows "a majority write commits", not "the server answers".
#[tokio::test]
async fn health_fails_while_majority_writes_cannot_commit() {
    let Some((s, proxy, _db)) = through_proxy().await else {
        return;
    };
    s.ping().await.expect("healthy");
    proxy.inject("update", Some("leotest_health"), 1, Fault::wtimeout());
    assert!(unavailable(s.ping().await));
    s.ping().await.expect("healthy again");
}

/// Index builds on first start are bounded: every createIndexes carries `maxTimeMS` (a
/// replica set would otherwise wait for every voting member for ever), and a standalone
/// server such as nx-27017, which has no commit quorum and would refuse one, is sent none.
/// The replica-set side (`commitQuorum: "majority"`) is pinned by the unit tests in
/// `store/mongo/index_build.rs`: nx-27017 answers `hello` as a standalone.
#[tokio::test]
async fn index_builds_are_bounded_in_time() {
    let Some(db) = TestMongo::fresh("faults") else {
        return;
    };
    let proxy = FaultProxy::start(&db.uri).await;
    proxy.capture("createIndexes");
    let _store = MongoStore::connect(&proxy.uri(), &db.name)
        .await
        .expect("connect through the proxy");
    let builds = proxy.take_captured();
    // The original's four, our unique ones, the probe's.
    assert!(builds.len() >= 10, "{builds:?}");
    for cmd in &builds {
        let ms = cmd.get("maxTimeMS").and_then(|v| match v {
            bson::Bson::Int32(n) => Some(i64::from(*n)),
            bson::Bson::Int64(n) => Some(*n),
            _ => None,
        });
        assert!(ms.is_some_and(|ms| ms > 0), "no time limit: {cmd}");
        assert!(
            !cmd.contains_key("commitQuorum"),
            "quorum sent to a standalone: {cmd}"
        );
    }
}

/// A server that times a build out gets a clear start-up error naming the collection and
/// what to check, not a generic backend error (and not a wait for ever).
#[tokio::test]
async fn an_index_build_that_runs_out_of_time_is_a_clear_start_up_error() {
    let Some(db) = TestMongo::fresh("faults") else {
        return;
    };
    let proxy = FaultProxy::start(&db.uri).await;
    proxy.inject(
        "createIndexes",
        Some("runs"),
        1,
        Fault::CommandError {
            code: 50,
            name: "MaxTimeMSExpired",
            labels: vec![],
        },
    );
    let err = MongoStore::connect(&proxy.uri(), &db.name)
        .await
        .expect_err("the build timed out");
    match err {
        StoreError::Unavailable(msg) => {
            assert!(
                msg.contains("runs") && msg.contains("did not commit"),
                "{msg}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Takes the lease of `key` from whoever holds it, as another orchestrator that found it
/// expired would (on a connection of its own, from inside a booking's decision: a plain
/// thread with its own runtime). Its `until` is in the past, so the next taker need not wait.
fn steal_lease(uri: &str, db: &str, key: &str) {
    let (uri, db, key) = (uri.to_string(), db.to_string(), key.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let client = mongodb::Client::with_uri_str(&uri).await.expect("client");
            let res = client
                .database(&db)
                .collection::<bson::Document>(leotest_orchestrator::store::mongo::LOCKS)
                .update_one(
                    bson::doc! { "_id": &key },
                    bson::doc! { "$set": {
                        "holder": "thief",
                        "until": bson::DateTime::from_millis(0),
                    } },
                )
                .await
                .expect("steal");
            assert_eq!(res.matched_count, 1, "no lease {key} to steal");
        });
    })
    .join()
    .expect("steal thread");
}

/// How many job documents have this id (a direct look, expired ones included).
async fn job_docs(db: &TestMongo, id: &str) -> u64 {
    let client = mongodb::Client::with_uri_str(&db.uri)
        .await
        .expect("client");
    client
        .database(&db.name)
        .collection::<bson::Document>("jobs")
        .count_documents(bson::doc! { "id": id })
        .await
        .expect("count")
}

/// A booking whose lease was taken over meanwhile undoes its write and decides again; an
/// undo that meets a failover is sent again instead of leaving the write (which may overlap
/// the booking of whoever took the lease over) in place.
#[tokio::test]
async fn an_overtaken_booking_is_undone_through_a_failover() {
    let Some((s, proxy, db)) = through_proxy().await else {
        return;
    };
    let j1 = job("j1", "n1");
    let mut calls = 0;
    let mut saw_own_write = false;
    let (uri, name) = (db.uri.clone(), db.name.clone());
    let mut decide = |lists: &[&[Job]]| {
        calls += 1;
        saw_own_write |= lists[0].iter().any(|j| j.id == "j1");
        if calls == 1 {
            steal_lease(&uri, &name, "node:n1");
        }
        Some(BookingWrite::Insert(Box::new(j1.clone())))
    };
    // The undo (a delete by `_id`) meets a primary that just stepped down.
    proxy.inject("delete", Some("jobs"), 1, Fault::not_writable_primary());
    let booked = s.book(&["n1".to_string()], &mut decide).await;
    assert_eq!(
        booked.expect("the undo rides out the failover"),
        Booked::Written
    );
    assert_eq!(calls, 2, "decided again after the lost lease");
    assert!(
        !saw_own_write,
        "the second decision saw the overtaken write"
    );
    assert_eq!(job_docs(&db, "j1").await, 1);
}

/// An undo that keeps failing (the database gone for longer than the retry budget) is not
/// forgotten: the booking fails as unavailable, and the next booking of the node takes the
/// write back before it reads, so it never decides on (or next to) an overtaken write.
#[tokio::test]
async fn an_undo_that_keeps_failing_is_applied_before_the_next_booking() {
    let Some((s, proxy, db)) = through_proxy().await else {
        return;
    };
    let j1 = job("j1", "n1");
    let (uri, name) = (db.uri.clone(), db.name.clone());
    let mut first = |_: &[&[Job]]| {
        steal_lease(&uri, &name, "node:n1");
        Some(BookingWrite::Insert(Box::new(j1.clone())))
    };
    proxy.inject("delete", Some("jobs"), 100, Fault::not_writable_primary());
    let res = s.book(&["n1".to_string()], &mut first).await;
    assert!(unavailable(res), "the booking reports the failed undo");
    assert_eq!(
        job_docs(&db, "j1").await,
        1,
        "the overtaken write is still there"
    );
    proxy.clear();

    let j2 = job("j2", "n1");
    let mut saw = Vec::new();
    let mut second = |lists: &[&[Job]]| {
        saw = lists[0].iter().map(|j| j.id.clone()).collect();
        Some(BookingWrite::Insert(Box::new(j2.clone())))
    };
    let booked = s.book(&["n1".to_string()], &mut second).await;
    assert_eq!(booked.expect("second booking"), Booked::Written);
    assert!(saw.is_empty(), "the next decision saw {saw:?}");
    assert_eq!(job_docs(&db, "j1").await, 0, "the pending undo was applied");
    assert_eq!(job_docs(&db, "j2").await, 1);
}

fn run(runid: &str, minute: i64) -> Run {
    let start = Utc::now() - Duration::days(1) + Duration::minutes(minute);
    Run {
        runid: runid.to_string(),
        jobid: "j1".to_string(),
        nodeid: "n1".to_string(),
        userid: "alice".to_string(),
        start_time: start,
        end_time: start + Duration::seconds(30),
        last_updated: start + Duration::seconds(30),
        blob_url: String::new(),
        status: "complete".to_string(),
        status_message: String::new(),
    }
}

/// Lists are in insertion order; the database does the least work for it. On MongoDB the
/// store sorts on `_id` and a `{jobid: 1, _id: 1}` index serves filter and sort together; on
/// a server where such an index cannot be built (nx-27017) the store sends no sort, as the
/// original (that server answers in insertion order; a sort there is an extra pass over the
/// matches). Either way the order is the insertion order, also for a time range and after an
/// update of a run in place.
#[tokio::test]
async fn list_queries_sort_only_where_an_index_serves_the_sort() {
    let Some((s, proxy, db)) = through_proxy().await else {
        return;
    };
    // Inserted out of start_time and runid order.
    let runs = [
        run("r-c", 30),
        run("r-a", 10),
        run("r-d", 40),
        run("r-b", 20),
    ];
    for r in &runs {
        s.update_run(r).await.expect("run");
    }
    let mut updated = runs[0].clone();
    updated.status = "failed".to_string();
    s.update_run(&updated).await.expect("update in place");
    assert!(s.add_job(&job("j1", "n1")).await.expect("job"));

    let client = mongodb::Client::with_uri_str(&db.uri)
        .await
        .expect("client");
    let served = client
        .database(&db.name)
        .collection::<bson::Document>("runs")
        .list_index_names()
        .await
        .expect("indexes")
        .iter()
        .any(|n| n == "jobid_1__id_1");

    proxy.capture("find");
    let all = s
        .get_runs(&RunFilter {
            jobid: Some("j1".into()),
            ..Default::default()
        })
        .await
        .expect("runs");
    let ids = |v: &[Run]| v.iter().map(|r| r.runid.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&all), ["r-c", "r-a", "r-d", "r-b"]);
    let ranged = s
        .get_runs(&RunFilter {
            jobid: Some("j1".into()),
            start_from: Some(Utc::now() - Duration::days(2)),
            start_to: Some(Utc::now()),
            limit: Some(3),
            ..Default::default()
        })
        .await
        .expect("runs");
    assert_eq!(ids(&ranged), ["r-c", "r-a", "r-d"]);
    assert_eq!(
        s.get_jobs_by_nodeid("n1").await.expect("jobs").len(),
        1,
        "jobs of the node"
    );
    let finds = proxy.take_captured();
    assert!(finds.len() >= 3, "{finds:?}");
    for f in &finds {
        let on = f.get_str("find").unwrap_or_default();
        if on == "runs" || on == "jobs" {
            assert_eq!(
                f.contains_key("sort"),
                served,
                "sort sent: {}, {{jobid: 1, _id: 1}} index: {served}: {f}",
                f.contains_key("sort")
            );
        }
    }
}

/// A bulk load goes to the server in short commands: on a server that answers one command at a
/// time (nx-27017), one long insert holds the driver's heartbeat back until the driver takes
/// the server for gone and interrupts the insert (a CI run, 10 000 runs per call on a loaded
/// machine). Keys repeated across commands, or already stored, are still inserted once, and
/// where the unique index is enforced no look-up of stored keys is sent.
#[tokio::test]
async fn a_bulk_load_is_sent_in_short_commands_and_keeps_keys_unique() {
    let Some((s, proxy, _db)) = through_proxy().await else {
        return;
    };
    assert_eq!(s.insert_runs(&[run("run-00007", 7)]).await.expect("one"), 1);
    proxy.capture("insert");
    proxy.capture("find");
    let mut runs: Vec<Run> = (0..2_500).map(|i| run(&format!("run-{i:05}"), i)).collect();
    runs.push(run("run-00005", 5)); // again, in a later command
    let inserted = s.insert_runs(&runs).await.expect("bulk");
    assert_eq!(inserted, 2_499, "2 500 keys, one of them stored before");
    let captured = proxy.take_captured();
    let on = |cmd: &str| {
        captured
            .iter()
            .filter(|c| c.get_str(cmd).is_ok_and(|c| c == "runs"))
            .count()
    };
    assert!(on("insert") >= 3, "{} insert commands", on("insert"));
    // The unique index on runid is enforced (also by nx-27017): it refuses the stored key, so
    // no look-up is sent (on nx-27017 one is a read of the whole collection).
    assert_eq!(on("find"), 0, "look-ups of stored keys");
    let all = s.get_runs(&RunFilter::default()).await.expect("runs");
    assert_eq!(all.len(), 2_500);
}
