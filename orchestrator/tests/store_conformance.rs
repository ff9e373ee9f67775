//! One behaviour suite for every `Store` backend: the embedded store always, MongoDB when
//! `LEOTEST_TEST_MONGO_URI` is set (see `mongo_fixture` below).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_test_support::future_year;
use std::sync::Arc;

use leotest_test_support::mongo::TestMongo;

use chrono::{DateTime, Duration, TimeZone, Utc};
use leotest_orchestrator::clock::{self, Clock, SharedClock, TestClock};
use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::*;

/// A store under test plus whatever keeps its backing resources alive.
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn embedded_fixture(clock: SharedClock) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with_clock(dir.path(), clock).expect("open embedded store");
    Some(Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    })
}

// MongoDB: a fresh database per test on `LEOTEST_TEST_MONGO_URI` (leotest-test-support `mongo`), dropped
// with the fixture. `None` skips the MongoDB variant (a failure instead under CI=true).
async fn mongo_fixture(clock: SharedClock) -> Option<Fixture> {
    let db = TestMongo::fresh("conf")?;
    let store = leotest_orchestrator::store::mongo::MongoStore::connect_with_clock(
        &db.uri, &db.name, clock,
    )
    .await
    .expect("connect to LEOTEST_TEST_MONGO_URI");
    Some(Fixture {
        store: Arc::new(store),
        _guard: Box::new(db),
    })
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid")
}

fn user(id: &str, role: Role) -> User {
    User {
        id: id.to_string(),
        name: format!("{id} name"),
        role,
        team: "team".to_string(),
        static_access_token: format!("{id}-static"),
        access_token: String::new(),
    }
}

fn node(id: &str, location: &str, provider: &str, last_active: DateTime<Utc>) -> Node {
    Node {
        nodeid: id.to_string(),
        name: format!("{id}-name"),
        description: "Leopard Node".to_string(),
        last_active,
        coords: "1,2".to_string(),
        location: location.to_string(),
        provider: provider.to_string(),
        jobs: "None".to_string(),
        scavenger_mode_active: false,
        public_ip: String::new(),
    }
}

fn job(id: &str, nodeid: &str, userid: &str, server: Option<&str>) -> Job {
    let y = future_year();
    Job {
        id: id.to_string(),
        nodeid: nodeid.to_string(),
        userid: userid.to_string(),
        kind: JobKind::Cron,
        params: JobParams {
            mode: "docker".into(),
            deploy: "d".into(),
            execute: "e".into(),
            finish: String::new(),
        },
        schedule: CronSchedule::parse("*/10 * * * *"),
        start_date: format!("{y}-01-01T00:00:00"),
        end_date: format!("{y}-02-01T00:00:00"),
        length_secs: 60,
        overhead: true,
        server: server.map(str::to_string),
        trigger: None,
        config: Some("cfg".into()),
        expire_at: Some(now_ms() + Duration::days(365)),
    }
}

fn run(id: &str, jobid: &str, nodeid: &str, userid: &str, start: i64) -> Run {
    Run {
        runid: id.to_string(),
        jobid: jobid.to_string(),
        nodeid: nodeid.to_string(),
        userid: userid.to_string(),
        start_time: t(start),
        end_time: t(start + 60),
        last_updated: t(start + 61),
        blob_url: format!("https://blob/{id}"),
        status: "complete".to_string(),
        status_message: "ok".to_string(),
    }
}

/// Now, truncated to milliseconds (MongoDB's date precision).
fn now_ms() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(Utc::now().timestamp_millis())
        .single()
        .expect("valid")
}

fn task(id: &str, nodeid: &str, ttl: i64) -> Task {
    let now = now_ms();
    Task {
        taskid: id.to_string(),
        runid: "r1".to_string(),
        jobid: "j1".to_string(),
        nodeid: nodeid.to_string(),
        task_type: 1,
        status: 1,
        ttl_secs: ttl,
        expire_at: now + Duration::seconds(ttl),
    }
}

// ---- behaviours ----------------------------------------------------------------------------

async fn global_config(s: &dyn Store) {
    assert_eq!(s.get_config().await.expect("get"), None);
    let blob = BlobConfig {
        connection_string: "cs".into(),
        container: "c".into(),
        artifact_path: "p".into(),
    };
    let with_ds = GlobalConfig {
        datastore: Some(DatastoreConfig {
            blob: Some(blob.clone()),
        }),
        weather: None,
    };
    s.update_config(&with_ds).await.expect("update");
    assert_eq!(s.get_config().await.expect("get"), Some(with_ds.clone()));

    // A second update replaces only the sections it carries.
    let weather = GlobalConfig {
        datastore: None,
        weather: Some(WeatherConfig { apikey: "k".into() }),
    };
    s.update_config(&weather).await.expect("update");
    let got = s.get_config().await.expect("get").expect("present");
    assert_eq!(got.datastore, with_ds.datastore);
    assert_eq!(got.weather, weather.weather);

    let new_blob = GlobalConfig {
        datastore: Some(DatastoreConfig {
            blob: Some(BlobConfig {
                container: "c2".into(),
                ..blob
            }),
        }),
        weather: None,
    };
    s.update_config(&new_blob).await.expect("update");
    let got = s.get_config().await.expect("get").expect("present");
    assert_eq!(got.datastore, new_blob.datastore);
    assert_eq!(got.weather, weather.weather);
}

async fn users(s: &dyn Store) {
    let alice = user("alice", Role::User);
    assert!(s.add_user(&alice).await.expect("add"));
    assert!(!s.add_user(&user("alice", Role::Admin)).await.expect("dup"));
    assert_eq!(s.get_user("alice").await.expect("get"), Some(alice.clone()));
    assert_eq!(s.get_user("ALICE").await.expect("get"), None);
    assert_eq!(s.get_user("").await.expect("get"), None);

    assert!(s
        .modify_user("alice", "Alice B", Role::UserPriv, "t2")
        .await
        .expect("modify"));
    let got = s.get_user("alice").await.expect("get").expect("exists");
    assert_eq!(got.name, "Alice B");
    assert_eq!(got.role, Role::UserPriv);
    assert_eq!(got.team, "t2");
    assert_eq!(got.static_access_token, "alice-static", "tokens are kept");
    assert!(!s
        .modify_user("nobody", "n", Role::User, "t")
        .await
        .expect("modify"));

    let mut admin = user("admin", Role::Admin);
    s.put_user(&admin).await.expect("put");
    admin.static_access_token = "rotated".into();
    admin.access_token = "rotated".into();
    s.put_user(&admin).await.expect("put again");
    assert_eq!(s.get_user("admin").await.expect("get"), Some(admin.clone()));
    // Every user, ordered by id (token audit).
    let got = s.list_users().await.expect("list");
    assert_eq!(
        got.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["admin", "alice"]
    );
    assert_eq!(got[0], admin);

    assert!(s.delete_user("alice").await.expect("delete"));
    assert_eq!(s.list_users().await.expect("list").len(), 1);
    assert!(!s.delete_user("alice").await.expect("delete again"));
    assert_eq!(s.get_user("alice").await.expect("get"), None);
}

async fn concurrent_registration_has_one_winner(s: Arc<dyn Store>) {
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut u = user("race", Role::User);
            u.name = format!("racer {i}");
            s.add_user(&u).await.expect("add")
        }));
    }
    let mut winners = 0;
    for h in handles {
        if h.await.expect("join") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn nodes(s: &dyn Store) {
    let n1 = node("n1", "delhi", "starlink", t(0));
    let n2 = node("n2", "delhi", "oneweb", t(1000));
    let n3 = node("n3", "pune", "starlink", t(2000));
    for n in [&n1, &n2, &n3] {
        assert!(s.register_node(n).await.expect("register"));
    }
    assert!(!s.register_node(&n1).await.expect("dup"));
    assert_eq!(s.get_node("n1").await.expect("get"), Some(n1.clone()));
    assert_eq!(s.get_node("nx").await.expect("get"), None);

    let ids = |v: Vec<Node>| v.into_iter().map(|n| n.nodeid).collect::<Vec<_>>();
    let all = s.get_nodes(&NodeFilter::default()).await.expect("all");
    assert_eq!(ids(all), ["n1", "n2", "n3"]);
    let f = NodeFilter {
        location: Some("delhi".into()),
        ..Default::default()
    };
    assert_eq!(ids(s.get_nodes(&f).await.expect("loc")), ["n1", "n2"]);
    let f = NodeFilter {
        location: Some("delhi".into()),
        provider: Some("starlink".into()),
        ..Default::default()
    };
    assert_eq!(ids(s.get_nodes(&f).await.expect("loc+prov")), ["n1"]);
    let f = NodeFilter {
        name: Some("n3-name".into()),
        ..Default::default()
    };
    assert_eq!(ids(s.get_nodes(&f).await.expect("name")), ["n3"]);
    let f = NodeFilter {
        nodeid: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(s.get_nodes(&f).await.expect("empty=all").len(), 3);
    let f = NodeFilter {
        active_since: Some(t(1000)),
        ..Default::default()
    };
    assert_eq!(ids(s.get_nodes(&f).await.expect("active")), ["n2", "n3"]);

    assert!(s.mark_node("n1", t(5000)).await.expect("mark"));
    assert!(!s.mark_node("nx", t(5000)).await.expect("mark missing"));
    let got = s.get_node("n1").await.expect("get").expect("exists");
    assert_eq!(got.last_active, t(5000));

    let upd = NodeUpdate {
        public_ip: Some("1.2.3.4".into()),
        coords: Some("9,9".into()),
        ..Default::default()
    };
    assert!(s.update_node("n2", &upd).await.expect("update"));
    let got = s.get_node("n2").await.expect("get").expect("exists");
    assert_eq!(got.public_ip, "1.2.3.4");
    assert_eq!(got.coords, "9,9");
    assert_eq!(got.location, "delhi", "untouched fields are kept");
    assert!(!s.update_node("nx", &upd).await.expect("update missing"));
    assert!(s
        .update_node("n2", &NodeUpdate::default())
        .await
        .expect("empty update of existing node"));

    assert_eq!(
        s.get_scavenger_status("n3").await.expect("get"),
        Some(false)
    );
    assert!(s.set_scavenger_status("n3", true).await.expect("set"));
    assert_eq!(s.get_scavenger_status("n3").await.expect("get"), Some(true));
    assert!(!s
        .set_scavenger_status("nx", true)
        .await
        .expect("set missing"));
    assert_eq!(
        s.get_scavenger_status("nx").await.expect("get missing"),
        None
    );

    assert!(s.delete_node("n3").await.expect("delete"));
    assert!(!s.delete_node("n3").await.expect("delete again"));
    assert_eq!(
        s.get_nodes(&NodeFilter::default())
            .await
            .expect("all")
            .len(),
        2
    );
}

async fn jobs(s: &dyn Store) {
    let y = future_year();
    let j1 = job("j1", "n1", "alice", None);
    let j2 = job("j2", "n2", "alice", Some("n1"));
    let mut j3 = job("j3", "n1", "bob", None);
    j3.kind = JobKind::Atq;
    j3.schedule = None;
    j3.server = None;
    j3.config = None;
    for j in [&j1, &j2, &j3] {
        assert!(s.add_job(j).await.expect("add"));
    }
    assert!(!s.add_job(&j1).await.expect("dup"));
    assert_eq!(s.get_job("j1").await.expect("get"), Some(j1.clone()));
    assert_eq!(s.get_job("j3").await.expect("get"), Some(j3.clone()));
    assert_eq!(s.get_job("jx").await.expect("get"), None);

    let ids = |v: Vec<Job>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.get_jobs_by_userid(Some("alice")).await.expect("by user")),
        ["j1", "j2"]
    );
    assert_eq!(
        ids(s.get_jobs_by_userid(None).await.expect("all")),
        ["j1", "j2", "j3"]
    );
    // nodeid OR server.
    assert_eq!(
        ids(s.get_jobs_by_nodeid("n1").await.expect("by node")),
        ["j1", "j2", "j3"]
    );
    assert_eq!(
        ids(s.get_jobs_by_nodeid("n2").await.expect("by node")),
        ["j2"]
    );

    assert!(s
        .update_job_dates(
            "j3",
            &format!("{y}-01-05 10:00:00"),
            &format!("{y}-01-05 10:00:00")
        )
        .await
        .expect("dates"));
    let got = s.get_job("j3").await.expect("get").expect("exists");
    assert_eq!(got.start_date, format!("{y}-01-05 10:00:00"));
    assert!(!s
        .update_job_dates("jx", "a", "b")
        .await
        .expect("dates missing"));

    let mut j1b = j1.clone();
    j1b.length_secs = 120;
    j1b.trigger = Some("x > 1".into());
    assert!(s.replace_job(&j1b).await.expect("replace"));
    assert_eq!(s.get_job("j1").await.expect("get"), Some(j1b));
    assert!(!s
        .replace_job(&job("jx", "n1", "a", None))
        .await
        .expect("replace missing"));

    // delete_jobs_by_nodeid matches nodeid only, not server.
    assert_eq!(s.delete_jobs_by_nodeid("n1").await.expect("delete"), 2);
    assert_eq!(ids(s.get_jobs_by_nodeid("n1").await.expect("left")), ["j2"]);
    assert!(s.delete_job("j2").await.expect("delete one"));
    assert!(!s.delete_job("j2").await.expect("delete again"));
}

async fn expired_jobs_are_invisible(s: &dyn Store) {
    let mut old = job("old", "n1", "alice", None);
    old.expire_at = Some(Utc::now() - Duration::seconds(5));
    s.add_job(&old).await.expect("add expired");
    assert_eq!(s.get_job("old").await.expect("get"), None);
    assert!(s
        .get_jobs_by_nodeid("n1")
        .await
        .expect("by node")
        .is_empty());
    assert!(s
        .get_jobs_by_userid(Some("alice"))
        .await
        .expect("by user")
        .is_empty());
    // The id of an expired job is free again.
    let fresh = job("old", "n1", "alice", None);
    assert!(s.add_job(&fresh).await.expect("reuse id"));
    assert_eq!(s.get_job("old").await.expect("get"), Some(fresh));
}

async fn runs(s: &dyn Store) {
    // Inserted out of start_time order: lists come back as inserted (the original never
    // sorts, MongoDB returns natural order).
    let runs = [
        run("r1", "j1", "n1", "alice", 0),
        run("r2", "j1", "n1", "alice", 100),
        run("r4", "j1", "n2", "alice", 300),
        run("r3", "j2", "n2", "bob", 200),
    ];
    for r in &runs {
        s.update_run(r).await.expect("insert");
    }
    let ids = |v: Vec<Run>| v.into_iter().map(|r| r.runid).collect::<Vec<_>>();
    let all = s.get_runs(&RunFilter::default()).await.expect("all");
    assert_eq!(ids(all), ["r1", "r2", "r4", "r3"], "insertion order");

    let f = RunFilter {
        jobid: Some("j1".into()),
        ..Default::default()
    };
    assert_eq!(ids(s.get_runs(&f).await.expect("job")), ["r1", "r2", "r4"]);
    let f = RunFilter {
        jobid: Some("j1".into()),
        nodeid: Some("n1".into()),
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(ids(s.get_runs(&f).await.expect("job+node+limit")), ["r1"]);
    let f = RunFilter {
        userid: Some("bob".into()),
        ..Default::default()
    };
    assert_eq!(ids(s.get_runs(&f).await.expect("user")), ["r3"]);
    let f = RunFilter {
        start_from: Some(t(100)),
        start_to: Some(t(200)),
        ..Default::default()
    };
    assert_eq!(ids(s.get_runs(&f).await.expect("range")), ["r2", "r3"]);
    let f = RunFilter {
        runid: Some("r1".into()),
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(s.get_runs(&f).await.expect("runid"), vec![runs[0].clone()]);

    // Upsert by runid replaces the record.
    let mut r1 = runs[0].clone();
    r1.status = "failed".into();
    r1.last_updated = t(999);
    s.update_run(&r1).await.expect("upsert");
    let f = RunFilter {
        runid: Some("r1".into()),
        ..Default::default()
    };
    assert_eq!(s.get_runs(&f).await.expect("runid"), vec![r1]);
    let all = s.get_runs(&RunFilter::default()).await.expect("all");
    assert_eq!(
        ids(all),
        ["r1", "r2", "r4", "r3"],
        "an updated run keeps its place"
    );
}

/// The bulk path writes the same records as the single-record methods and skips taken ids.
async fn bulk_load(s: &dyn Store) {
    let j0 = job("j0", "n1", "alice", None);
    assert!(s.add_job(&j0).await.expect("add"));
    let jobs: Vec<Job> = (0..5)
        .map(|i| job(&format!("j{i}"), "n1", "alice", Some("srv")))
        .collect();
    assert_eq!(
        s.insert_jobs(&jobs).await.expect("insert_jobs"),
        4,
        "j0 taken"
    );
    assert_eq!(s.insert_jobs(&[]).await.expect("empty"), 0);
    assert_eq!(
        s.get_job("j0").await.expect("get"),
        Some(j0),
        "existing job unchanged"
    );
    assert_eq!(s.get_job("j3").await.expect("get"), Some(jobs[3].clone()));
    assert_eq!(
        s.get_jobs_by_nodeid("srv").await.expect("by server").len(),
        4
    );

    s.update_run(&run("r0", "j0", "n1", "alice", 0))
        .await
        .expect("update_run");
    let runs: Vec<Run> = (0..300)
        .map(|i| run(&format!("r{i}"), &format!("j{}", i % 3), "n1", "alice", i))
        .collect();
    assert_eq!(
        s.insert_runs(&runs).await.expect("insert_runs"),
        299,
        "r0 taken"
    );
    assert_eq!(s.insert_runs(&runs[..10]).await.expect("again"), 0);
    let f = RunFilter {
        jobid: Some("j1".into()),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(
        s.get_runs(&f).await.expect("by job"),
        vec![runs[1].clone(), runs[4].clone()],
        "insertion order, as update_run's records"
    );
    assert_eq!(
        s.get_runs(&RunFilter::default()).await.expect("all").len(),
        300
    );
}

async fn tasks(s: &dyn Store) {
    let a = task("t1", "n1", 300);
    let mut b = task("t2", "n2", 300);
    b.task_type = 2;
    assert!(s.schedule_task(&a).await.expect("a"));
    assert!(s.schedule_task(&b).await.expect("b"));
    assert!(!s.schedule_task(&a).await.expect("dup"));

    let ids = |v: Vec<Task>| v.into_iter().map(|t| t.taskid).collect::<Vec<_>>();
    assert_eq!(
        ids(s.get_tasks(&TaskFilter::default()).await.expect("all")),
        ["t1", "t2"]
    );
    let f = TaskFilter {
        nodeid: Some("n2".into()),
        ..Default::default()
    };
    assert_eq!(s.get_tasks(&f).await.expect("node"), vec![b.clone()]);
    let f = TaskFilter {
        task_type: Some(1),
        ..Default::default()
    };
    assert_eq!(ids(s.get_tasks(&f).await.expect("type")), ["t1"]);

    assert!(s.update_task("t1", 2).await.expect("update"));
    assert!(!s.update_task("tx", 2).await.expect("update missing"));
    let f = TaskFilter {
        status: Some(2),
        ..Default::default()
    };
    assert_eq!(ids(s.get_tasks(&f).await.expect("status")), ["t1"]);
}

async fn expired_tasks_are_invisible_and_purged(s: &dyn Store) {
    let mut gone = task("gone", "n1", 1);
    gone.expire_at = Utc::now() - Duration::seconds(2);
    assert!(s.schedule_task(&gone).await.expect("insert expired"));
    let live = task("live", "n1", 300);
    assert!(s.schedule_task(&live).await.expect("insert live"));

    let f = TaskFilter {
        nodeid: Some("n1".into()),
        ..Default::default()
    };
    assert_eq!(s.get_tasks(&f).await.expect("get"), vec![live.clone()]);
    assert!(!s.update_task("gone", 2).await.expect("update expired"));

    s.purge_expired(Utc::now()).await.expect("purge");
    assert_eq!(s.get_tasks(&f).await.expect("get"), vec![live]);
    // The id of an expired task can be scheduled again.
    assert!(s
        .schedule_task(&task("gone", "n1", 300))
        .await
        .expect("reuse id"));
}

/// Jobs and tasks expire when the store's clock passes their `expire_at` (a job's end date):
/// the test clock moves two hours on, no sleeping, and every read, the booking lists (kept in
/// memory by the embedded store) and the id checks of new inserts follow it.
async fn records_expire_by_the_store_clock(s: &dyn Store, clock: &TestClock) {
    let soon = clock.now() + Duration::hours(1);
    let mut j = job("soon", "wn", "carol", None);
    j.expire_at = Some(soon);
    assert!(s.add_job(&j).await.expect("add job"));
    let mut t = task("tsoon", "wn", 3600);
    t.expire_at = soon;
    assert!(s.schedule_task(&t).await.expect("add task"));
    let f = TaskFilter {
        nodeid: Some("wn".into()),
        ..Default::default()
    };
    assert_eq!(s.get_job("soon").await.expect("get"), Some(j.clone()));
    assert_eq!(s.get_tasks(&f).await.expect("tasks"), vec![t.clone()]);
    assert_eq!(book_seen(s, "b1").await, ["soon"]);

    clock.advance(Duration::hours(2));
    assert_eq!(s.get_job("soon").await.expect("get"), None);
    let left = s.get_jobs_by_nodeid("wn").await.expect("by node");
    assert_eq!(left.into_iter().map(|j| j.id).collect::<Vec<_>>(), ["b1"]);
    assert!(s
        .get_jobs_by_userid(Some("carol"))
        .await
        .expect("by user")
        .is_empty());
    assert_eq!(book_seen(s, "b2").await, ["b1"]);
    assert!(s.get_tasks(&f).await.expect("tasks").is_empty());
    assert!(!s.update_task("tsoon", 2).await.expect("update expired"));
    // The ids are free again.
    j.expire_at = Some(clock.now() + Duration::hours(1));
    assert!(s.add_job(&j).await.expect("reuse job id"));
    t.expire_at = clock.now() + Duration::hours(1);
    assert!(s.schedule_task(&t).await.expect("reuse task id"));
}

/// Every list comes back in insertion order, not sorted by id (issue 14 item 5).
async fn lists_keep_insertion_order(s: &dyn Store) {
    let y = future_year();
    for id in ["n3", "n1", "n2"] {
        assert!(s
            .register_node(&node(id, "loc", "prov", t(0)))
            .await
            .expect("node"));
    }
    let nodes: Vec<String> = s
        .get_nodes(&NodeFilter::default())
        .await
        .expect("nodes")
        .into_iter()
        .map(|n| n.nodeid)
        .collect();
    assert_eq!(nodes, ["n3", "n1", "n2"]);

    // A job on the node and one where it is only the server, interleaved by insertion.
    for (id, nodeid, server) in [
        ("jc", "n1", None),
        ("ja", "n2", Some("n1")),
        ("jb", "n1", None),
    ] {
        assert!(s
            .add_job(&job(id, nodeid, "alice", server))
            .await
            .expect("job"));
    }
    let ids = |v: Vec<Job>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.get_jobs_by_nodeid("n1").await.expect("by node")),
        ["jc", "ja", "jb"]
    );
    assert_eq!(
        ids(s.get_jobs_by_userid(Some("alice")).await.expect("by user")),
        ["jc", "ja", "jb"]
    );
    assert_eq!(
        ids(s.get_jobs_by_userid(None).await.expect("all")),
        ["jc", "ja", "jb"]
    );
    // Moving a job keeps its place.
    assert!(s
        .update_job_dates(
            "jc",
            &format!("{y}-01-05 10:00:00"),
            &format!("{y}-01-05 11:00:00")
        )
        .await
        .expect("move"));
    assert_eq!(
        ids(s.get_jobs_by_nodeid("n1").await.expect("by node")),
        ["jc", "ja", "jb"]
    );

    for id in ["t9", "t1", "t5"] {
        assert!(s.schedule_task(&task(id, "n1", 300)).await.expect("task"));
    }
    let tasks: Vec<String> = s
        .get_tasks(&TaskFilter::default())
        .await
        .expect("tasks")
        .into_iter()
        .map(|t| t.taskid)
        .collect();
    assert_eq!(tasks, ["t9", "t1", "t5"]);
}

/// Times are kept at MongoDB's millisecond precision in every store (issue 14 item 10).
async fn times_have_millisecond_precision(s: &dyn Store) {
    let at = |micros: i64| {
        Utc.timestamp_opt(1_546_300_800, 0).single().expect("valid")
            + Duration::microseconds(micros)
    };
    let mut r = run("rt", "j", "n", "u", 0);
    r.start_time = at(123); // 2019-01-01 00:00:00.000123
    r.end_time = at(32_910_943);
    r.last_updated = at(-1); // just before the second: cut toward the past
    s.update_run(&r).await.expect("run");
    let got = s.get_runs(&RunFilter::default()).await.expect("runs");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].start_time, at(0));
    assert_eq!(got[0].end_time, at(32_910_000));
    assert_eq!(got[0].last_updated, at(-1000));

    let mut n = node("nt", "l", "p", at(999));
    assert!(s.register_node(&n).await.expect("node"));
    assert!(s.mark_node("nt", at(1_500)).await.expect("mark"));
    n.last_active = at(1_000);
    assert_eq!(s.get_node("nt").await.expect("get"), Some(n));
}

/// Books job `id` on node `wn`; the ids its decision saw.
async fn book_seen(s: &dyn Store, id: &str) -> Vec<String> {
    let j = job(id, "wn", "alice", None);
    let mut seen = Vec::new();
    let r = s
        .book(&["wn".to_string()], &mut |lists| {
            seen = lists
                .iter()
                .copied()
                .flatten()
                .map(|j| j.id.clone())
                .collect();
            Some(BookingWrite::Insert(Box::new(j.clone())))
        })
        .await
        .expect("book");
    assert_eq!(r, Booked::Written);
    seen
}

/// A booking decides on what every earlier write left, bookings or not (the embedded store
/// keeps the lists of booked nodes in memory: each other write must reach them).
async fn booking_sees_every_other_write(s: &dyn Store) {
    let y = future_year();
    let y1 = y + 1;
    let nodes = vec!["wn".to_string()];
    let ids = |lists: &[&[Job]]| -> Vec<String> {
        lists
            .iter()
            .copied()
            .flatten()
            .map(|j| j.id.clone())
            .collect()
    };
    assert!(book_seen(s, "w1").await.is_empty());
    assert_eq!(book_seen(s, "w2").await, ["w1"]);
    assert!(s.add_job(&job("w3", "wn", "bob", None)).await.expect("add"));
    assert!(s
        .add_job(&job("w4", "other", "bob", Some("wn")))
        .await
        .expect("add"));
    assert_eq!(book_seen(s, "w5").await, ["w1", "w2", "w3", "w4"]);
    assert!(s.delete_job("w1").await.expect("delete"));
    assert!(s.delete_job_of("w3", "bob").await.expect("delete of"));
    assert!(s
        .update_job_dates(
            "w2",
            &format!("{y1}-01-01 00:00:00"),
            &format!("{y1}-01-01 01:00:00")
        )
        .await
        .expect("dates"));
    let mut moved = job("w4", "elsewhere", "bob", None);
    moved.overhead = true;
    assert!(s.replace_job(&moved).await.expect("replace"));
    let mut dates = Vec::new();
    let r = s
        .book(&nodes, &mut |lists| {
            dates = lists
                .iter()
                .copied()
                .flatten()
                .map(|j| (j.id.clone(), j.start_date.clone()))
                .collect();
            None
        })
        .await
        .expect("book");
    assert_eq!(r, Booked::Refused);
    assert_eq!(
        dates,
        [
            ("w2".to_string(), format!("{y1}-01-01 00:00:00")),
            ("w5".to_string(), job("w5", "wn", "alice", None).start_date)
        ]
    );
    assert_eq!(
        s.insert_jobs(&[job("w6", "wn", "carol", None)])
            .await
            .expect("bulk"),
        1
    );
    assert_eq!(s.delete_jobs_by_nodeid("wn").await.expect("by node"), 3);
    let mut left = vec!["x".to_string()];
    s.book(&nodes, &mut |lists| {
        left = ids(lists);
        None
    })
    .await
    .expect("book");
    assert!(left.is_empty(), "{left:?}");
}

/// A node's identity: claimed when free or NODE (the first token kept, the new one second),
/// refused over another role; deleted only when NODE.
async fn node_identity(s: &dyn Store) {
    let mut n = user("nid", Role::Node);
    n.access_token = String::new();
    assert!(s.claim_node_user(&n).await.expect("claim free"));
    assert_eq!(s.get_user("nid").await.expect("get"), Some(n.clone()));
    let mut again = n.clone();
    again.static_access_token = "second".into();
    again.name = "other name".into();
    assert!(s.claim_node_user(&again).await.expect("claim node"));
    let mut want = n.clone();
    want.access_token = "second".into();
    assert_eq!(s.get_user("nid").await.expect("get"), Some(want));
    let person = user("pid", Role::User);
    assert!(s.add_user(&person).await.expect("person"));
    let mut over = n.clone();
    over.id = "pid".into();
    assert!(!s.claim_node_user(&over).await.expect("claim person"));
    assert_eq!(s.get_user("pid").await.expect("get"), Some(person.clone()));
    assert!(!s.delete_node_user("pid").await.expect("delete person"));
    assert_eq!(s.get_user("pid").await.expect("get"), Some(person));
    assert!(s.delete_node_user("nid").await.expect("delete node"));
    assert_eq!(s.get_user("nid").await.expect("get"), None);
    assert!(!s.delete_node_user("nid").await.expect("gone"));
}

/// `book` applies its decision's write and reports refusals and taken ids.
async fn booking_outcomes(s: &dyn Store) {
    let y = future_year();
    let nodes = vec!["bn".to_string(), "bs".to_string()];
    let j = job("bj", "bn", "alice", Some("bs"));
    let mut seen = Vec::new();
    let r = s
        .book(&nodes, &mut |lists| {
            seen = lists.iter().map(|l| l.len()).collect();
            Some(BookingWrite::Insert(Box::new(j.clone())))
        })
        .await
        .expect("book");
    assert_eq!(r, Booked::Written);
    assert_eq!(seen, [0, 0]);
    let r = s
        .book(&nodes, &mut |lists| {
            seen = lists.iter().map(|l| l.len()).collect();
            Some(BookingWrite::Insert(Box::new(j.clone())))
        })
        .await
        .expect("book");
    assert_eq!(r, Booked::IdTaken);
    assert_eq!(seen, [1, 1], "the job is seen from its node and its server");
    let r = s.book(&nodes, &mut |_| None).await.expect("refuse");
    assert_eq!(r, Booked::Refused);
    let set = |was: &str| BookingWrite::SetDates {
        id: "bj".into(),
        start_date: format!("{y}-02-01 00:00:00"),
        end_date: format!("{y}-02-01 01:00:00"),
        was_start: was.into(),
        was_end: j.end_date.clone(),
    };
    let r = s
        .book(&nodes, &mut |_| Some(set("not the stored start")))
        .await
        .expect("stale move");
    assert_eq!(
        r,
        Booked::Gone,
        "a move from dates the job no longer has is refused"
    );
    let r = s
        .book(&nodes, &mut |_| Some(set(&j.start_date)))
        .await
        .expect("move");
    assert_eq!(r, Booked::Written);
    let moved = s.get_job("bj").await.expect("get").expect("job");
    assert_eq!(moved.start_date, format!("{y}-02-01 00:00:00"));
    // Deleting someone else's job by id is refused; the owner's delete works.
    assert!(!s.delete_job_of("bj", "mallory").await.expect("not owner"));
    assert!(s.delete_job_of("bj", "alice").await.expect("owner"));
    assert_eq!(s.get_job("bj").await.expect("get"), None);
}

async fn ping(s: &dyn Store) {
    s.ping().await.expect("ping");
}

// ---- instantiation ------------------------------------------------------------------------

macro_rules! suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(f) = $fixture(clock::system()).await else {
                            return;
                        };
                        super::$name(f.store.as_ref()).await;
                    }
                };
            }

            case!(global_config);
            case!(users);
            case!(nodes);
            case!(jobs);
            case!(expired_jobs_are_invisible);
            case!(runs);
            case!(bulk_load);
            case!(tasks);
            case!(expired_tasks_are_invisible_and_purged);
            case!(ping);
            case!(lists_keep_insertion_order);
            case!(times_have_millisecond_precision);
            case!(booking_outcomes);
            case!(booking_sees_every_other_write);
            case!(node_identity);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn records_expire_by_the_store_clock() {
                let clock = TestClock::at(now_ms());
                let Some(f) = $fixture(clock.clone()).await else {
                    return;
                };
                super::records_expire_by_the_store_clock(f.store.as_ref(), &clock).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_registration_has_one_winner() {
                let Some(f) = $fixture(clock::system()).await else {
                    return;
                };
                super::concurrent_registration_has_one_winner(f.store.clone()).await;
            }
        }
    };
}

suite!(embedded, embedded_fixture);
suite!(mongo, mongo_fixture);

/// Embedded only: data survives closing and reopening the database.
#[tokio::test]
async fn embedded_reopen_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = EmbeddedStore::open(dir.path()).expect("open");
        s.add_user(&user("keep", Role::Node)).await.expect("add");
        s.register_node(&node("keep", "l", "p", t(0)))
            .await
            .expect("node");
        s.update_run(&run("r", "j", "keep", "keep", 0))
            .await
            .expect("run");
    }
    let s = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(
        s.get_user("keep").await.expect("get"),
        Some(user("keep", Role::Node))
    );
    assert!(s.get_node("keep").await.expect("node").is_some());
    assert_eq!(
        s.get_runs(&RunFilter::default()).await.expect("runs").len(),
        1
    );
}
