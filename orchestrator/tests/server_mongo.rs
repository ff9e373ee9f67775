//! The real binary on the MongoDB backend (`--db-server`), when `LEOTEST_TEST_MONGO_URI` is set:
//! the same RPC behaviour as on the embedded store, and restart keeps data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_proto::unary::*;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{req, As, Creds, Orchestrator};

fn ok_state(state: i32, message: &str) {
    assert_eq!(state, ResponseState::Success as i32, "{message}");
}

#[tokio::test]
async fn mongo_backend_serves_users_nodes_and_survives_restart() {
    let Some(db) = TestMongo::fresh("it") else {
        return;
    };
    let mut s = Orchestrator::builder().store(&db).start().await;
    assert!(s.log().contains("store=Mongo"), "{}", s.log());
    let admin = Creds::admin();
    let c = s.client().await;

    let r = As::new(&c, &admin)
        .register_user(MessageRegisterUser {
            id: "alice".into(),
            name: "Alice".into(),
            role: UserRoles::UserPriv as i32,
            team: "t".into(),
        })
        .await;
    ok_state(r.state, &r.message);
    let alice_token = r
        .message
        .rsplit_once("access_token=")
        .map(|(_, t)| t.to_string())
        .expect("token");
    let alice = Creds::token("alice", &alice_token);

    let r = As::new(&c, &admin)
        .register_node(MessageRegisterNode {
            node: Some(Node {
                nodeid: "node-1".into(),
                name: "n".into(),
                location: "delhi".into(),
                ..Default::default()
            }),
        })
        .await;
    ok_state(r.state, &r.message);
    let node_token = r
        .message
        .rsplit_once("access_token=")
        .map(|(_, t)| t.to_string())
        .expect("token");
    let node = Creds::token("node-1", &node_token);

    let hb = As::new(&c, &node)
        .report_heartbeat(MessageHeartbeat {
            nodeid: "node-1".into(),
        })
        .await;
    assert!(hb.received);
    let active = As::new(&c, &alice)
        .get_nodes(MessageGetNodes {
            active: Some(true),
            ..Default::default()
        })
        .await;
    assert_eq!(active.nodes.len(), 1);
    assert_eq!(active.nodes[0].location, "delhi");

    let r = As::new(&c, &node)
        .kernel_access(MessageKernelAccess {
            userid: "alice".into(),
        })
        .await;
    assert_eq!(
        r.message,
        "userid=alice role=USER_PRIV has access to kernel services"
    );

    let r = As::new(&c, &admin)
        .update_global_config(MessageUpdateGlobalConfig {
            config: Some(Settings {
                datastore: None,
                weather: Some(WeatherApiSettings { apikey: "k".into() }),
            }),
        })
        .await;
    ok_state(r.state, &r.message);

    s.restart().await;
    let mut c = s.client().await;
    let me = As::new(&c, &alice)
        .get_user(MessageGetUser {
            userid: "alice".into(),
        })
        .await;
    assert!(me.exists);
    let cfg = As::new(&c, &node)
        .get_global_config(MessageGetGlobalConfig {})
        .await;
    assert_eq!(
        cfg.config.and_then(|c| c.weather).map(|w| w.apikey),
        Some("k".into())
    );
    let st = As::new(&c, &node)
        .set_scavenger_status(MessageSetScavengerStatus {
            nodeid: "node-1".into(),
            scavenger_mode_active: true,
        })
        .await;
    ok_state(st.state, &st.message);
    let r = As::new(&c, &admin)
        .delete_node(MessageDeleteNode {
            nodeid: "node-1".into(),
            delete_jobs: true,
        })
        .await;
    assert_eq!(r.message, "node deleted");
    let err = c
        .get_user(req(MessageGetUser::default(), &node))
        .await
        .expect_err("node identity removed");
    assert_eq!(err.message(), "Invalid token");

    s.stop();
}
