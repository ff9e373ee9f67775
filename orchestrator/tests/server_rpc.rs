//! The real orchestrator binary over TLS: users, nodes, config, kernel access, roles,
//! authentication failures, restart, health/reflection and hostile input.

use leotest_proto::unary::*;
use leotest_test_support::{req, Creds, Orchestrator, ADMIN_TOKEN};
use sha2::{Digest, Sha256};
use tonic::Code;

fn sha_token(a: &str, b: &str, c: &str) -> String {
    hex::encode(Sha256::digest(format!("{a}{b}{c}").as_bytes()))
}

fn token_from_message(message: &str) -> String {
    message
        .rsplit_once("access_token=")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("no access_token in {message:?}"))
}

async fn register_user(s: &Orchestrator, id: &str, role: UserRoles) -> Creds {
    let mut c = s.client().await;
    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: id.into(),
                name: format!("{id} name"),
                role: role as i32,
                team: "team-x".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("register_user")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    Creds::token(id, &token_from_message(&r.message))
}

async fn register_node(s: &Orchestrator, id: &str) -> Creds {
    let mut c = s.client().await;
    let r = c
        .register_node(req(
            MessageRegisterNode {
                node: Some(Node {
                    nodeid: id.into(),
                    name: format!("{id}-name"),
                    description: "roof".into(),
                    coords: "12.9,77.5".into(),
                    location: "bangalore".into(),
                    provider: "starlink".into(),
                    ..Default::default()
                }),
            },
            &Creds::admin(),
        ))
        .await
        .expect("register_node")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    assert!(r
        .message
        .starts_with("node successfully registered access_token="));
    Creds::token(id, &token_from_message(&r.message))
}

fn assert_invalid_token<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) {
    let status = r.expect_err("must be refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "Invalid token");
}

#[tokio::test]
async fn admin_is_bootstrapped_and_static_tokens_authenticate() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let r = c
        .get_user(req(
            MessageGetUser {
                userid: "admin".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("get_user")
        .into_inner();
    assert!(r.exists);
    assert_eq!(r.id, "admin");
    assert_eq!(r.name, "LEOScope Admin");
    assert_eq!(r.team, "LeoScope MSR-India");
    assert_eq!(r.role, UserRoles::Admin as i32);

    let r = c
        .get_user(req(
            MessageGetUser {
                userid: "nobody".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("get_user")
        .into_inner();
    assert!(!r.exists);
    assert_eq!(r.role, UserRoles::User as i32);
    assert_eq!(r.id, "");
}

#[tokio::test]
async fn bad_credentials_get_invalid_token() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let get = || MessageGetUser {
        userid: "admin".into(),
    };
    for creds in [
        Creds::None,
        Creds::token("admin", "wrong"),
        Creds::token("admin", ""),
        Creds::token("ghost", ADMIN_TOKEN),
        Creds::token("", ADMIN_TOKEN),
        Creds::token("ADMIN", ADMIN_TOKEN),
        Creds::token("admin", &format!("{ADMIN_TOKEN}x")),
        Creds::token(&"a".repeat(9_000), ADMIN_TOKEN),
        Creds::token("admin", &"b".repeat(9_000)),
        Creds::Jwt("not.a.jwt".into()),
    ] {
        assert_invalid_token(c.get_user(req(get(), &creds)).await);
    }
    // userid without token
    let mut r = tonic::Request::new(get());
    r.metadata_mut()
        .insert("x-leotest-userid", "admin".parse().expect("ascii"));
    assert_invalid_token(c.get_user(r).await);
    // Every RPC is behind the layer, including those of the next issue.
    assert_invalid_token(
        c.schedule_job(req(MessageScheduleJob::default(), &Creds::None))
            .await,
    );
    assert_invalid_token(
        c.get_tasks(req(MessageGetTasks::default(), &Creds::token("admin", "x")))
            .await,
    );
}

#[tokio::test]
async fn users_lifecycle_and_admin_only_rules() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let admin = Creds::admin();

    let alice = register_user(&s, "alice", UserRoles::User).await;
    let Creds::Token(_, alice_token) = &alice else {
        unreachable!()
    };
    // Not the original's derivable sha256(id + name + team): 64 random hex digits.
    assert_ne!(alice_token, &sha_token("alice", "alice name", "team-x"));
    assert_eq!(alice_token.len(), 64);
    assert!(alice_token.bytes().all(|b| b.is_ascii_hexdigit()));

    // The new user authenticates and sees its own profile.
    let me = c
        .get_user(req(
            MessageGetUser {
                userid: "alice".into(),
            },
            &alice,
        ))
        .await
        .expect("alice get_user")
        .into_inner();
    assert!(me.exists);
    assert_eq!(me.role, UserRoles::User as i32);
    assert_eq!(me.team, "team-x");

    // Duplicate id.
    let dup = c
        .register_user(req(
            MessageRegisterUser {
                id: "alice".into(),
                name: "other".into(),
                role: UserRoles::Admin as i32,
                team: "t".into(),
            },
            &admin,
        ))
        .await
        .expect("dup")
        .into_inner();
    assert_eq!(dup.state, ResponseState::Failed as i32);
    assert_eq!(dup.message, "user with given id already exists");

    // Non-admins are refused with the original's text.
    let denied = c
        .register_user(req(
            MessageRegisterUser {
                id: "mallory".into(),
                name: "m".into(),
                role: UserRoles::Admin as i32,
                team: "t".into(),
            },
            &alice,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(denied.state, ResponseState::Failed as i32);
    assert_eq!(
        denied.message,
        "permission denied: userid=alice and role=USER"
    );
    let r = c
        .modify_user(req(
            MessageModifyUser {
                id: "alice".into(),
                name: "x".into(),
                role: UserRoles::Admin as i32,
                team: "t".into(),
            },
            &alice,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.message, "permission denied: userid=alice and role=USER");
    let r = c
        .delete_user(req(
            MessageDeleteUser {
                userid: "admin".into(),
            },
            &alice,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "permission denied: userid=alice and role=USER");

    // modify_user keeps the token (the original erased it).
    let r = c
        .modify_user(req(
            MessageModifyUser {
                id: "alice".into(),
                name: "Alice Priv".into(),
                role: UserRoles::UserPriv as i32,
                team: "team-y".into(),
            },
            &admin,
        ))
        .await
        .expect("modify")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    assert_eq!(r.message, "user updated");
    let me = c
        .get_user(req(
            MessageGetUser {
                userid: "alice".into(),
            },
            &alice,
        ))
        .await
        .expect("token still valid")
        .into_inner();
    assert_eq!(me.name, "Alice Priv");
    assert_eq!(me.role, UserRoles::UserPriv as i32);

    let r = c
        .modify_user(req(
            MessageModifyUser {
                id: "ghost".into(),
                name: "g".into(),
                role: UserRoles::User as i32,
                team: "t".into(),
            },
            &admin,
        ))
        .await
        .expect("modify missing")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "user with given id does not exist");

    // Delete, after which the token stops working.
    let r = c
        .delete_user(req(
            MessageDeleteUser {
                userid: "alice".into(),
            },
            &admin,
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    assert_eq!(r.message, "user deleted");
    assert_invalid_token(
        c.get_user(req(
            MessageGetUser {
                userid: "alice".into(),
            },
            &alice,
        ))
        .await,
    );
    let r = c
        .delete_user(req(
            MessageDeleteUser {
                userid: "alice".into(),
            },
            &admin,
        ))
        .await
        .expect("delete again")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "user with given id does not exist");
}

#[tokio::test]
async fn nodes_heartbeat_update_scavenger_and_delete() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let admin = Creds::admin();
    let n1 = register_node(&s, "node-1").await;
    let n2 = register_node(&s, "node-2").await;
    let Creds::Token(_, n1_token) = &n1 else {
        unreachable!()
    };
    assert_ne!(n1_token, &sha_token("node-1", "node-1-name", "roof"));
    assert_eq!(n1_token.len(), 64);

    // The node's identity is a NODE user.
    let u = c
        .get_user(req(
            MessageGetUser {
                userid: "node-1".into(),
            },
            &n1,
        ))
        .await
        .expect("node user")
        .into_inner();
    assert_eq!(u.role, UserRoles::Node as i32);

    let dup = c
        .register_node(req(
            MessageRegisterNode {
                node: Some(Node {
                    nodeid: "node-1".into(),
                    ..Default::default()
                }),
            },
            &admin,
        ))
        .await
        .expect("dup")
        .into_inner();
    assert_eq!(dup.state, ResponseState::Failed as i32);
    assert_eq!(dup.message, "node with the given id exists");

    // Nobody is active until a heartbeat arrives (registration default 2020-01-01).
    let active = |thres: Option<i32>| MessageGetNodes {
        active: Some(true),
        active_thres: thres,
        ..Default::default()
    };
    let r = c
        .get_nodes(req(active(None), &admin))
        .await
        .expect("get_nodes")
        .into_inner();
    assert!(r.nodes.is_empty());

    // Only the node itself can mark itself alive.
    let hb = c
        .report_heartbeat(req(
            MessageHeartbeat {
                nodeid: "node-1".into(),
            },
            &admin,
        ))
        .await
        .expect("hb")
        .into_inner();
    assert!(!hb.received);
    let hb = c
        .report_heartbeat(req(
            MessageHeartbeat {
                nodeid: "node-1".into(),
            },
            &n1,
        ))
        .await
        .expect("hb")
        .into_inner();
    assert!(hb.received);
    let r = c
        .get_nodes(req(active(None), &n2))
        .await
        .expect("get_nodes")
        .into_inner();
    assert_eq!(r.nodes.len(), 1);
    let node = &r.nodes[0];
    assert_eq!(node.nodeid, "node-1");
    assert_eq!(node.description, "roof");
    assert_eq!(node.location, "bangalore");
    assert_eq!(
        node.jobs.as_deref(),
        Some(""),
        "present and empty, as the original"
    );
    assert_ne!(node.last_active.as_deref(), Some("2020-01-01 00:00:00"));

    // Filters.
    let all = c
        .get_nodes(req(MessageGetNodes::default(), &admin))
        .await
        .expect("all")
        .into_inner();
    assert_eq!(all.nodes.len(), 2);
    let node2 = all.nodes.iter().find(|n| n.nodeid == "node-2").expect("n2");
    assert_eq!(node2.last_active.as_deref(), Some("2020-01-01 00:00:00"));
    let by_name = c
        .get_nodes(req(
            MessageGetNodes {
                name: Some("node-2-name".into()),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("by name")
        .into_inner();
    assert_eq!(by_name.nodes.len(), 1);
    let none = c
        .get_nodes(req(
            MessageGetNodes {
                location: Some("mars".into()),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("by location")
        .into_inner();
    assert!(none.nodes.is_empty());

    // update_node: the node itself or ADMIN.
    let upd = |nodeid: &str| MessageUpdateNode {
        nodeid: nodeid.into(),
        public_ip: Some("10.1.2.3".into()),
        coords: Some("1,1".into()),
        ..Default::default()
    };
    let r = c
        .update_node(req(upd("node-1"), &n1))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    assert_eq!(r.message, "updated node successfully");
    let r = c
        .update_node(req(upd("node-1"), &n2))
        .await
        .expect("update other")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "permission denied: userid=node-2 and role=NODE");
    let r = c
        .update_node(req(upd("ghost"), &admin))
        .await
        .expect("update missing")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "node with given id does not exist");
    let got = c
        .get_nodes(req(
            MessageGetNodes {
                nodeid: Some("node-1".into()),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.nodes[0].public_ip, "10.1.2.3");
    assert_eq!(got.nodes[0].coords, "1,1");
    assert_eq!(got.nodes[0].location, "bangalore");

    // Scavenger mode: node itself or ADMIN may set; anyone may read.
    let set = |nodeid: &str, on: bool| MessageSetScavengerStatus {
        nodeid: nodeid.into(),
        scavenger_mode_active: on,
    };
    let r = c
        .set_scavenger_status(req(set("node-1", true), &n1))
        .await
        .expect("set")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    assert_eq!(r.message, "updated scavenger_mode_status successfully");
    let r = c
        .set_scavenger_status(req(set("node-1", false), &n2))
        .await
        .expect("set other")
        .into_inner();
    assert_eq!(r.message, "permission denied: userid=node-2 and role=NODE");
    let st = c
        .get_scavenger_status(req(
            MessageGetScavengerStatus {
                nodeid: "node-1".into(),
            },
            &n2,
        ))
        .await
        .expect("get")
        .into_inner();
    assert!(st.found);
    assert!(st.scavenger_mode_active);
    let st = c
        .get_scavenger_status(req(
            MessageGetScavengerStatus {
                nodeid: "node-2".into(),
            },
            &n2,
        ))
        .await
        .expect("get")
        .into_inner();
    // The original's truthiness test: an existing node with the mode off is not "found".
    assert!(!st.found);
    assert!(!st.scavenger_mode_active);
    let st = c
        .get_scavenger_status(req(
            MessageGetScavengerStatus {
                nodeid: "ghost".into(),
            },
            &n2,
        ))
        .await
        .expect("get missing")
        .into_inner();
    assert!(!st.found);

    // delete_node: ADMIN only; removes the node's identity too.
    let del = |nodeid: &str| MessageDeleteNode {
        nodeid: nodeid.into(),
        delete_jobs: true,
    };
    let r = c
        .delete_node(req(del("node-1"), &n1))
        .await
        .expect("delete by node")
        .into_inner();
    assert_eq!(r.message, "permission denied: userid=node-1 and role=NODE");
    let r = c
        .delete_node(req(del("node-1"), &admin))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    assert_eq!(r.message, "node deleted");
    assert_invalid_token(c.get_nodes(req(MessageGetNodes::default(), &n1)).await);
    let r = c
        .delete_node(req(del("node-1"), &admin))
        .await
        .expect("delete again")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "node with given id does not exist");

    // Re-registering the id issues a working token again.
    let again = register_node(&s, "node-1").await;
    c.get_nodes(req(MessageGetNodes::default(), &again))
        .await
        .expect("re-registered node authenticates");
}

#[tokio::test]
async fn global_config_roundtrip_and_roles() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let admin = Creds::admin();
    let node = register_node(&s, "n1").await;
    let user = register_user(&s, "u1", UserRoles::User).await;
    let user_priv = register_user(&s, "u2", UserRoles::UserPriv).await;

    // Before any update: an empty reply, not an error.
    let r = c
        .get_global_config(req(MessageGetGlobalConfig {}, &admin))
        .await
        .expect("get before set")
        .into_inner();
    assert_eq!(r.config, None);

    let settings = Settings {
        datastore: Some(DatastoreSettings {
            blob: Some(BlobSettings {
                connection_string: "DefaultEndpointsProtocol=https;AccountName=x".into(),
                container: "leotest".into(),
                artifact_path: "artifacts".into(),
            }),
        }),
        weather: Some(WeatherApiSettings {
            apikey: "w-key".into(),
        }),
    };
    let r = c
        .update_global_config(req(
            MessageUpdateGlobalConfig {
                config: Some(settings.clone()),
            },
            &user,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "permission denied: userid=u1 and role=USER");

    let r = c
        .update_global_config(req(
            MessageUpdateGlobalConfig {
                config: Some(settings.clone()),
            },
            &admin,
        ))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    assert_eq!(r.message, "config updated");

    let r = c
        .get_global_config(req(MessageGetGlobalConfig {}, &node))
        .await
        .expect("node reads config")
        .into_inner();
    assert_eq!(r.config, Some(settings.clone()));

    // Plain users get an OK reply (the original answered everyone; its client retries every
    // error status forever) without the storage connection string and the weather API key.
    for who in [&user, &user_priv] {
        let r = c
            .get_global_config(req(MessageGetGlobalConfig {}, who))
            .await
            .expect("users get an OK reply")
            .into_inner()
            .config
            .expect("config");
        let blob = r.datastore.and_then(|d| d.blob).expect("blob section kept");
        assert_eq!(blob.connection_string, "");
        assert_eq!(blob.container, "leotest");
        assert_eq!(blob.artifact_path, "artifacts");
        assert_eq!(r.weather.expect("weather section kept").apikey, "");
    }

    // A partial update keeps the other section.
    let r = c
        .update_global_config(req(
            MessageUpdateGlobalConfig {
                config: Some(Settings {
                    datastore: None,
                    weather: Some(WeatherApiSettings {
                        apikey: "k2".into(),
                    }),
                }),
            },
            &admin,
        ))
        .await
        .expect("partial")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    let r = c
        .get_global_config(req(MessageGetGlobalConfig {}, &admin))
        .await
        .expect("get")
        .into_inner()
        .config
        .expect("config");
    assert_eq!(r.datastore, settings.datastore);
    assert_eq!(r.weather.expect("weather").apikey, "k2");
}

#[tokio::test]
async fn kernel_access_by_role() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let node = register_node(&s, "n1").await;
    let user = register_user(&s, "plain", UserRoles::User).await;
    register_user(&s, "priv", UserRoles::UserPriv).await;
    register_user(&s, "npriv", UserRoles::NodePriv).await;
    let ka = |id: &str| MessageKernelAccess { userid: id.into() };

    for (id, role) in [
        ("priv", "USER_PRIV"),
        ("npriv", "NODE_PRIV"),
        ("admin", "ADMIN"),
    ] {
        let r = c
            .kernel_access(req(ka(id), &node))
            .await
            .expect("kernel_access")
            .into_inner();
        assert_eq!(r.state, ResponseState::Success as i32);
        assert_eq!(
            r.message,
            format!("userid={id} role={role} has access to kernel services")
        );
    }
    for (id, role) in [("plain", "USER"), ("n1", "NODE")] {
        let r = c
            .kernel_access(req(ka(id), &Creds::admin()))
            .await
            .expect("kernel_access")
            .into_inner();
        assert_eq!(r.state, ResponseState::Failed as i32);
        assert_eq!(
            r.message,
            format!(
                "userid={id} role={role} does not have access to kernel services \
                 (higher access level required)"
            )
        );
    }
    let r = c
        .kernel_access(req(ka("ghost"), &node))
        .await
        .expect("kernel_access")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "userid=ghost does not exist");

    // Only NODE and ADMIN may ask.
    let r = c
        .kernel_access(req(ka("priv"), &user))
        .await
        .expect("kernel_access")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "permission denied: userid=plain and role=USER");
}

#[tokio::test]
async fn node_roles_cannot_administer() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let node = register_node(&s, "n1").await;
    let npriv = register_user(&s, "np", UserRoles::NodePriv).await;
    for (creds, who) in [
        (&node, "userid=n1 and role=NODE"),
        (&npriv, "userid=np and role=NODE_PRIV"),
    ] {
        let want = format!("permission denied: {who}");
        let r = c
            .register_node(req(
                MessageRegisterNode {
                    node: Some(Node {
                        nodeid: "x".into(),
                        ..Default::default()
                    }),
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(r.message, want);
        let r = c
            .update_global_config(req(MessageUpdateGlobalConfig { config: None }, creds))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(r.message, want);
        let r = c
            .register_user(req(
                MessageRegisterUser {
                    id: "x".into(),
                    ..Default::default()
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(r.message, want);
    }
    // NODE_PRIV is not NODE: it cannot toggle scavenger mode of a node with its id.
    let r = c
        .set_scavenger_status(req(
            MessageSetScavengerStatus {
                nodeid: "np".into(),
                scavenger_mode_active: true,
            },
            &npriv,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.message, "permission denied: userid=np and role=NODE_PRIV");
}

#[tokio::test]
async fn restart_keeps_data_and_reapplies_admin_token() {
    let mut s = Orchestrator::start(&[]).await;
    let alice = register_user(&s, "alice", UserRoles::UserPriv).await;
    register_node(&s, "node-9").await;
    s.admin_token = "rotated-admin-token".to_string();
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
        .expect("alice survives restart")
        .into_inner();
    assert_eq!(me.role, UserRoles::UserPriv as i32);
    let nodes = c
        .get_nodes(req(
            MessageGetNodes::default(),
            &Creds::token("admin", "rotated-admin-token"),
        ))
        .await
        .expect("new admin token")
        .into_inner();
    assert_eq!(nodes.nodes.len(), 1);
    assert_invalid_token(
        c.get_nodes(req(MessageGetNodes::default(), &Creds::admin()))
            .await,
    );
}

#[tokio::test]
async fn health_and_reflection_work_without_credentials() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let s = Orchestrator::start(&[]).await;
    let ch = s.try_channel().await.expect("channel");
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "unary.LeotestOrchestrator".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let mut refl = ServerReflectionClient::new(ch);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let first = stream.next().await.expect("one reply").expect("reply ok");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"unary.LeotestOrchestrator".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn hostile_input_is_refused_without_crashing() {
    let mut s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let admin = Creds::admin();
    let big = "x".repeat(1024 * 1024);

    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: big.clone(),
                name: "n".into(),
                role: 1,
                team: "t".into(),
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "invalid id: longer than 256 bytes");
    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: "ok".into(),
                name: big.clone(),
                role: 1,
                team: "t".into(),
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    // Names are free text, bounded only by the message size (the original stored anything).
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    let got = c
        .get_user(req(
            MessageGetUser {
                userid: "ok".into(),
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(got.name.len(), big.len());
    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: String::new(),
                name: "n".into(),
                role: 1,
                team: "t".into(),
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.message, "invalid id: must not be empty");
    for role in [5, -1, i32::MAX] {
        let r = c
            .register_user(req(
                MessageRegisterUser {
                    id: "r".into(),
                    name: "n".into(),
                    role,
                    team: "t".into(),
                },
                &admin,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(r.state, ResponseState::Failed as i32);
        assert_eq!(r.message, format!("invalid role: {role}"));
        let r = c
            .modify_user(req(
                MessageModifyUser {
                    id: "admin".into(),
                    name: "n".into(),
                    role,
                    team: "t".into(),
                },
                &admin,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(r.state, ResponseState::Failed as i32);
    }
    let r = c
        .get_user(req(
            MessageGetUser {
                userid: big.clone(),
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert!(!r.exists);
    let r = c
        .register_node(req(MessageRegisterNode { node: None }, &admin))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    assert_eq!(r.message, "invalid nodeid: must not be empty");
    let r = c
        .register_node(req(
            MessageRegisterNode {
                node: Some(Node {
                    nodeid: "n".into(),
                    last_active: Some("not a date".into()),
                    ..Default::default()
                }),
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.message, "invalid last_active: not a date");
    let r = c
        .update_node(req(
            MessageUpdateNode {
                nodeid: big.clone(),
                location: Some(big.clone()),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    let r = c
        .get_nodes(req(
            MessageGetNodes {
                nodeid: Some(big.clone()),
                active: Some(true),
                active_thres: Some(i32::MIN),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert!(r.nodes.is_empty());
    let r = c
        .kernel_access(req(
            MessageKernelAccess {
                userid: String::new(),
            },
            &admin,
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.message, "userid= does not exist");
    let r = c
        .delete_node(req(MessageDeleteNode::default(), &admin))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.state, ResponseState::Failed as i32);
    let r = c
        .report_heartbeat(req(MessageHeartbeat::default(), &admin))
        .await
        .expect("reply")
        .into_inner();
    assert!(!r.received);

    // Over the message size limit: refused by the transport, server unaffected.
    let huge = "y".repeat(5 * 1024 * 1024);
    let err = c
        .get_user(req(MessageGetUser { userid: huge }, &admin))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange);

    assert!(s.is_running(), "server must survive hostile input");
    c.get_user(req(
        MessageGetUser {
            userid: "admin".into(),
        },
        &admin,
    ))
    .await
    .expect("still serving");
}

#[tokio::test]
async fn tokens_never_reach_the_log() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let alice = register_user(&s, "alice", UserRoles::User).await;
    let node = register_node(&s, "n1").await;
    let Creds::Token(_, alice_token) = &alice else {
        unreachable!()
    };
    let Creds::Token(_, node_token) = &node else {
        unreachable!()
    };
    // Failed attempts with a secret-looking token must not be logged either.
    let _ = c
        .get_user(req(
            MessageGetUser::default(),
            &Creds::token("alice", "wrong-secret-2f9a"),
        ))
        .await;
    let _ = c
        .get_user(req(
            MessageGetUser::default(),
            &Creds::Jwt("eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyaWQiOiJhIn0.c2ln".into()),
        ))
        .await;
    c.get_nodes(req(MessageGetNodes::default(), &node))
        .await
        .expect("node call");
    let log = s.log();
    assert!(log.contains("register_user"), "debug log is being written");
    for secret in [
        ADMIN_TOKEN,
        alice_token.as_str(),
        node_token.as_str(),
        "wrong-secret-2f9a",
        "eyJhbGciOiJIUzI1NiJ9",
    ] {
        assert!(!log.contains(secret), "log leaks {secret}");
    }
}

#[tokio::test]
async fn role_table_for_every_non_admin_role() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    register_node(&s, "victim-node").await;
    register_user(&s, "victim", UserRoles::User).await;
    let roles = [
        (register_user(&s, "r-user", UserRoles::User).await, "USER"),
        (
            register_user(&s, "r-upriv", UserRoles::UserPriv).await,
            "USER_PRIV",
        ),
        (register_node(&s, "r-node").await, "NODE"),
        (
            register_user(&s, "r-npriv", UserRoles::NodePriv).await,
            "NODE_PRIV",
        ),
    ];
    for (creds, role) in &roles {
        let Creds::Token(id, _) = creds else {
            unreachable!()
        };
        let denied = format!("permission denied: userid={id} and role={role}");
        let m = c
            .register_user(req(
                MessageRegisterUser {
                    id: "new".into(),
                    name: "n".into(),
                    role: 1,
                    team: "t".into(),
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(m.message, denied, "register_user as {role}");
        let m = c
            .modify_user(req(
                MessageModifyUser {
                    id: "victim".into(),
                    name: "n".into(),
                    role: 0,
                    team: "t".into(),
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(m.message, denied, "modify_user as {role}");
        let m = c
            .delete_user(req(
                MessageDeleteUser {
                    userid: "victim".into(),
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(m.message, denied, "delete_user as {role}");
        let m = c
            .delete_node(req(
                MessageDeleteNode {
                    nodeid: "victim-node".into(),
                    delete_jobs: false,
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(m.message, denied, "delete_node as {role}");
        let m = c
            .update_node(req(
                MessageUpdateNode {
                    nodeid: "victim-node".into(),
                    name: Some("pwned".into()),
                    ..Default::default()
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(m.message, denied, "update_node as {role}");
        let m = c
            .set_scavenger_status(req(
                MessageSetScavengerStatus {
                    nodeid: "victim-node".into(),
                    scavenger_mode_active: true,
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(m.message, denied, "set_scavenger_status as {role}");

        let ka = c
            .kernel_access(req(
                MessageKernelAccess {
                    userid: "r-upriv".into(),
                },
                creds,
            ))
            .await
            .expect("reply")
            .into_inner();
        if *role == "NODE" {
            assert_eq!(ka.state, ResponseState::Success as i32);
        } else {
            assert_eq!(ka.message, denied, "kernel_access as {role}");
        }
        // Every role gets an OK reply (the original client retries every error status).
        c.get_global_config(req(MessageGetGlobalConfig {}, creds))
            .await
            .expect("get_global_config");
        // Reads every authenticated role may do.
        c.get_user(req(
            MessageGetUser {
                userid: "victim".into(),
            },
            creds,
        ))
        .await
        .expect("get_user");
        c.get_nodes(req(MessageGetNodes::default(), creds))
            .await
            .expect("get_nodes");
        c.get_scavenger_status(req(
            MessageGetScavengerStatus {
                nodeid: "victim-node".into(),
            },
            creds,
        ))
        .await
        .expect("get_scavenger_status");
    }
    // Nothing was changed by the refused calls.
    let v = c
        .get_user(req(
            MessageGetUser {
                userid: "victim".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("victim")
        .into_inner();
    assert_eq!(v.role, UserRoles::User as i32);
    let st = c
        .get_scavenger_status(req(
            MessageGetScavengerStatus {
                nodeid: "victim-node".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("scavenger")
        .into_inner();
    // Mode off answers found=false, as the original (see get_scavenger_status).
    assert!(!st.found && !st.scavenger_mode_active);
}
