//! The real binary on the MongoDB backend (`--db-server`), when `LEOTEST_TEST_MONGO_URI` is set:
//! the same RPC behaviour as on the embedded store, and restart keeps data.

use leotest_proto::unary::*;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{req, Creds, Orchestrator};

fn ok_state(state: i32, message: &str) {
    assert_eq!(state, ResponseState::Success as i32, "{message}");
}

#[tokio::test]
async fn mongo_backend_serves_users_nodes_and_survives_restart() {
    let Some(db) = TestMongo::fresh("it") else {
        return;
    };
    let mut s = Orchestrator::start(&db.server_args()).await;
    assert!(s.log().contains("store=Mongo"), "{}", s.log());
    let admin = Creds::admin();
    let mut c = s.client().await;

    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: "alice".into(),
                name: "Alice".into(),
                role: UserRoles::UserPriv as i32,
                team: "t".into(),
            },
            &admin,
        ))
        .await
        .expect("register_user")
        .into_inner();
    ok_state(r.state, &r.message);
    let alice_token = r
        .message
        .rsplit_once("access_token=")
        .map(|(_, t)| t.to_string())
        .expect("token");
    let alice = Creds::token("alice", &alice_token);

    let r = c
        .register_node(req(
            MessageRegisterNode {
                node: Some(Node {
                    nodeid: "node-1".into(),
                    name: "n".into(),
                    location: "delhi".into(),
                    ..Default::default()
                }),
            },
            &admin,
        ))
        .await
        .expect("register_node")
        .into_inner();
    ok_state(r.state, &r.message);
    let node_token = r
        .message
        .rsplit_once("access_token=")
        .map(|(_, t)| t.to_string())
        .expect("token");
    let node = Creds::token("node-1", &node_token);

    let hb = c
        .report_heartbeat(req(
            MessageHeartbeat {
                nodeid: "node-1".into(),
            },
            &node,
        ))
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(hb.received);
    let active = c
        .get_nodes(req(
            MessageGetNodes {
                active: Some(true),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .expect("get_nodes")
        .into_inner();
    assert_eq!(active.nodes.len(), 1);
    assert_eq!(active.nodes[0].location, "delhi");

    let r = c
        .kernel_access(req(
            MessageKernelAccess {
                userid: "alice".into(),
            },
            &node,
        ))
        .await
        .expect("kernel_access")
        .into_inner();
    assert_eq!(
        r.message,
        "userid=alice role=USER_PRIV has access to kernel services"
    );

    let r = c
        .update_global_config(req(
            MessageUpdateGlobalConfig {
                config: Some(Settings {
                    datastore: None,
                    weather: Some(WeatherApiSettings { apikey: "k".into() }),
                }),
            },
            &admin,
        ))
        .await
        .expect("update config")
        .into_inner();
    ok_state(r.state, &r.message);

    s.restart().await;
    let mut c = s.client().await;
    let me = c
        .get_user(req(
            MessageGetUser {
                userid: "alice".into(),
            },
            &alice,
        ))
        .await
        .expect("alice after restart")
        .into_inner();
    assert!(me.exists);
    let cfg = c
        .get_global_config(req(MessageGetGlobalConfig {}, &node))
        .await
        .expect("config after restart")
        .into_inner();
    assert_eq!(
        cfg.config.and_then(|c| c.weather).map(|w| w.apikey),
        Some("k".into())
    );
    let st = c
        .set_scavenger_status(req(
            MessageSetScavengerStatus {
                nodeid: "node-1".into(),
                scavenger_mode_active: true,
            },
            &node,
        ))
        .await
        .expect("scavenger")
        .into_inner();
    ok_state(st.state, &st.message);
    let r = c
        .delete_node(req(
            MessageDeleteNode {
                nodeid: "node-1".into(),
                delete_jobs: true,
            },
            &admin,
        ))
        .await
        .expect("delete_node")
        .into_inner();
    assert_eq!(r.message, "node deleted");
    let err = c
        .get_user(req(MessageGetUser::default(), &node))
        .await
        .expect_err("node identity removed");
    assert_eq!(err.message(), "Invalid token");

    s.stop();
}
