//! The real orchestrator binary over TLS: users, nodes, config, kernel access, roles,
//! authentication failures, restart, health/reflection and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_proto::unary::*;
use leotest_test_support::calls::{register_node_reply, user};
use leotest_test_support::{token_from_message, As, Creds, Orchestrator, ADMIN_TOKEN};
use sha2::{Digest, Sha256};
use tonic::Code;

const OK: i32 = ResponseState::Success as i32;
const FAILED: i32 = ResponseState::Failed as i32;

fn sha_token(a: &str, b: &str, c: &str) -> String {
    hex::encode(Sha256::digest(format!("{a}{b}{c}").as_bytes()))
}

/// Registers a node through the admin; the reply must carry the token where the original
/// puts it.
async fn register_node(s: &Orchestrator, id: &str) -> Creds {
    let r = register_node_reply(s, id).await;
    assert_eq!(r.state, OK, "{}", r.message);
    assert!(r
        .message
        .starts_with("node successfully registered access_token="));
    Creds::token(id, &token_from_message(&r.message))
}

fn assert_invalid_token<T: std::fmt::Debug>(r: Result<T, tonic::Status>) {
    let status = r.expect_err("must be refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "Invalid token");
}

/// A `modify_user` of `id`.
fn modify(id: &str, name: &str, role: i32, team: &str) -> MessageModifyUser {
    MessageModifyUser {
        id: id.into(),
        name: name.into(),
        role,
        team: team.into(),
    }
}

/// A `register_user` with free-form fields (hostile-input and role tests).
fn register(id: &str, name: &str, role: i32, team: &str) -> MessageRegisterUser {
    MessageRegisterUser {
        id: id.into(),
        name: name.into(),
        role,
        team: team.into(),
    }
}

fn node_msg(node: Node) -> MessageRegisterNode {
    MessageRegisterNode { node: Some(node) }
}

fn scavenger(nodeid: &str, on: bool) -> MessageSetScavengerStatus {
    MessageSetScavengerStatus {
        nodeid: nodeid.into(),
        scavenger_mode_active: on,
    }
}

fn delete_node(nodeid: &str, delete_jobs: bool) -> MessageDeleteNode {
    MessageDeleteNode {
        nodeid: nodeid.into(),
        delete_jobs,
    }
}

#[tokio::test]
async fn admin_is_bootstrapped_and_static_tokens_authenticate() {
    let s = Orchestrator::start(&[]).await;
    let admin = As::new(&s.client().await, &Creds::admin());
    let r = admin.get_user("admin").await;
    assert!(r.exists);
    assert_eq!(r.id, "admin");
    assert_eq!(r.name, "LEOScope Admin");
    assert_eq!(r.team, "LeoScope MSR-India");
    assert_eq!(r.role, UserRoles::Admin as i32);

    let r = admin.get_user("nobody").await;
    assert!(!r.exists);
    assert_eq!(r.role, UserRoles::User as i32);
    assert_eq!(r.id, "");
}

#[tokio::test]
async fn security_bad_credentials_get_invalid_token() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
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
    ] {
        assert_invalid_token(As::new(&c, &creds).try_get_user("admin").await);
    }
    // A JWT while JWTs are off: the same code and words, and why.
    let st = As::new(&c, &Creds::Jwt("not.a.jwt".into()))
        .try_get_user("admin")
        .await
        .expect_err("JWT while off");
    assert_eq!(st.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        st.message(),
        "Invalid token: JWT authentication is off on this server (--jwt-algo)"
    );
    // userid without token
    let mut r = tonic::Request::new(MessageGetUser {
        userid: "admin".into(),
    });
    r.metadata_mut()
        .insert("x-leotest-userid", "admin".parse().expect("ascii"));
    assert_invalid_token(c.clone().get_user(r).await);
    // Every RPC is behind the layer, including those of the next issue.
    assert_invalid_token(
        As::new(&c, &Creds::None)
            .try_schedule_job(MessageScheduleJob::default())
            .await,
    );
    assert_invalid_token(
        As::new(&c, &Creds::token("admin", "x"))
            .try_get_tasks(())
            .await,
    );
}

#[tokio::test]
async fn users_lifecycle_and_admin_only_rules() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    let admin = As::new(&c, &Creds::admin());

    let alice_creds = user(&s, "alice", UserRoles::User).await;
    let alice_token = alice_creds.secret();
    // Not the original's derivable sha256(id + name + team): 64 random hex digits.
    assert_ne!(alice_token, sha_token("alice", "alice name", "team-x"));
    assert_eq!(alice_token.len(), 64);
    assert!(alice_token.bytes().all(|b| b.is_ascii_hexdigit()));
    let alice = As::new(&c, &alice_creds);

    // The new user authenticates and sees its own profile.
    let me = alice.get_user("alice").await;
    assert!(me.exists);
    assert_eq!(me.role, UserRoles::User as i32);
    assert_eq!(me.team, "team-x");

    // Duplicate id.
    let dup = admin
        .register_user(register("alice", "other", UserRoles::Admin as i32, "t"))
        .await;
    assert_eq!(dup.state, FAILED);
    assert_eq!(dup.message, "user with given id already exists");

    // Non-admins are refused with the original's text.
    let want = "permission denied: userid=alice and role=USER";
    let denied = alice
        .register_user(register("mallory", "m", UserRoles::Admin as i32, "t"))
        .await;
    assert_eq!(denied.state, FAILED);
    assert_eq!(denied.message, want);
    let r = alice
        .modify_user(modify("alice", "x", UserRoles::Admin as i32, "t"))
        .await;
    assert_eq!(r.message, want);
    let r = alice.delete_user("admin").await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, want);

    // modify_user keeps the token (the original erased it).
    let r = admin
        .modify_user(modify(
            "alice",
            "Alice Priv",
            UserRoles::UserPriv as i32,
            "team-y",
        ))
        .await;
    assert_eq!(r.state, OK);
    assert_eq!(r.message, "user updated");
    let me = alice.get_user("alice").await;
    assert_eq!(me.name, "Alice Priv");
    assert_eq!(me.role, UserRoles::UserPriv as i32);

    let r = admin
        .modify_user(modify("ghost", "g", UserRoles::User as i32, "t"))
        .await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "user with given id does not exist");

    // Delete, after which the token stops working.
    let r = admin.delete_user("alice").await;
    assert_eq!(r.state, OK);
    assert_eq!(r.message, "user deleted");
    assert_invalid_token(alice.try_get_user("alice").await);
    let r = admin.delete_user("alice").await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "user with given id does not exist");
}

#[tokio::test]
async fn nodes_heartbeat_update_scavenger_and_delete() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    let admin = As::new(&c, &Creds::admin());
    let n1_creds = register_node(&s, "node-1").await;
    let n1 = As::new(&c, &n1_creds);
    let n2 = As::new(&c, &register_node(&s, "node-2").await);
    let n1_token = n1_creds.secret();
    assert_ne!(n1_token, sha_token("node-1", "node-1-name", "roof"));
    assert_eq!(n1_token.len(), 64);

    // The node's identity is a NODE user.
    assert_eq!(n1.get_user("node-1").await.role, UserRoles::Node as i32);

    let dup = admin
        .register_node(node_msg(Node {
            nodeid: "node-1".into(),
            ..Default::default()
        }))
        .await;
    assert_eq!(dup.state, FAILED);
    assert_eq!(dup.message, "node with the given id exists");

    // Nobody is active until a heartbeat arrives (registration default 2020-01-01).
    let active = MessageGetNodes {
        active: Some(true),
        active_thres: None,
        ..Default::default()
    };
    assert!(admin.get_nodes(active.clone()).await.nodes.is_empty());

    // Only the node itself can mark itself alive.
    assert!(!admin.report_heartbeat("node-1").await.received);
    assert!(n1.report_heartbeat("node-1").await.received);
    let r = n2.get_nodes(active).await;
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
    let all = admin.get_nodes(()).await;
    assert_eq!(all.nodes.len(), 2);
    let node2 = all.nodes.iter().find(|n| n.nodeid == "node-2").expect("n2");
    assert_eq!(node2.last_active.as_deref(), Some("2020-01-01 00:00:00"));
    let by_name = admin
        .get_nodes(MessageGetNodes {
            name: Some("node-2-name".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(by_name.nodes.len(), 1);
    let none = admin
        .get_nodes(MessageGetNodes {
            location: Some("mars".into()),
            ..Default::default()
        })
        .await;
    assert!(none.nodes.is_empty());

    // update_node: the node itself or ADMIN.
    let upd = |nodeid: &str| MessageUpdateNode {
        nodeid: nodeid.into(),
        public_ip: Some("10.1.2.3".into()),
        coords: Some("1,1".into()),
        ..Default::default()
    };
    let r = n1.update_node(upd("node-1")).await;
    assert_eq!(r.state, OK);
    assert_eq!(r.message, "updated node successfully");
    let r = n2.update_node(upd("node-1")).await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "permission denied: userid=node-2 and role=NODE");
    let r = admin.update_node(upd("ghost")).await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "node with given id does not exist");
    let got = admin
        .get_nodes(MessageGetNodes {
            nodeid: Some("node-1".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(got.nodes[0].public_ip, "10.1.2.3");
    assert_eq!(got.nodes[0].coords, "1,1");
    assert_eq!(got.nodes[0].location, "bangalore");

    // Scavenger mode: node itself or ADMIN may set; anyone may read.
    let r = n1.set_scavenger_status(scavenger("node-1", true)).await;
    assert_eq!(r.state, OK);
    assert_eq!(r.message, "updated scavenger_mode_status successfully");
    let r = n2.set_scavenger_status(scavenger("node-1", false)).await;
    assert_eq!(r.message, "permission denied: userid=node-2 and role=NODE");
    let st = n2.get_scavenger_status("node-1").await;
    assert!(st.found);
    assert!(st.scavenger_mode_active);
    let st = n2.get_scavenger_status("node-2").await;
    // The original's truthiness test: an existing node with the mode off is not "found".
    assert!(!st.found);
    assert!(!st.scavenger_mode_active);
    assert!(!n2.get_scavenger_status("ghost").await.found);

    // delete_node: ADMIN only; removes the node's identity too.
    let r = n1.delete_node(delete_node("node-1", true)).await;
    assert_eq!(r.message, "permission denied: userid=node-1 and role=NODE");
    let r = admin.delete_node(delete_node("node-1", true)).await;
    assert_eq!(r.state, OK);
    assert_eq!(r.message, "node deleted");
    assert_invalid_token(n1.try_get_nodes(()).await);
    let r = admin.delete_node(delete_node("node-1", true)).await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "node with given id does not exist");

    // Re-registering the id issues a working token again.
    let again = As::new(&c, &register_node(&s, "node-1").await);
    again
        .try_get_nodes(())
        .await
        .expect("re-registered node authenticates");
}

#[tokio::test]
async fn global_config_roundtrip_and_roles() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    let admin = As::new(&c, &Creds::admin());
    let node = As::new(&c, &register_node(&s, "n1").await);
    let plain = As::new(&c, &user(&s, "u1", UserRoles::User).await);
    let user_priv = As::new(&c, &user(&s, "u2", UserRoles::UserPriv).await);

    // Before any update: an empty reply, not an error.
    assert_eq!(admin.get_global_config(()).await.config, None);

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
    let update = |config: Settings| MessageUpdateGlobalConfig {
        config: Some(config),
    };
    let r = plain.update_global_config(update(settings.clone())).await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "permission denied: userid=u1 and role=USER");

    let r = admin.update_global_config(update(settings.clone())).await;
    assert_eq!(r.state, OK);
    assert_eq!(r.message, "config updated");

    let r = node.get_global_config(()).await;
    assert_eq!(r.config, Some(settings.clone()));

    // Plain users get an OK reply (the original answered everyone; its client retries every
    // error status forever) without the storage connection string and the weather API key.
    for who in [&plain, &user_priv] {
        let r = who.get_global_config(()).await.config.expect("config");
        let blob = r.datastore.and_then(|d| d.blob).expect("blob section kept");
        assert_eq!(blob.connection_string, "");
        assert_eq!(blob.container, "leotest");
        assert_eq!(blob.artifact_path, "artifacts");
        assert_eq!(r.weather.expect("weather section kept").apikey, "");
    }

    // A partial update keeps the other section.
    let r = admin
        .update_global_config(update(Settings {
            datastore: None,
            weather: Some(WeatherApiSettings {
                apikey: "k2".into(),
            }),
        }))
        .await;
    assert_eq!(r.state, OK);
    let r = admin.get_global_config(()).await.config.expect("config");
    assert_eq!(r.datastore, settings.datastore);
    assert_eq!(r.weather.expect("weather").apikey, "k2");
}

#[tokio::test]
async fn security_kernel_access_by_role() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    let node = As::new(&c, &register_node(&s, "n1").await);
    let plain = As::new(&c, &user(&s, "plain", UserRoles::User).await);
    user(&s, "priv", UserRoles::UserPriv).await;
    user(&s, "npriv", UserRoles::NodePriv).await;

    for (id, role) in [
        ("priv", "USER_PRIV"),
        ("npriv", "NODE_PRIV"),
        ("admin", "ADMIN"),
    ] {
        let r = node.kernel_access(id).await;
        assert_eq!(r.state, OK);
        assert_eq!(
            r.message,
            format!("userid={id} role={role} has access to kernel services")
        );
    }
    let admin = As::new(&c, &Creds::admin());
    for (id, role) in [("plain", "USER"), ("n1", "NODE")] {
        let r = admin.kernel_access(id).await;
        assert_eq!(r.state, FAILED);
        assert_eq!(
            r.message,
            format!(
                "userid={id} role={role} does not have access to kernel services \
                 (higher access level required)"
            )
        );
    }
    let r = node.kernel_access("ghost").await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "userid=ghost does not exist");

    // Only NODE and ADMIN may ask.
    let r = plain.kernel_access("priv").await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "permission denied: userid=plain and role=USER");
}

#[tokio::test]
async fn security_node_roles_cannot_administer() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    let node = As::new(&c, &register_node(&s, "n1").await);
    let npriv = As::new(&c, &user(&s, "np", UserRoles::NodePriv).await);
    for (who, text) in [
        (&node, "userid=n1 and role=NODE"),
        (&npriv, "userid=np and role=NODE_PRIV"),
    ] {
        let want = format!("permission denied: {text}");
        let r = who
            .register_node(node_msg(Node {
                nodeid: "x".into(),
                ..Default::default()
            }))
            .await;
        assert_eq!(r.message, want);
        let r = who
            .update_global_config(MessageUpdateGlobalConfig { config: None })
            .await;
        assert_eq!(r.message, want);
        let r = who
            .register_user(MessageRegisterUser {
                id: "x".into(),
                ..Default::default()
            })
            .await;
        assert_eq!(r.message, want);
    }
    // NODE_PRIV is not NODE: it cannot toggle scavenger mode of a node with its id.
    let r = npriv.set_scavenger_status(scavenger("np", true)).await;
    assert_eq!(r.message, "permission denied: userid=np and role=NODE_PRIV");
}

#[tokio::test]
async fn restart_keeps_data_and_reapplies_admin_token() {
    let mut s = Orchestrator::start(&[]).await;
    let alice = user(&s, "alice", UserRoles::UserPriv).await;
    register_node(&s, "node-9").await;
    s.admin_token = "rotated-admin-token".to_string();
    s.restart().await;

    let c = s.client().await;
    let me = As::new(&c, &alice).get_user("alice").await;
    assert_eq!(me.role, UserRoles::UserPriv as i32);
    let nodes = As::new(&c, &Creds::token("admin", "rotated-admin-token"))
        .get_nodes(())
        .await;
    assert_eq!(nodes.nodes.len(), 1);
    assert_invalid_token(As::new(&c, &Creds::admin()).try_get_nodes(()).await);
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
async fn security_hostile_input_is_refused_without_crashing() {
    let mut s = Orchestrator::start(&[]).await;
    let admin = As::new(&s.client().await, &Creds::admin());
    let big = "x".repeat(1024 * 1024);

    let r = admin.register_user(register(&big, "n", 1, "t")).await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "invalid id: longer than 256 bytes");
    let r = admin.register_user(register("ok", &big, 1, "t")).await;
    // Names are free text, bounded only by the message size (the original stored anything).
    assert_eq!(r.state, OK, "{}", r.message);
    assert_eq!(admin.get_user("ok").await.name.len(), big.len());
    let r = admin.register_user(register("", "n", 1, "t")).await;
    assert_eq!(r.message, "invalid id: must not be empty");
    for role in [5, -1, i32::MAX] {
        let r = admin.register_user(register("r", "n", role, "t")).await;
        assert_eq!(r.state, FAILED);
        assert_eq!(r.message, format!("invalid role: {role}"));
        let r = admin.modify_user(modify("admin", "n", role, "t")).await;
        assert_eq!(r.state, FAILED);
    }
    assert!(!admin.get_user(big.as_str()).await.exists);
    let r = admin
        .register_node(MessageRegisterNode { node: None })
        .await;
    assert_eq!(r.state, FAILED);
    assert_eq!(r.message, "invalid nodeid: must not be empty");
    let r = admin
        .register_node(node_msg(Node {
            nodeid: "n".into(),
            last_active: Some("not a date".into()),
            ..Default::default()
        }))
        .await;
    assert_eq!(r.message, "invalid last_active: not a date");
    let r = admin
        .update_node(MessageUpdateNode {
            nodeid: big.clone(),
            location: Some(big.clone()),
            ..Default::default()
        })
        .await;
    assert_eq!(r.state, FAILED);
    let r = admin
        .get_nodes(MessageGetNodes {
            nodeid: Some(big.clone()),
            active: Some(true),
            active_thres: Some(i32::MIN),
            ..Default::default()
        })
        .await;
    assert!(r.nodes.is_empty());
    assert_eq!(
        admin.kernel_access("").await.message,
        "userid= does not exist"
    );
    let r = admin.delete_node(MessageDeleteNode::default()).await;
    assert_eq!(r.state, FAILED);
    assert!(
        !admin
            .report_heartbeat(MessageHeartbeat::default())
            .await
            .received
    );

    // Over the message size limit: refused by the transport, server unaffected.
    let huge = "y".repeat(5 * 1024 * 1024);
    let err = admin
        .try_get_user(huge.as_str())
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange);

    assert!(s.is_running(), "server must survive hostile input");
    admin.try_get_user("admin").await.expect("still serving");
}

#[tokio::test]
async fn security_tokens_never_reach_the_log() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    let alice = user(&s, "alice", UserRoles::User).await;
    let node = register_node(&s, "n1").await;
    // Failed attempts with a secret-looking token must not be logged either.
    let _ = As::new(&c, &Creds::token("alice", "wrong-secret-2f9a"))
        .try_get_user(MessageGetUser::default())
        .await;
    let _ = As::new(
        &c,
        &Creds::Jwt("eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyaWQiOiJhIn0.c2ln".into()),
    )
    .try_get_user(MessageGetUser::default())
    .await;
    As::new(&c, &node).get_nodes(()).await;
    let log = s.log();
    assert!(log.contains("register_user"), "debug log is being written");
    for secret in [
        ADMIN_TOKEN,
        alice.secret(),
        node.secret(),
        "wrong-secret-2f9a",
        "eyJhbGciOiJIUzI1NiJ9",
    ] {
        assert!(!log.contains(secret), "log leaks {secret}");
    }
}

#[tokio::test]
async fn security_role_table_for_every_non_admin_role() {
    let s = Orchestrator::start(&[]).await;
    let c = s.client().await;
    register_node(&s, "victim-node").await;
    user(&s, "victim", UserRoles::User).await;
    let roles = [
        (user(&s, "r-user", UserRoles::User).await, "USER"),
        (user(&s, "r-upriv", UserRoles::UserPriv).await, "USER_PRIV"),
        (register_node(&s, "r-node").await, "NODE"),
        (user(&s, "r-npriv", UserRoles::NodePriv).await, "NODE_PRIV"),
    ];
    for (creds, role) in &roles {
        let who = As::new(&c, creds);
        let denied = format!("permission denied: userid={} and role={role}", creds.who());
        let m = who.register_user(register("new", "n", 1, "t")).await;
        assert_eq!(m.message, denied, "register_user as {role}");
        let m = who.modify_user(modify("victim", "n", 0, "t")).await;
        assert_eq!(m.message, denied, "modify_user as {role}");
        let m = who.delete_user("victim").await;
        assert_eq!(m.message, denied, "delete_user as {role}");
        let m = who.delete_node(delete_node("victim-node", false)).await;
        assert_eq!(m.message, denied, "delete_node as {role}");
        let m = who
            .update_node(MessageUpdateNode {
                nodeid: "victim-node".into(),
                name: Some("pwned".into()),
                ..Default::default()
            })
            .await;
        assert_eq!(m.message, denied, "update_node as {role}");
        let m = who
            .set_scavenger_status(scavenger("victim-node", true))
            .await;
        assert_eq!(m.message, denied, "set_scavenger_status as {role}");

        let ka = who.kernel_access("r-upriv").await;
        if *role == "NODE" {
            assert_eq!(ka.state, OK);
        } else {
            assert_eq!(ka.message, denied, "kernel_access as {role}");
        }
        // Every role gets an OK reply (the original client retries every error status).
        who.get_global_config(()).await;
        // Reads every authenticated role may do.
        who.get_user("victim").await;
        who.get_nodes(()).await;
        who.get_scavenger_status("victim-node").await;
    }
    // Nothing was changed by the refused calls.
    let admin = As::new(&c, &Creds::admin());
    assert_eq!(admin.get_user("victim").await.role, UserRoles::User as i32);
    let st = admin.get_scavenger_status("victim-node").await;
    // Mode off answers found=false, as the original (see get_scavenger_status).
    assert!(!st.found && !st.scavenger_mode_active);
}
