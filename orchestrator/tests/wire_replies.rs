//! Replies byte for byte as the original's handlers build them (orchestrator.py result dicts
//! through the Python protobuf runtime), over TLS on the real binary: which fields are on the
//! wire (proto3 leaves a default scalar out: state SUCCESS, `exists=false`, role ADMIN), the
//! exact message strings, one table row per RPC outcome. Also: free-text sizes up to the
//! message limit, and the original's `get_scavenger_status` answer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_proto::unary::*;
use leotest_test_support::calls::*;
use leotest_test_support::future_year;
use leotest_test_support::{req, As, Creds, Orchestrator};
use prost::Message;

/// Expected encodings, written field by field so a row reads like the original's dict.
mod wire {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A varint field (enum, bool, int) that is present.
    pub(crate) fn int(field: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(field << 3), &mut out);
        varint(v, &mut out);
        out
    }

    /// A length-delimited field (string or sub-message) that is present.
    pub(crate) fn bytes(field: u32, v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(field << 3 | 2), &mut out);
        varint(v.len() as u64, &mut out);
        out.extend_from_slice(v);
        out
    }

    pub(crate) fn text(field: u32, v: &str) -> Vec<u8> {
        bytes(field, v.as_bytes())
    }

    /// `state = FAILED` (field 1) and `message` (field 2): the original's refusal shape.
    pub(crate) fn failed(message: &str) -> Vec<u8> {
        [int(1, 1), text(2, message)].concat()
    }

    /// `state = SUCCESS` (absent on the wire) and `message`.
    pub(crate) fn ok(message: &str) -> Vec<u8> {
        text(2, message)
    }
}

fn bytes_of<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

#[track_caller]
fn row<M: Message + std::fmt::Debug>(name: &str, got: &M, want: Vec<u8>) {
    assert_eq!(
        hex::encode(bytes_of(got)),
        hex::encode(want),
        "{name}: reply {got:?}"
    );
}

#[tokio::test]
async fn every_rpc_answers_the_originals_bytes() {
    let y = future_year();
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let admin = Creds::admin();
    let alice = user(&s, "alice", UserRoles::User).await;
    let privu = user(&s, "privu", UserRoles::UserPriv).await;
    let n1 = node(&s, "n1").await;

    // report_heartbeat: received=true only for the caller's own nodeid; false is absent.
    let hb = |nodeid: &str| MessageHeartbeat {
        nodeid: nodeid.into(),
    };
    let r = c.report_heartbeat(req(hb("n1"), &n1)).await.expect("hb");
    row("heartbeat own", r.get_ref(), wire::int(1, 1));
    let r = c.report_heartbeat(req(hb("n2"), &n1)).await.expect("hb");
    row("heartbeat other", r.get_ref(), vec![]);

    // update_global_config
    let cfg = MessageUpdateGlobalConfig {
        config: Some(Settings {
            datastore: Some(DatastoreSettings {
                blob: Some(BlobSettings {
                    connection_string: "cs".into(),
                    container: "c".into(),
                    artifact_path: "p".into(),
                }),
            }),
            weather: Some(WeatherApiSettings { apikey: "k".into() }),
        }),
    };
    let r = c
        .update_global_config(req(cfg.clone(), &admin))
        .await
        .expect("cfg");
    row(
        "update_global_config",
        r.get_ref(),
        wire::ok("config updated"),
    );
    let r = c.update_global_config(req(cfg, &alice)).await.expect("cfg");
    row(
        "update_global_config denied",
        r.get_ref(),
        wire::failed("permission denied: userid=alice and role=USER"),
    );
    // get_global_config: the node gets it whole (executor.py reads the connection string).
    let r = c
        .get_global_config(req(MessageGetGlobalConfig {}, &n1))
        .await
        .expect("cfg");
    let blob = [wire::text(1, "cs"), wire::text(2, "c"), wire::text(3, "p")].concat();
    let settings = [
        wire::bytes(1, &wire::bytes(1, &blob)),
        wire::bytes(2, &wire::text(1, "k")),
    ]
    .concat();
    row(
        "get_global_config node",
        r.get_ref(),
        wire::bytes(1, &settings),
    );
    // ... a user gets it without the credential values (an OK reply, no error status).
    let r = c
        .get_global_config(req(MessageGetGlobalConfig {}, &alice))
        .await
        .expect("cfg");
    let blob = [wire::text(2, "c"), wire::text(3, "p")].concat();
    let settings = [wire::bytes(1, &wire::bytes(1, &blob)), wire::bytes(2, &[])].concat();
    row(
        "get_global_config user",
        r.get_ref(),
        wire::bytes(1, &settings),
    );

    // register_user
    let ru = |id: &str| MessageRegisterUser {
        id: id.into(),
        name: "n".into(),
        role: UserRoles::User as i32,
        team: "t".into(),
    };
    let r = c.register_user(req(ru("alice"), &admin)).await.expect("ru");
    row(
        "register_user dup",
        r.get_ref(),
        wire::failed("user with given id already exists"),
    );
    let r = c.register_user(req(ru("x"), &alice)).await.expect("ru");
    row(
        "register_user denied",
        r.get_ref(),
        wire::failed("permission denied: userid=alice and role=USER"),
    );

    // get_user: unknown -> only role USER (1) is on the wire; ADMIN (0) is absent.
    let r = get_user(&mut c, &alice, "nobody").await;
    row("get_user unknown", &r, wire::int(4, 1));
    let r = get_user(&mut c, &alice, "admin").await;
    let want = [
        wire::int(1, 1),
        wire::text(2, "admin"),
        wire::text(3, "LEOScope Admin"),
        wire::text(5, "LeoScope MSR-India"),
    ]
    .concat();
    row("get_user admin", &r, want);

    // modify_user / delete_user
    let mu = |id: &str| MessageModifyUser {
        id: id.into(),
        name: "Alice".into(),
        role: UserRoles::User as i32,
        team: "t2".into(),
    };
    let r = c.modify_user(req(mu("alice"), &admin)).await.expect("mu");
    row("modify_user", r.get_ref(), wire::ok("user updated"));
    let r = c.modify_user(req(mu("ghost"), &admin)).await.expect("mu");
    row(
        "modify_user missing",
        r.get_ref(),
        wire::failed("user with given id does not exist"),
    );
    let du = |id: &str| MessageDeleteUser { userid: id.into() };
    let r = c.delete_user(req(du("ghost"), &admin)).await.expect("du");
    row(
        "delete_user missing",
        r.get_ref(),
        wire::failed("user with given id does not exist"),
    );

    // schedule_job
    let mut cron = atq_job("cj", "n1", "");
    cron.r#type = JobType::Cron as i32;
    cron.schedule = "0 * * * *".into();
    let r = schedule(&mut c, &alice, cron.clone()).await;
    row("schedule_job", &r, wire::ok("job successfully scheduled"));
    let r = schedule(&mut c, &alice, cron).await;
    row(
        "schedule_job dup",
        &r,
        wire::failed("job with the given id exists"),
    );
    let r = schedule(&mut c, &alice, atq_job("aj", "n1", "")).await;
    row(
        "schedule_job atq",
        &r,
        wire::ok("job successfully scheduled"),
    );

    // get_job_by_id / get_jobs_by_userid / get_jobs_by_nodeid: nothing found is all-absent.
    row(
        "get_job_by_id unknown",
        &get_job(&mut c, &admin, "zz").await,
        vec![],
    );
    // Found: type ATQ (1); no trigger, no server, overhead false, so those are absent.
    let params = [
        wire::text(1, "docker"),
        wire::text(2, "image=x"),
        wire::text(3, "run"),
    ]
    .concat();
    let want = [
        wire::int(1, 1),
        wire::text(2, "aj"),
        wire::text(3, "n1"),
        wire::int(4, 1),
        wire::bytes(5, &params),
        wire::text(7, "alice"),
        wire::text(9, "secret: config of aj\n"),
        wire::text(12, &format!("{y}-03-01 10:00:00")),
        wire::text(13, &format!("{y}-03-02 10:00:00")),
    ]
    .concat();
    row("get_job_by_id", &get_job(&mut c, &alice, "aj").await, want);
    let r = c
        .get_jobs_by_userid(req(
            MessageGetJobsByUserid {
                userid: "nobody".into(),
            },
            &admin,
        ))
        .await
        .expect("byuser");
    row("get_jobs_by_userid none", r.get_ref(), vec![]);
    let r = c
        .get_jobs_by_userid(req(
            MessageGetJobsByUserid {
                userid: "privu".into(),
            },
            &alice,
        ))
        .await
        .expect("byuser");
    row(
        "get_jobs_by_userid denied",
        r.get_ref(),
        wire::text(2, "permission denied: userid=alice and role=USER"),
    );
    let r = c
        .get_jobs_by_nodeid(req(
            MessageGetJobsByNodeid {
                nodeid: "nowhere".into(),
            },
            &admin,
        ))
        .await
        .expect("bynode");
    row("get_jobs_by_nodeid none", r.get_ref(), vec![]);

    // reschedule_job_nearest: `rescheduled=false` is absent.
    let rs = |jobid: &str| MessageRescheduleJob {
        jobid: jobid.into(),
        starttime: format!("{y}-03-01 11:00:00"),
        endtime: format!("{y}-03-02 10:00:00"),
    };
    let r = c
        .reschedule_job_nearest(req(rs("zz"), &alice))
        .await
        .expect("rs");
    row(
        "reschedule unknown",
        r.get_ref(),
        wire::text(2, "job with the given id not found."),
    );
    let r = c
        .reschedule_job_nearest(req(rs("cj"), &alice))
        .await
        .expect("rs");
    row(
        "reschedule cron",
        r.get_ref(),
        wire::text(2, "only jobs of type 'atq' can be rescheduled."),
    );

    // modify_job: never implemented; an empty reply.
    let r = c
        .modify_job(req(MessageModifyJob {}, &alice))
        .await
        .expect("modify_job");
    row("modify_job", r.get_ref(), vec![]);

    // delete_job_by_id (exists=true is field 1) and delete_jobs_by_nodeid.
    let dj = |jobid: &str| MessageDeleteJobById {
        jobid: jobid.into(),
    };
    let r = c.delete_job_by_id(req(dj("zz"), &admin)).await.expect("dj");
    row(
        "delete_job_by_id admin missing",
        r.get_ref(),
        wire::text(2, "job with given jobid does not exist"),
    );
    let r = c.delete_job_by_id(req(dj("zz"), &alice)).await.expect("dj");
    row(
        "delete_job_by_id user missing",
        r.get_ref(),
        wire::text(2, "job with jobid=zz does not exist"),
    );
    let r = c.delete_job_by_id(req(dj("aj"), &privu)).await.expect("dj");
    row(
        "delete_job_by_id not owner",
        r.get_ref(),
        [
            wire::int(1, 1),
            wire::text(2, "permission denied: userid=privu and role=USER_PRIV"),
        ]
        .concat(),
    );
    let r = c.delete_job_by_id(req(dj("aj"), &alice)).await.expect("dj");
    row(
        "delete_job_by_id",
        r.get_ref(),
        [wire::int(1, 1), wire::text(2, "deleted job successfully")].concat(),
    );
    let r = c
        .delete_jobs_by_nodeid(req(
            MessageDeleteJobsByNodeid {
                nodeid: "nowhere".into(),
            },
            &admin,
        ))
        .await
        .expect("djn");
    row(
        "delete_jobs_by_nodeid none",
        r.get_ref(),
        wire::text(2, "deleted records successfully"),
    );

    // update_run / get_runs
    let r = update_run(&mut c, &n1, run("r1", "cj", "n1", "alice")).await;
    row("update_run", &r, wire::ok("updated run successfully"));
    let r = get_runs(
        &mut c,
        &alice,
        MessageGetRuns {
            runid: Some("none".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(r.is_empty());
    let r = c
        .get_runs(req(
            MessageGetRuns {
                runid: Some("r1".into()),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .expect("runs");
    let entry = [
        wire::text(1, "r1"),
        wire::text(2, "cj"),
        wire::text(3, "n1"),
        wire::text(4, "alice"),
        wire::text(5, &format!("{y}-03-01 10:00:00")),
        wire::text(6, &format!("{y}-03-01 10:10:00")),
        wire::text(7, &format!("{y}-03-01 10:10:00")),
        wire::text(8, "https://blob.example/run.zip"),
        wire::text(9, "EXECUTING"),
        wire::text(10, "Executing job."),
    ]
    .concat();
    row("get_runs", r.get_ref(), wire::bytes(1, &entry));

    // get_scheduled_runs
    let sr = |start: &str, end: &str| MessageGetScheduledRuns {
        nodeid: "nowhere".into(),
        start: start.into(),
        end: end.into(),
    };
    let r = c
        .get_scheduled_runs(req(
            sr(
                &format!("{y}-01-02 00:00:00"),
                &format!("{y}-01-01 00:00:00"),
            ),
            &alice,
        ))
        .await
        .expect("sr");
    row(
        "get_scheduled_runs end<start",
        r.get_ref(),
        wire::failed("error: end must be greater than start"),
    );
    let r = c
        .get_scheduled_runs(req(
            sr(
                &format!("{y}-01-01 00:00:00"),
                &format!("{y}-01-02 00:00:00"),
            ),
            &alice,
        ))
        .await
        .expect("sr");
    row("get_scheduled_runs empty", r.get_ref(), wire::ok("success"));

    // register_node / update_node / delete_node
    let r = register_node_reply(&s, "n1").await;
    row(
        "register_node exists",
        &r,
        wire::failed("node with the given id exists"),
    );
    let r = c
        .register_node(req(
            MessageRegisterNode {
                node: Some(node_record("n9")),
            },
            &alice,
        ))
        .await
        .expect("rn");
    row(
        "register_node denied",
        r.get_ref(),
        wire::failed("permission denied: userid=alice and role=USER"),
    );
    let r = c
        .update_node(req(
            MessageUpdateNode {
                nodeid: "n1".into(),
                public_ip: Some("192.0.2.1".into()),
                ..Default::default()
            },
            &n1,
        ))
        .await
        .expect("un");
    row(
        "update_node",
        r.get_ref(),
        wire::ok("updated node successfully"),
    );
    let r = c
        .delete_node(req(
            MessageDeleteNode {
                nodeid: "ghost".into(),
                delete_jobs: false,
            },
            &admin,
        ))
        .await
        .expect("dn");
    row(
        "delete_node missing",
        r.get_ref(),
        wire::failed("node with given id does not exist"),
    );

    // set/get_scavenger_status
    let set = |on: bool| MessageSetScavengerStatus {
        nodeid: "n1".into(),
        scavenger_mode_active: on,
    };
    let get = || MessageGetScavengerStatus {
        nodeid: "n1".into(),
    };
    let r = c
        .set_scavenger_status(req(set(true), &n1))
        .await
        .expect("set");
    row(
        "set_scavenger_status",
        r.get_ref(),
        wire::ok("updated scavenger_mode_status successfully"),
    );
    let r = c
        .get_scavenger_status(req(get(), &alice))
        .await
        .expect("get");
    row(
        "get_scavenger_status on",
        r.get_ref(),
        [wire::int(1, 1), wire::int(2, 1)].concat(),
    );
    c.set_scavenger_status(req(set(false), &n1))
        .await
        .expect("set");
    let r = c
        .get_scavenger_status(req(get(), &alice))
        .await
        .expect("get");
    row("get_scavenger_status off", r.get_ref(), vec![]);

    // schedule_task / get_tasks / update_task (the node puts a task on itself).
    let r = schedule_task(&mut c, &n1, task("t1", "r1", "cj", "n1")).await;
    row("schedule_task", &r, wire::ok("task successfully scheduled"));
    let r = c
        .get_tasks(req(
            MessageGetTasks {
                taskid: Some("t1".into()),
                ..Default::default()
            },
            &n1,
        ))
        .await
        .expect("tasks");
    let entry = [
        wire::int(1, 1),
        wire::text(2, "t1"),
        wire::text(3, "r1"),
        wire::text(4, "cj"),
        wire::text(5, "n1"),
        wire::int(6, 1),
        wire::int(7, 600),
    ]
    .concat();
    row("get_tasks", r.get_ref(), wire::bytes(1, &entry));
    let r = update_task(&mut c, &n1, "t1").await;
    row("update_task", &r, wire::ok("updated task successfully"));
    let r = update_task(&mut c, &n1, "ghost").await;
    row(
        "update_task missing",
        &r,
        wire::failed("task with given id does not exist"),
    );

    // kernel_access
    let ka = |userid: &str| MessageKernelAccess {
        userid: userid.into(),
    };
    let r = c.kernel_access(req(ka("privu"), &n1)).await.expect("ka");
    row(
        "kernel_access granted",
        r.get_ref(),
        wire::ok("userid=privu role=USER_PRIV has access to kernel services"),
    );
    let r = c.kernel_access(req(ka("alice"), &n1)).await.expect("ka");
    row(
        "kernel_access refused",
        r.get_ref(),
        wire::failed(
            "userid=alice role=USER does not have access to kernel services \
             (higher access level required)",
        ),
    );
    let r = c.kernel_access(req(ka("ghost"), &n1)).await.expect("ka");
    row(
        "kernel_access unknown",
        r.get_ref(),
        wire::failed("userid=ghost does not exist"),
    );
    let r = c.kernel_access(req(ka("privu"), &alice)).await.expect("ka");
    row(
        "kernel_access denied",
        r.get_ref(),
        wire::failed("permission denied: userid=alice and role=USER"),
    );

    // delete_node last (it removes n1's identity).
    let r = c
        .delete_node(req(
            MessageDeleteNode {
                nodeid: "n1".into(),
                delete_jobs: true,
            },
            &admin,
        ))
        .await
        .expect("dn");
    row("delete_node", r.get_ref(), wire::ok("node deleted"));
    let r = c.delete_user(req(du("privu"), &admin)).await.expect("du");
    row("delete_user", r.get_ref(), wire::ok("user deleted"));
}

#[tokio::test]
async fn scavenger_status_reads_as_the_original_node_agent_expects() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let n1 = node(&s, "n1").await;
    let get = |nodeid: &str| MessageGetScavengerStatus {
        nodeid: nodeid.into(),
    };
    // executor.py: `if msg['found']: active = msg['scavengerModeActive']`, with MessageToDict
    // leaving false fields out. So found must never be true while the flag is false.
    for (nodeid, on) in [("n1", false), ("n1", true), ("n1", false), ("ghost", false)] {
        if nodeid == "n1" {
            c.set_scavenger_status(req(
                MessageSetScavengerStatus {
                    nodeid: nodeid.into(),
                    scavenger_mode_active: on,
                },
                &n1,
            ))
            .await
            .expect("set");
        }
        let r = As::new(&c, &n1).get_scavenger_status(get(nodeid)).await;
        assert_eq!(
            (r.found, r.scavenger_mode_active),
            (on, on),
            "{nodeid} {on}"
        );
    }
}

#[tokio::test]
async fn free_text_takes_anything_up_to_the_message_limit_ids_stay_bounded() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let alice = user(&s, "alice", UserRoles::User).await;
    let n1 = node(&s, "n1").await;
    // The web portal sends the whole experiment YAML as `config`.
    for (jobid, size) in [("j64k", 64 * 1024), ("j1m", 1024 * 1024)] {
        let yaml: String = (0..)
            .map(|i| format!("key_{i}: value {i} with some text\n"))
            .take_while({
                let mut total = 0;
                move |l: &String| {
                    total += l.len();
                    total <= size
                }
            })
            .collect();
        let mut job = atq_job(jobid, "n1", "");
        job.config = yaml.clone();
        // Params have their own bound (64 KiB each, issue 21: every calendar event repeats them).
        let param = (size / 4).min(64 * 1024);
        job.params = Some(JobParams {
            mode: "docker".into(),
            deploy: "d".repeat(param),
            execute: "e".repeat(param),
            finish: String::new(),
        });
        let r = schedule(&mut c, &alice, job).await;
        assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
        for who in [&alice, &n1] {
            let got = get_job(&mut c, who, jobid).await;
            assert!(got.config == yaml, "{jobid}: config changed in transit");
            assert_eq!(got.params.expect("params").deploy.len(), param);
        }
    }
    // Other free text: a node's description, a run's status message, a user's name.
    let big = "x".repeat(1024 * 1024);
    let r = As::new(&c, &n1)
        .update_node(MessageUpdateNode {
            nodeid: "n1".into(),
            description: Some(big.clone()),
            ..Default::default()
        })
        .await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    // A run's status message is bounded at 64 KiB (every get_runs repeats it).
    let mut r1 = run("r1", "j1m", "n1", "alice");
    r1.status_message = "s".repeat(64 * 1024);
    let r = update_run(&mut c, &n1, r1).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    let runs = get_runs(&mut c, &alice, MessageGetRuns::default()).await;
    assert_eq!(runs[0].status_message.len(), 64 * 1024);
    let mut r2 = run("r2", "j1m", "n1", "alice");
    r2.status_message = big.clone();
    let r = update_run(&mut c, &n1, r2).await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (
            ResponseState::Failed as i32,
            "invalid status_message: longer than 65536 bytes"
        )
    );
    let listed = nodes(
        &mut c,
        &alice,
        MessageGetNodes {
            nodeid: Some("n1".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed[0].description.len(), big.len());
    // Ids stay bounded.
    let r = schedule(&mut c, &alice, atq_job(&"i".repeat(257), "n1", "")).await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (
            ResponseState::Failed as i32,
            "invalid id: longer than 256 bytes"
        )
    );
}

/// The `get_nodes` entry of a node registered by `node_record` and never heard from.
fn silent_node_entry(id: &str, jobs: &str) -> Vec<u8> {
    [
        wire::text(1, id),
        wire::text(2, &format!("{id}-name")),
        wire::text(3, "roof"),
        wire::text(4, "2020-01-01 00:00:00"),
        wire::text(5, "12.9,77.5"),
        wire::text(6, "bangalore"),
        wire::text(7, "starlink"),
        wire::text(8, jobs),
    ]
    .concat()
}

/// proto3 `optional` (explicit presence) as the original has it: replies set `_node.jobs` and
/// `last_active` always (`jobs` empty for a node without jobs), a job's `server`/`trigger`
/// exactly when stored (`""` included); requests are read with the original's `HasField`
/// branches (a filter set to `""` filters nothing, a present `activeThres` of 0 is 0 s).
#[tokio::test]
async fn optional_fields_carry_presence_as_the_original() {
    presence_scenario(&[]).await;
}

/// The same on the MongoDB backend: `""` and null (Python `None`) stay apart in the documents.
#[tokio::test]
async fn optional_fields_carry_presence_as_the_original_on_mongodb() {
    let Some(db) = leotest_test_support::mongo::TestMongo::fresh("presence") else {
        return;
    };
    presence_scenario(&db.server_args()).await;
}

async fn presence_scenario(server_args: &[&str]) {
    let y = future_year();
    let s = Orchestrator::start(server_args).await;
    let mut c = s.client().await;
    let admin = Creds::admin();
    let alice = user(&s, "alice", UserRoles::User).await;
    let n1 = node(&s, "n1").await;
    node(&s, "n2").await;

    // A node without jobs: `jobs` is on the wire, empty (tag 8, length 0).
    let by_id = |id: &str| MessageGetNodes {
        nodeid: Some(id.into()),
        ..Default::default()
    };
    let listed = nodes(&mut c, &admin, by_id("n2")).await;
    assert_eq!(listed.len(), 1);
    row(
        "get_nodes without jobs",
        &listed[0],
        silent_node_entry("n2", ""),
    );

    // schedule_job with `server` and `trigger` set explicitly empty: the empty trigger is
    // validated (and valid), the empty server names no server.
    let mut ej = atq_job("ej", "n1", "");
    ej.overhead = true;
    ej.server = Some(String::new());
    ej.trigger = Some(String::new());
    let r = schedule(&mut c, &alice, ej).await;
    row(
        "schedule_job empty server/trigger",
        &r,
        wire::ok("job successfully scheduled"),
    );
    // Another overhead job in the same window, on another node, also with an empty server:
    // the original's `if server:` books no node "" (so no conflict through it).
    let mut ej2 = atq_job("ej2", "n2", "");
    ej2.overhead = true;
    ej2.server = Some(String::new());
    let r = schedule(&mut c, &alice, ej2).await;
    row(
        "schedule_job empty server, other node, same window",
        &r,
        wire::ok("job successfully scheduled"),
    );
    let r = schedule(&mut c, &alice, atq_job("pj", "n1", "")).await;
    row(
        "schedule_job plain",
        &r,
        wire::ok("job successfully scheduled"),
    );

    // Listed back: `server`/`trigger` present and empty for ej, absent for pj.
    let params = [
        wire::text(1, "docker"),
        wire::text(2, "image=x"),
        wire::text(3, "run"),
    ]
    .concat();
    let entry = |id: &str, overhead: bool, empty_opts: bool| {
        let mut e = [
            wire::text(1, id),
            wire::text(2, "n1"),
            wire::int(3, 1),
            wire::bytes(4, &params),
            wire::text(6, &format!("{y}-03-01 10:00:00")),
            wire::text(7, &format!("{y}-03-02 10:00:00")),
            wire::int(8, 600),
        ]
        .concat();
        if overhead {
            e.extend(wire::int(9, 1));
        }
        if empty_opts {
            e.extend([wire::text(10, ""), wire::text(11, "")].concat());
        }
        e.extend(wire::text(12, "alice"));
        e
    };
    let jobs = [
        wire::int(1, 1),
        wire::bytes(2, &entry("ej", true, true)),
        wire::bytes(2, &entry("pj", false, false)),
    ]
    .concat();
    let r = c
        .get_jobs_by_nodeid(req(
            MessageGetJobsByNodeid {
                nodeid: "n1".into(),
            },
            &alice,
        ))
        .await
        .expect("bynode");
    row("get_jobs_by_nodeid empty server/trigger", r.get_ref(), jobs);
    let r = c
        .get_jobs_by_userid(req(
            MessageGetJobsByUserid {
                userid: "alice".into(),
            },
            &alice,
        ))
        .await
        .expect("byuser");
    let ej_entry = r.get_ref().jobs.iter().find(|j| j.id == "ej").expect("ej");
    row(
        "get_jobs_by_userid empty server/trigger",
        ej_entry,
        entry("ej", true, true),
    );
    // The node's summary prints `str("")` for them, `None` for absent ones.
    let listed = nodes(&mut c, &admin, by_id("n1")).await;
    let summary = format!(
        "<jobid=ej userid=alice type=atq start={y}-03-01 10:00:00 \
                   end={y}-03-02 10:00:00 length=600 schedule= overhead=True server= \
                   trigger=><jobid=pj userid=alice type=atq start={y}-03-01 10:00:00 \
                   end={y}-03-02 10:00:00 length=600 schedule= overhead=False server=None \
                   trigger=None>"
    );
    row(
        "get_nodes with jobs",
        &listed[0],
        silent_node_entry("n1", &summary),
    );

    // get_nodes: filters set to "" filter nothing; `active` set false is not active.
    let all = nodes(&mut c, &admin, MessageGetNodes::default()).await;
    assert_eq!(all.len(), 2);
    let empty_filters = MessageGetNodes {
        nodeid: Some(String::new()),
        location: Some(String::new()),
        name: Some(String::new()),
        provider: Some(String::new()),
        active: Some(false),
        active_thres: Some(0),
    };
    assert_eq!(nodes(&mut c, &admin, empty_filters).await, all);
    // `activeThres` absent is 600 s; present 0 is 0 s. n1 was last active 5 minutes ago: in
    // the middle of the default window (the margin either side is minutes, not a race), and
    // before "now" whatever the backend's date precision.
    let five_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(5);
    let r = c
        .update_node(req(
            MessageUpdateNode {
                nodeid: "n1".into(),
                last_active: Some(five_minutes_ago.format("%Y-%m-%d %H:%M:%S").to_string()),
                ..Default::default()
            },
            &n1,
        ))
        .await
        .expect("un");
    assert_eq!(r.get_ref().state, ResponseState::Success as i32);
    let active = |thres: Option<i32>| MessageGetNodes {
        active: Some(true),
        active_thres: thres,
        ..Default::default()
    };
    let ids = |v: Vec<Node>| v.into_iter().map(|n| n.nodeid).collect::<Vec<_>>();
    assert_eq!(ids(nodes(&mut c, &admin, active(None)).await), ["n1"]);
    assert!(nodes(&mut c, &admin, active(Some(0))).await.is_empty());

    // get_runs: filters set to "" and a limit set to 0 filter nothing.
    let r = update_run(&mut c, &n1, run("r1", "ej", "n1", "alice")).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    let r = update_run(&mut c, &n1, run("r2", "pj", "n1", "alice")).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    let all = get_runs(&mut c, &admin, MessageGetRuns::default()).await;
    assert_eq!(all.len(), 2);
    let empty_filters = MessageGetRuns {
        runid: Some(String::new()),
        jobid: Some(String::new()),
        nodeid: Some(String::new()),
        userid: Some(String::new()),
        time_range: None,
        limit: Some(0),
    };
    assert_eq!(get_runs(&mut c, &admin, empty_filters).await, all);

    // get_tasks: "" filters nothing; `type` and `status` are ignored, as the original.
    let r = schedule_task(&mut c, &n1, task("t1", "r1", "ej", "n1")).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    let all = get_tasks(&mut c, &admin, MessageGetTasks::default()).await;
    assert_eq!(all.len(), 1);
    let odd_filters = MessageGetTasks {
        r#type: Some(TaskType::ServerStop as i32),
        taskid: Some(String::new()),
        runid: Some(String::new()),
        jobid: Some(String::new()),
        nodeid: Some(String::new()),
        status: Some(TaskStatus::TaskComplete as i32),
    };
    assert_eq!(get_tasks(&mut c, &admin, odd_filters).await, all);

    // update_node: fields set to "" leave the node as it was.
    let before = nodes(&mut c, &admin, by_id("n2")).await;
    let r = c
        .update_node(req(
            MessageUpdateNode {
                nodeid: "n2".into(),
                name: Some(String::new()),
                description: Some(String::new()),
                last_active: Some(String::new()),
                coords: Some(String::new()),
                location: Some(String::new()),
                provider: Some(String::new()),
                public_ip: Some(String::new()),
            },
            &admin,
        ))
        .await
        .expect("un");
    row(
        "update_node all empty",
        r.get_ref(),
        wire::ok("updated node successfully"),
    );
    assert_eq!(nodes(&mut c, &admin, by_id("n2")).await, before);
}
