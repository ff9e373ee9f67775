//! Issue 16 / 17: several orchestrator processes on one store. MongoDB: two replicas start at
//! once and leave one admin, registrations and run reports racing across replicas leave one
//! record, and a deleted or demoted user stops working on the other replica within 1 s (users
//! are cached). Embedded: a second process on the same data directory is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_test_support::future_year;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use leotest_proto::unary::*;
use leotest_proto::LeotestOrchestratorClient;
use leotest_test_support::calls::authenticates;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{orchestrator_bin, req, As, Creds, Orchestrator};
use tonic::transport::Channel;

fn ok(state: i32) -> bool {
    state == ResponseState::Success as i32
}

#[tokio::test]
async fn embedded_refuses_a_second_process_on_the_same_data_dir() {
    let s = Orchestrator::start(&[]).await;
    let out = Command::new(orchestrator_bin())
        .current_dir(s.dir.path())
        .env_remove("LEOTEST_DB_SERVER")
        .args(["--grpc-hostname", "127.0.0.1", "--grpc-port", "0"])
        .arg("--data-dir")
        .arg(s.data_dir())
        .arg("--tls-cert")
        .arg(s.cert_path())
        .arg("--tls-key")
        .arg(s.key_path())
        .args(["--admin-access-token", leotest_test_support::ADMIN_TOKEN])
        .stdin(Stdio::null())
        .output()
        .expect("run second orchestrator");
    assert!(!out.status.success(), "a second process must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another leotest-orchestrator process")
            && err.contains("Running more than one orchestrator"),
        "{err}"
    );
    // The first one still serves.
    let mut c = s.client().await;
    c.get_user(req(
        MessageGetUser {
            userid: "admin".into(),
        },
        &Creds::admin(),
    ))
    .await
    .expect("first process still answers");
}

/// Two replicas of one database, started at the same moment.
async fn replicas(db: &TestMongo) -> (Orchestrator, Orchestrator) {
    let args = db.server_args();
    let (a, b) = tokio::join!(Orchestrator::start(&args), Orchestrator::start(&args));
    (a, b)
}

async fn admin_docs(db: &TestMongo, filter: bson::Document, coll: &str) -> u64 {
    let client = mongodb::Client::with_uri_str(&db.uri)
        .await
        .expect("client");
    client
        .database(&db.name)
        .collection::<bson::Document>(coll)
        .count_documents(filter)
        .await
        .expect("count")
}

async fn register_user(
    c: &mut LeotestOrchestratorClient<Channel>,
    id: &str,
    name: &str,
    role: UserRoles,
) -> Option<Creds> {
    let r = As::new(c, &Creds::admin())
        .register_user(MessageRegisterUser {
            id: id.into(),
            name: name.into(),
            role: role as i32,
            team: "t".into(),
        })
        .await;
    ok(r.state).then(|| {
        let token = r
            .message
            .rsplit("access_token=")
            .next()
            .expect("token")
            .to_string();
        Creds::token(id, &token)
    })
}

/// How long until `check` holds on the other replica (polled every 20 ms, at most 3 s).
async fn time_until<F, Fut>(mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        if check().await {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_replicas_start_race_register_and_revoke_safely() {
    let y = future_year();
    let Some(db) = TestMongo::fresh("replicas") else {
        return;
    };
    let (a, b) = replicas(&db).await;
    assert_eq!(
        admin_docs(&db, bson::doc! { "id": "admin" }, "users").await,
        1,
        "two replicas starting at once leave one admin"
    );
    let (mut ca, mut cb) = (a.client().await, b.client().await);

    // The same user id registered on both replicas at once, 10 times: one winner each time.
    for i in 0..10 {
        let id = format!("dup{i}");
        let (mut xa, mut xb) = (ca.clone(), cb.clone());
        let (ra, rb) = tokio::join!(
            register_user(&mut xa, &id, "x", UserRoles::User),
            register_user(&mut xb, &id, "x", UserRoles::User)
        );
        assert_eq!(
            u8::from(ra.is_some()) + u8::from(rb.is_some()),
            1,
            "{id}: one registration wins"
        );
        assert_eq!(admin_docs(&db, bson::doc! { "id": &id }, "users").await, 1);
    }

    // The same run reported to both replicas at once: one document.
    for i in 0..10 {
        let runid = format!("run{i}");
        let report = |c: LeotestOrchestratorClient<Channel>, status: &'static str| {
            let runid = runid.clone();
            async move {
                As::new(&c, &Creds::admin())
                    .update_run(MessageUpdateRun {
                        run: Some(RunInstance {
                            runid,
                            jobid: "j".into(),
                            nodeid: "n".into(),
                            userid: "u".into(),
                            start_time: format!("{y}-01-01 00:00:00"),
                            end_time: format!("{y}-01-01 00:10:00"),
                            last_updated: format!("{y}-01-01 00:10:00"),
                            status: status.into(),
                            ..Default::default()
                        }),
                    })
                    .await
            }
        };
        let (x, y) = tokio::join!(report(ca.clone(), "a"), report(cb.clone(), "b"));
        assert!(ok(x.state) && ok(y.state), "{} / {}", x.message, y.message);
        assert_eq!(
            admin_docs(&db, bson::doc! { "runid": &runid }, "runs").await,
            1
        );
    }

    // Revocation across replicas: alice works on B (and is cached there), is deleted on A,
    // and stops working on B within 1 s.
    let alice = register_user(&mut ca, "alice", "Alice", UserRoles::User)
        .await
        .expect("alice");
    let seen = time_until(|| {
        let (mut c, creds) = (cb.clone(), alice.clone());
        async move { authenticates(&mut c, &creds).await }
    })
    .await;
    assert!(
        seen < Duration::from_secs(1),
        "new user seen on B after {seen:?}"
    );
    for _ in 0..20 {
        assert!(authenticates(&mut cb, &alice).await, "warm B's cache");
    }
    let r = As::new(&ca, &Creds::admin())
        .delete_user(MessageDeleteUser {
            userid: "alice".into(),
        })
        .await;
    assert!(ok(r.state), "{}", r.message);
    let gone = time_until(|| {
        let (mut c, creds) = (cb.clone(), alice.clone());
        async move { !authenticates(&mut c, &creds).await }
    })
    .await;
    assert!(
        gone < Duration::from_secs(1),
        "deleted user still worked on B after {gone:?}"
    );

    // Re-registered with another name: a new token; the old one stays refused on B and the
    // new one works there within 1 s.
    let alice2 = register_user(&mut ca, "alice", "Alice Two", UserRoles::User)
        .await
        .expect("alice again");
    let new_ok = time_until(|| {
        let (mut c, creds) = (cb.clone(), alice2.clone());
        async move { authenticates(&mut c, &creds).await }
    })
    .await;
    assert!(
        new_ok < Duration::from_secs(1),
        "new token on B after {new_ok:?}"
    );
    assert!(!authenticates(&mut cb, &alice).await, "old token refused");

    // Demotion: an admin-role user loses admin rights on B within 1 s.
    let boss = register_user(&mut ca, "boss", "Boss", UserRoles::Admin)
        .await
        .expect("boss");
    let can_admin = |mut c: LeotestOrchestratorClient<Channel>, creds: Creds, n: u32| async move {
        c.register_user(req(
            MessageRegisterUser {
                id: format!("by-boss-{n}"),
                name: "x".into(),
                role: UserRoles::User as i32,
                team: "t".into(),
            },
            &creds,
        ))
        .await
        .map(|r| ok(r.into_inner().state))
        .unwrap_or(false)
    };
    let mut n = 0;
    let promoted = time_until(|| {
        n += 1;
        can_admin(cb.clone(), boss.clone(), n)
    })
    .await;
    assert!(
        promoted < Duration::from_secs(1),
        "admin role on B after {promoted:?}"
    );
    let r = As::new(&ca, &Creds::admin())
        .modify_user(MessageModifyUser {
            id: "boss".into(),
            name: "Boss".into(),
            role: UserRoles::User as i32,
            team: "t".into(),
        })
        .await;
    assert!(ok(r.state), "{}", r.message);
    let mut m = 100;
    let demoted = time_until(|| {
        m += 1;
        let (c, creds) = (cb.clone(), boss.clone());
        async move { !can_admin(c, creds, m).await }
    })
    .await;
    assert!(
        demoted < Duration::from_secs(1),
        "demoted admin kept its role on B for {demoted:?}"
    );
}
