//! The MongoDB backend shares its database with the Python orchestrator: documents the original
//! writes are served unchanged, and documents written here have the original's fields and BSON
//! types. Runs against `LEOTEST_TEST_MONGO_URI` (skipped when unset).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_test_support::future_year;
use std::time::Duration as StdDuration;

use leotest_test_support::mongo::TestMongo;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::TryStreamExt;
use leotest_orchestrator::store::mongo::MongoStore;
use leotest_orchestrator::store::*;
use mongodb::{Client, Database};

/// A fresh database on the test server (dropped with `guard`) and a raw handle on it.
struct TestDb {
    guard: TestMongo,
    db: Database,
}

impl TestDb {
    async fn new() -> Option<TestDb> {
        let guard = TestMongo::fresh("compat")?;
        let client = Client::with_uri_str(&guard.uri).await.expect("client");
        let db = client.database(&guard.name);
        Some(TestDb { guard, db })
    }

    async fn store(&self) -> MongoStore {
        MongoStore::connect(&self.guard.uri, &self.guard.name)
            .await
            .expect("connect")
    }

    fn coll(&self, name: &str) -> mongodb::Collection<Document> {
        self.db.collection(name)
    }

    /// The stored documents of a collection without `_id`, in `_id` order.
    async fn raw(&self, coll: &str, filter: Document) -> Vec<Document> {
        let docs: Vec<Document> = self
            .coll(coll)
            .find(filter)
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("collect");
        docs.into_iter()
            .map(|mut d| {
                d.remove("_id");
                d
            })
            .collect()
    }

    async fn one(&self, coll: &str, filter: Document) -> Document {
        let mut docs = self.raw(coll, filter).await;
        assert_eq!(docs.len(), 1, "exactly one document in {coll}");
        docs.remove(0)
    }
}

/// pymongo's encoding of a naive `datetime` (what `datetime.utcnow()` / dateutil produce).
fn py_date(s: &str) -> Bson {
    Bson::DateTime(bson::DateTime::from_chrono(utc(s)))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn keys(d: &Document) -> Vec<&str> {
    d.keys().map(String::as_str).collect()
}

fn type_of(d: &Document, field: &str) -> &'static str {
    match d.get(field) {
        Some(Bson::String(_)) => "string",
        Some(Bson::Int32(_)) => "int32",
        Some(Bson::Int64(_)) => "int64",
        Some(Bson::Double(_)) => "double",
        Some(Bson::Boolean(_)) => "bool",
        Some(Bson::DateTime(_)) => "date",
        Some(Bson::Document(_)) => "document",
        Some(Bson::Null) => "null",
        Some(_) => "other",
        None => "missing",
    }
}

/// Whether the server keeps BSON types the way MongoDB does when `$set` changes an existing
/// document (booleans, dates) and when an upsert copies an int32 from its filter. nx-27017
/// stores such values as integers / strings / int64, so those type checks are skipped there.
async fn server_keeps_types(t: &TestDb) -> bool {
    let probe = t.coll("type_probe");
    probe
        .insert_one(doc! { "k": 1, "b": false, "d": py_date("2020-01-01T00:00:00Z") })
        .await
        .expect("insert");
    probe
        .update_one(
            doc! { "k": 1 },
            doc! { "$set": { "b": true, "d": py_date("2021-01-01T00:00:00Z") } },
        )
        .await
        .expect("update");
    probe
        .update_one(doc! { "k": 2_i32 }, doc! { "$set": { "k": 2_i32 } })
        .upsert(true)
        .await
        .expect("upsert");
    let set = t.one("type_probe", doc! { "k": 1 }).await;
    let upserted = t.one("type_probe", doc! { "k": 2 }).await;
    probe.drop().await.expect("drop probe");
    let keeps = type_of(&set, "b") == "bool"
        && type_of(&set, "d") == "date"
        && type_of(&upserted, "k") == "int32";
    if !keeps {
        eprintln!("this server changes BSON types on $set/upsert: skipping those type checks");
    }
    keeps
}

/// Inserts documents exactly as the Python orchestrator's datastore.py produces them.
async fn insert_python_documents(t: &TestDb) {
    let y = future_year();
    let insert = |coll: &str, d: Document| {
        let c = t.coll(coll);
        async move {
            c.insert_one(d).await.expect("insert");
        }
    };
    // LeotestDatastoreMongo.__init__ bootstraps the admin; register_user / register_node add
    // users with only a static token.
    insert(
        "users",
        doc! {
            "_id": ObjectId::new(), "id": "admin", "name": "LEOScope Admin", "role": 0_i32,
            "team": "LeoScope MSR-India", "static_access_token": "leotest-access-token",
            "access_token": "leotest-access-token",
        },
    )
    .await;
    insert(
        "users",
        doc! {
            "_id": ObjectId::new(), "id": "node-1", "name": "Node One", "role": 2_i32,
            "team": "t", "static_access_token": "abc123", "access_token": "",
        },
    )
    .await;
    // register_node: LeotestNode(**MessageToDict(request)['node']).document() with defaults.
    insert(
        "nodes",
        doc! {
            "_id": ObjectId::new(), "nodeid": "node-1", "name": "Node One",
            "description": "Leopard Node", "last_active": py_date("2020-01-01T00:00:00Z"),
            "coords": "12.9,77.6", "location": "bangalore", "provider": "starlink",
            "jobs": "None", "scavenger_mode_active": false, "public_ip": "",
        },
    )
    .await;
    // update_node stores the request's last_active string as is.
    insert(
        "nodes",
        doc! {
            "_id": ObjectId::new(), "nodeid": "node-2", "name": "", "description": "Leopard Node",
            "last_active": "2024-03-01 10:00:00", "coords": "", "location": "delhi",
            "provider": "oneweb", "jobs": "None", "scavenger_mode_active": true,
            "public_ip": "10.0.0.2",
        },
    )
    .await;
    // schedule_job: LeotestJobCron / LeotestJobAtq.document(); params from MessageToDict
    // (empty strings omitted), server/trigger None when unset, config '' when unset.
    insert(
        "jobs",
        doc! {
            "_id": ObjectId::new(), "id": "job-cron", "nodeid": "node-1", "userid": "alice",
            "type": "cron",
            "params": { "mode": "docker", "deploy": "repository=hello-world;tag=latest",
                        "execute": "image=hello-world" },
            "schedule": { "minute": "*/5", "hour": "*", "day_of_month": "*", "month": "*",
                          "day_of_week": "*" },
            "start_date": format!("{y}-01-01T00:00:00"), "end_date": format!("{y}-02-01T00:00:00"),
            "length_secs": 60_i32, "overhead": true, "server": Bson::Null,
            "trigger": Bson::Null, "config": "", "expire_at": py_date(&format!("{y}-02-01T00:00:00Z")),
        },
    )
    .await;
    insert(
        "jobs",
        doc! {
            "_id": ObjectId::new(), "id": "job-atq", "nodeid": "node-2", "userid": "alice",
            "type": "atq",
            "params": { "mode": "docker", "deploy": "d", "execute": "e", "finish": "f" },
            "schedule": "", "start_date": format!("{y}-01-05 10:00:00"),
            "end_date": format!("{y}-01-05 10:05:00"), "length_secs": 300_i32, "overhead": false,
            "server": "node-1", "trigger": "rtt > 100", "config": "c: 1",
            "expire_at": py_date(&format!("{y}-01-05T10:05:00Z")),
        },
    )
    .await;
    // An expired job the TTL monitor has not removed yet.
    insert(
        "jobs",
        doc! {
            "_id": ObjectId::new(), "id": "job-old", "nodeid": "node-1", "userid": "alice",
            "type": "atq", "params": {}, "schedule": "", "start_date": "2020-01-01",
            "end_date": "2020-01-02", "length_secs": 60_i32, "overhead": true,
            "server": Bson::Null, "trigger": Bson::Null, "config": "",
            "expire_at": py_date("2020-01-02T00:00:00Z"),
        },
    )
    .await;
    // update_run: LeotestRun.document() upserted by runid.
    insert(
        "runs",
        doc! {
            "_id": ObjectId::new(), "runid": "run-1", "jobid": "job-cron", "nodeid": "node-1",
            "userid": "alice", "start_time": py_date("2024-03-01T10:00:00Z"),
            "end_time": py_date("2024-03-01T10:01:00Z"),
            "last_updated": py_date("2024-03-01T10:01:05Z"),
            "blob_url": "https://blob/run-1", "status": "complete", "status_message": "done",
        },
    )
    .await;
    // schedule_task: LeotestTask.document() with status 1 (TASK_SCHEDULED).
    let in_5_min = Utc::now() + Duration::minutes(5);
    insert(
        "tasks",
        doc! {
            "_id": ObjectId::new(), "taskid": "task-1", "runid": "run-1", "jobid": "job-cron",
            "nodeid": "node-1", "status": 1_i32, "task_type": 1_i32, "ttl_secs": 300_i32,
            "expire_at": Bson::DateTime(bson::DateTime::from_chrono(in_5_min)),
        },
    )
    .await;
    // update_config: MessageToDict(request.config) with "id": 0 added ($set, upsert).
    insert(
        "config",
        doc! {
            "_id": ObjectId::new(), "id": 0_i32,
            "datastore": { "blob": { "connectionString": "DefaultEndpoints...",
                                     "container": "leotest" } },
            "weather": { "apikey": "wk" },
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_database_written_by_the_python_orchestrator() {
    let y = future_year();
    let Some(t) = TestDb::new().await else { return };
    insert_python_documents(&t).await;
    let s = t.store().await;

    let admin = s.get_user("admin").await.expect("get").expect("admin");
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.name, "LEOScope Admin");
    assert_eq!(admin.static_access_token, "leotest-access-token");
    let n = s.get_user("node-1").await.expect("get").expect("node user");
    assert_eq!((n.role, n.access_token.as_str()), (Role::Node, ""));

    let nodes = s.get_nodes(&NodeFilter::default()).await.expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].nodeid, "node-1");
    assert_eq!(nodes[0].last_active, utc("2020-01-01T00:00:00Z"));
    assert_eq!(nodes[0].jobs, "None");
    assert_eq!(nodes[1].last_active, utc("2024-03-01T10:00:00Z"));
    assert!(nodes[1].scavenger_mode_active);
    assert_eq!(
        s.get_scavenger_status("node-2").await.expect("get"),
        Some(true)
    );

    let cron = s.get_job("job-cron").await.expect("get").expect("cron job");
    assert_eq!(cron.kind, JobKind::Cron);
    assert_eq!(
        cron.schedule.as_ref().map(CronSchedule::to_cron_string),
        Some("*/5 * * * *".to_string())
    );
    assert_eq!(cron.params.execute, "image=hello-world");
    assert_eq!(
        cron.params.finish, "",
        "MessageToDict leaves empty fields out"
    );
    assert_eq!((cron.length_secs, cron.overhead), (60, true));
    assert_eq!(
        (cron.server.as_deref(), cron.trigger.as_deref()),
        (None, None)
    );
    assert_eq!(cron.config.as_deref(), Some(""));
    assert_eq!(cron.expire_at, Some(utc(&format!("{y}-02-01T00:00:00Z"))));

    let atq = s.get_job("job-atq").await.expect("get").expect("atq job");
    assert_eq!((atq.kind, atq.schedule.clone()), (JobKind::Atq, None));
    assert_eq!(atq.server.as_deref(), Some("node-1"));
    assert_eq!(atq.trigger.as_deref(), Some("rtt > 100"));
    assert_eq!(atq.start_date, format!("{y}-01-05 10:00:00"));

    assert_eq!(s.get_job("job-old").await.expect("get"), None, "expired");
    let on_node1: Vec<String> = s
        .get_jobs_by_nodeid("node-1")
        .await
        .expect("by node")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        on_node1,
        ["job-cron", "job-atq"],
        "nodeid or server, in the order the original inserted them"
    );

    let runs = s.get_runs(&RunFilter::default()).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].start_time, utc("2024-03-01T10:00:00Z"));
    assert_eq!(runs[0].status, "complete");
    let window = RunFilter {
        start_from: Some(utc("2024-03-01T00:00:00Z")),
        start_to: Some(utc("2024-03-02T00:00:00Z")),
        ..Default::default()
    };
    assert_eq!(s.get_runs(&window).await.expect("range").len(), 1);

    let tasks = s.get_tasks(&TaskFilter::default()).await.expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0].task_type, tasks[0].status, tasks[0].ttl_secs),
        (1, 1, 300)
    );

    let config = s.get_config().await.expect("config").expect("present");
    let blob = config.datastore.and_then(|d| d.blob).expect("blob");
    assert_eq!(blob.container, "leotest");
    assert_eq!(
        blob.artifact_path, "",
        "MessageToDict leaves empty fields out"
    );
    assert_eq!(config.weather.map(|w| w.apikey).as_deref(), Some("wk"));

    // Connecting again to the same database (its indexes exist) is fine.
    t.store().await.ping().await.expect("second connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_documents_the_python_orchestrator_reads() {
    let y = future_year();
    let Some(t) = TestDb::new().await else { return };
    let s = t.store().await;
    let keeps_types = server_keeps_types(&t).await;

    s.put_user(&User {
        id: "admin".into(),
        name: "LEOScope Admin".into(),
        role: Role::Admin,
        team: "LeoScope MSR-India".into(),
        static_access_token: "tok".into(),
        access_token: "tok".into(),
    })
    .await
    .expect("put");
    let u = t.one("users", doc! { "id": "admin" }).await;
    assert_eq!(
        keys(&u),
        [
            "id",
            "name",
            "role",
            "team",
            "static_access_token",
            "access_token"
        ]
    );
    assert_eq!(u.get("role"), Some(&Bson::Int32(0)));
    s.modify_user("admin", "A", Role::UserPriv, "T")
        .await
        .expect("modify");
    let u = t.one("users", doc! { "id": "admin" }).await;
    assert_eq!(u.get("role"), Some(&Bson::Int32(3)));
    assert_eq!(u.get_str("static_access_token"), Ok("tok"));

    let node = Node {
        nodeid: "n1".into(),
        name: "N".into(),
        description: "Leopard Node".into(),
        last_active: utc("2020-01-01T00:00:00Z"),
        coords: "1,2".into(),
        location: "x".into(),
        provider: "starlink".into(),
        jobs: "None".into(),
        scavenger_mode_active: false,
        public_ip: "".into(),
    };
    assert!(s.register_node(&node).await.expect("register"));
    // LeotestNode(**document) in get_nodes: exactly its constructor's arguments.
    let node_keys = [
        "nodeid",
        "name",
        "description",
        "last_active",
        "coords",
        "location",
        "provider",
        "jobs",
        "scavenger_mode_active",
        "public_ip",
    ];
    let d = t.one("nodes", doc! { "nodeid": "n1" }).await;
    assert_eq!(keys(&d), node_keys);
    assert_eq!(type_of(&d, "last_active"), "date");
    assert_eq!(type_of(&d, "scavenger_mode_active"), "bool");
    s.mark_node("n1", Utc::now()).await.expect("mark");
    s.set_scavenger_status("n1", true).await.expect("scavenger");
    s.update_node(
        "n1",
        &NodeUpdate {
            public_ip: Some("1.1.1.1".into()),
            ..Default::default()
        },
    )
    .await
    .expect("update");
    let d = t.one("nodes", doc! { "nodeid": "n1" }).await;
    let mut got = keys(&d);
    got.sort_unstable();
    let mut want = node_keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "updates add no field");
    if keeps_types {
        assert_eq!(type_of(&d, "last_active"), "date");
        assert_eq!(d.get("scavenger_mode_active"), Some(&Bson::Boolean(true)));
    }

    let expire = Utc
        .with_ymd_and_hms(future_year(), 2, 1, 0, 0, 0)
        .single()
        .expect("date");
    let mut job = Job {
        id: "j-cron".into(),
        nodeid: "n1".into(),
        userid: "alice".into(),
        kind: JobKind::Cron,
        params: JobParams {
            mode: "docker".into(),
            deploy: "d".into(),
            execute: "e".into(),
            finish: "".into(),
        },
        schedule: CronSchedule::parse("0 */2 * * *"),
        start_date: format!("{y}-01-01T00:00:00"),
        end_date: format!("{y}-02-01T00:00:00"),
        length_secs: 60,
        overhead: true,
        server: None,
        trigger: None,
        config: Some("".into()),
        expire_at: Some(expire),
    };
    assert!(s.add_job(&job).await.expect("add cron"));
    job.id = "j-atq".into();
    job.kind = JobKind::Atq;
    job.schedule = None;
    job.server = Some("n2".into());
    assert!(s.add_job(&job).await.expect("add atq"));
    let job_keys = [
        "id",
        "nodeid",
        "userid",
        "type",
        "params",
        "schedule",
        "start_date",
        "end_date",
        "length_secs",
        "overhead",
        "server",
        "trigger",
        "config",
        "expire_at",
    ];
    let cron = t.one("jobs", doc! { "id": "j-cron" }).await;
    assert_eq!(keys(&cron), job_keys);
    assert_eq!(cron.get_str("type"), Ok("cron"));
    let sched = cron.get_document("schedule").expect("schedule document");
    assert_eq!(
        keys(sched),
        ["minute", "hour", "day_of_month", "month", "day_of_week"]
    );
    assert_eq!(sched.get_str("hour"), Ok("*/2"));
    assert_eq!(
        keys(cron.get_document("params").expect("params")),
        ["mode", "deploy", "execute", "finish"]
    );
    assert_eq!(cron.get("length_secs"), Some(&Bson::Int32(60)));
    assert_eq!(cron.get("server"), Some(&Bson::Null));
    assert_eq!(cron.get("trigger"), Some(&Bson::Null));
    assert_eq!(type_of(&cron, "expire_at"), "date");
    assert_eq!(type_of(&cron, "overhead"), "bool");
    let atq = t.one("jobs", doc! { "id": "j-atq" }).await;
    assert_eq!(atq.get_str("type"), Ok("atq"));
    assert_eq!(
        atq.get_str("schedule"),
        Ok(""),
        "the original's atq schedule"
    );
    assert_eq!(atq.get_str("server"), Ok("n2"));
    s.update_job_dates(
        "j-atq",
        &format!("{y}-01-03 00:00:00"),
        &format!("{y}-01-03 00:01:00"),
    )
    .await
    .expect("dates");
    let atq = t.one("jobs", doc! { "id": "j-atq" }).await;
    assert_eq!(
        atq.get_str("start_date"),
        Ok(format!("{y}-01-03 00:00:00").as_str())
    );

    let run = Run {
        runid: "r1".into(),
        jobid: "j-cron".into(),
        nodeid: "n1".into(),
        userid: "alice".into(),
        start_time: utc("2024-03-01T10:00:00Z"),
        end_time: utc("2024-03-01T10:01:00Z"),
        last_updated: utc("2024-03-01T10:01:05Z"),
        blob_url: "u".into(),
        status: "complete".into(),
        status_message: "".into(),
    };
    s.update_run(&run).await.expect("run");
    let r = t.one("runs", doc! { "runid": "r1" }).await;
    // LeotestRun(**document) in get_runs. Runs are `$set` upserts, ours as the original's: on
    // MongoDB 5.0+ both store the fields in name order, on nx-27017 in the order sent, so
    // only the set of fields is the original's contract here (inserts keep their order:
    // users, nodes, jobs, tasks above and below).
    let mut run_keys = keys(&r);
    run_keys.sort_unstable();
    let mut want = vec![
        "runid",
        "jobid",
        "nodeid",
        "userid",
        "start_time",
        "end_time",
        "last_updated",
        "blob_url",
        "status",
        "status_message",
    ];
    want.sort_unstable();
    assert_eq!(run_keys, want);
    for f in ["start_time", "end_time", "last_updated"] {
        assert_eq!(type_of(&r, f), "date", "{f}");
    }

    let task = Task {
        taskid: "t1".into(),
        runid: "r1".into(),
        jobid: "j-cron".into(),
        nodeid: "n1".into(),
        task_type: 1,
        status: 1,
        ttl_secs: 300,
        expire_at: Utc::now() + Duration::minutes(5),
    };
    assert!(s.schedule_task(&task).await.expect("task"));
    s.update_task("t1", 2).await.expect("update task");
    let d = t.one("tasks", doc! { "taskid": "t1" }).await;
    // get_tasks pops status and expire_at, then LeotestTask(**rest).
    assert_eq!(
        keys(&d),
        [
            "taskid",
            "runid",
            "jobid",
            "nodeid",
            "status",
            "task_type",
            "ttl_secs",
            "expire_at"
        ]
    );
    for f in ["status", "task_type", "ttl_secs"] {
        assert_eq!(type_of(&d, f), "int32", "{f}");
    }
    assert_eq!(d.get("status"), Some(&Bson::Int32(2)));
    assert_eq!(type_of(&d, "expire_at"), "date");

    s.update_config(&GlobalConfig {
        datastore: Some(DatastoreConfig {
            blob: Some(BlobConfig {
                connection_string: "cs".into(),
                container: "c".into(),
                artifact_path: "p".into(),
            }),
        }),
        weather: Some(WeatherConfig { apikey: "k".into() }),
    })
    .await
    .expect("config");
    let c = t.one("config", doc! {}).await;
    if keeps_types {
        assert_eq!(c.get("id"), Some(&Bson::Int32(0)));
    } else {
        assert!(matches!(c.get("id"), Some(Bson::Int32(0) | Bson::Int64(0))));
    }
    assert_eq!(
        c.get_document("datastore")
            .and_then(|d| d.get_document("blob"))
            .map(|b| keys(b).into_iter().map(str::to_string).collect::<Vec<_>>())
            .expect("datastore.blob"),
        ["connectionString", "container", "artifactPath"]
    );
    assert_eq!(
        c.get_document("weather").and_then(|w| w.get_str("apikey")),
        Ok("k")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_the_original_indexes() {
    let Some(t) = TestDb::new().await else { return };
    let _store = t.store().await;
    let indexes = |coll: &'static str| {
        let c = t.coll(coll);
        async move {
            c.list_indexes()
                .await
                .expect("list")
                .try_collect::<Vec<_>>()
                .await
                .expect("collect")
        }
    };
    for coll in ["jobs", "tasks"] {
        let ttl = indexes(coll)
            .await
            .into_iter()
            .find(|i| i.keys == doc! { "expire_at": 1 })
            .unwrap_or_else(|| panic!("{coll}: no expire_at index"));
        let expire_after = ttl.options.and_then(|o| o.expire_after);
        assert_eq!(expire_after, Some(StdDuration::from_secs(0)), "{coll} TTL");
    }
    // MongoDB keeps the original's names and key directions. nx-27017 renames indexes
    // (`idx_<coll>_<fields>`) and stores every key ascending, so there only the fields count.
    let compound = |all: Vec<mongodb::IndexModel>, name: &str, want: Document| {
        let by_name = all
            .iter()
            .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name));
        match by_name {
            Some(i) => assert_eq!(i.keys, want, "{name}"),
            None => {
                let fields = |d: &Document| d.keys().cloned().collect::<Vec<_>>();
                assert!(
                    all.iter().any(|i| fields(&i.keys) == fields(&want)),
                    "{name}: no index on {want}"
                );
                eprintln!("server renamed index {name}: checked its fields only");
            }
        }
    };
    compound(
        indexes("runs").await,
        "run_query_index",
        doc! { "jobid": 1, "nodeid": 1, "start_time": -1 },
    );
    compound(
        indexes("nodes").await,
        "node_query_index",
        doc! { "nodeid": 1, "last_active": -1 },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_new_connection() {
    let Some(t) = TestDb::new().await else { return };
    {
        let s = t.store().await;
        assert!(s
            .add_user(&User {
                id: "keep".into(),
                name: "K".into(),
                role: Role::User,
                team: "t".into(),
                static_access_token: "s".into(),
                access_token: "".into(),
            })
            .await
            .expect("add"));
    }
    let s = t.store().await;
    let u = s.get_user("keep").await.expect("get").expect("kept");
    assert_eq!((u.role, u.static_access_token.as_str()), (Role::User, "s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_without_expiry_is_stored_without_expire_at_and_never_expires() {
    let Some(t) = TestDb::new().await else { return };
    let s = t.store().await;
    let job = Job {
        id: "forever".into(),
        nodeid: "n1".into(),
        userid: "u".into(),
        kind: JobKind::Atq,
        params: JobParams::default(),
        schedule: None,
        start_date: "2024-01-01".into(),
        end_date: "".into(),
        length_secs: 10,
        overhead: true,
        server: None,
        trigger: None,
        config: None,
        expire_at: None,
    };
    assert!(s.add_job(&job).await.expect("add"));
    let d = t.one("jobs", doc! { "id": "forever" }).await;
    assert_eq!(type_of(&d, "expire_at"), "missing");
    s.purge_expired(Utc::now()).await.expect("purge");
    assert_eq!(s.get_job("forever").await.expect("get"), Some(job.clone()));
    assert_eq!(
        s.get_jobs_by_nodeid("n1").await.expect("by node"),
        vec![job]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_document_does_not_hide_the_others() {
    let Some(t) = TestDb::new().await else { return };
    let s = t.store().await;
    let good = Node {
        nodeid: "good".into(),
        name: "".into(),
        description: "".into(),
        last_active: utc("2024-01-01T00:00:00Z"),
        coords: "".into(),
        location: "".into(),
        provider: "".into(),
        jobs: "None".into(),
        scavenger_mode_active: false,
        public_ip: "".into(),
    };
    assert!(s.register_node(&good).await.expect("register"));
    t.coll("nodes")
        .insert_one(doc! { "nodeid": "bad", "last_active": 42_i32 })
        .await
        .expect("insert");
    let all = s.get_nodes(&NodeFilter::default()).await.expect("list");
    assert_eq!(all, vec![good]);
    assert!(matches!(
        s.get_node("bad").await,
        Err(StoreError::Corrupt(msg)) if msg.contains("last_active")
    ));
}
