//! Issue 16: a node's identity (its NODE user) next to a person's account of the same id,
//! across two orchestrator replicas on one MongoDB database. Each replica's view of users is
//! up to 0.5 s old (the user cache), so a check on one replica followed by a write must never
//! decide what another replica's fresh write becomes: `register_node` must not overwrite a
//! person registered meanwhile on the other replica, and `delete_node` must not delete one.
//! Real binaries over TLS; skipped without `LEOTEST_TEST_MONGO_URI` (fails under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_proto::unary::*;
use leotest_proto::LeotestOrchestratorClient;
use leotest_test_support::calls::authenticates;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{req, Creds, Orchestrator};
use tonic::transport::Channel;

type Client = LeotestOrchestratorClient<Channel>;

fn ok(state: i32) -> bool {
    state == ResponseState::Success as i32
}

fn token_of(message: &str) -> String {
    message
        .rsplit("access_token=")
        .next()
        .unwrap_or_default()
        .to_string()
}

async fn register_node(c: &mut Client, nodeid: &str) -> (bool, String) {
    let r = c
        .register_node(req(
            MessageRegisterNode {
                node: Some(Node {
                    nodeid: nodeid.into(),
                    name: format!("{nodeid}-name"),
                    description: "roof".into(),
                    ..Default::default()
                }),
            },
            &Creds::admin(),
        ))
        .await
        .expect("register_node")
        .into_inner();
    (ok(r.state), r.message)
}

async fn register_person(c: &mut Client, id: &str) -> Creds {
    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: id.into(),
                name: "Person".into(),
                role: UserRoles::User as i32,
                team: "t".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("register_user")
        .into_inner();
    assert!(ok(r.state), "register_user {id}: {}", r.message);
    Creds::token(id, &token_of(&r.message))
}

/// What `get_user` of `id` says on this replica (and it puts the answer in its cache).
async fn role_seen(c: &mut Client, id: &str) -> Option<i32> {
    let r = c
        .get_user(req(MessageGetUser { userid: id.into() }, &Creds::admin()))
        .await
        .expect("get_user")
        .into_inner();
    r.exists.then_some(r.role)
}

/// The role stored for `id`, read from the database itself (no replica's cache).
async fn stored_roles(db: &TestMongo, id: &str) -> Vec<i32> {
    use futures::TryStreamExt;
    let client = mongodb::Client::with_uri_str(&db.uri)
        .await
        .expect("client");
    let docs: Vec<bson::Document> = client
        .database(&db.name)
        .collection::<bson::Document>("users")
        .find(bson::doc! { "id": id })
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("collect");
    docs.iter()
        .filter_map(|d| match d.get("role") {
            Some(bson::Bson::Int32(r)) => Some(*r),
            Some(bson::Bson::Int64(r)) => Some(*r as i32),
            _ => None,
        })
        .collect()
}

async fn node_exists(c: &mut Client, nodeid: &str) -> bool {
    let r = c
        .get_nodes(req(
            MessageGetNodes {
                nodeid: Some(nodeid.into()),
                ..Default::default()
            },
            &Creds::admin(),
        ))
        .await
        .expect("get_nodes")
        .into_inner();
    !r.nodes.is_empty()
}

async fn replicas(db: &TestMongo) -> (Orchestrator, Orchestrator, Client, Client) {
    let args = db.server_args();
    let a = Orchestrator::start(&args).await;
    let b = Orchestrator::start(&args).await;
    let (ca, cb) = (a.client().await, b.client().await);
    (a, b, ca, cb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_node_never_overwrites_a_person_registered_on_the_other_replica() {
    let Some(db) = TestMongo::fresh("nodeid_reg") else {
        return;
    };
    let (_a, _b, mut ca, mut cb) = replicas(&db).await;
    for i in 0..5 {
        let id = format!("shared{i}");
        // A has just seen that nobody holds the id ...
        assert_eq!(role_seen(&mut ca, &id).await, None);
        // ... B registers a person with it ...
        let person = register_person(&mut cb, &id).await;
        // ... and A, within its cache's lifetime, is asked to register a node with it.
        let (registered, message) = register_node(&mut ca, &id).await;
        assert!(
            !registered,
            "{id}: node registered over a person: {message}"
        );
        assert_eq!(message, "user with given id already exists");
        assert_eq!(
            stored_roles(&db, &id).await,
            vec![UserRoles::User as i32],
            "{id}: the person's account is intact"
        );
        assert!(
            authenticates(&mut cb, &person).await,
            "{id}: the person's token works"
        );
        assert!(
            !node_exists(&mut ca, &id).await,
            "{id}: the refused registration left no node"
        );
    }
    // A free id still registers, and its token works on the other replica.
    let (registered, message) = register_node(&mut ca, "free-node").await;
    assert!(registered, "{message}");
    let node = Creds::token("free-node", &token_of(&message));
    assert!(authenticates(&mut cb, &node).await);
    assert_eq!(
        stored_roles(&db, "free-node").await,
        vec![UserRoles::Node as i32]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_node_never_deletes_a_person_registered_on_the_other_replica() {
    let Some(db) = TestMongo::fresh("nodeid_del") else {
        return;
    };
    let (_a, _b, mut ca, mut cb) = replicas(&db).await;
    for i in 0..5 {
        let id = format!("shared{i}");
        let (registered, message) = register_node(&mut ca, &id).await;
        assert!(registered, "{id}: {message}");
        // A has just seen the node's identity ...
        assert_eq!(role_seen(&mut ca, &id).await, Some(UserRoles::Node as i32));
        // ... B replaces it with a person's account ...
        let r = cb
            .delete_user(req(
                MessageDeleteUser { userid: id.clone() },
                &Creds::admin(),
            ))
            .await
            .expect("delete_user")
            .into_inner();
        assert!(ok(r.state), "{}", r.message);
        let person = register_person(&mut cb, &id).await;
        // ... and A, within its cache's lifetime, deletes the node.
        let r = ca
            .delete_node(req(
                MessageDeleteNode {
                    nodeid: id.clone(),
                    delete_jobs: true,
                },
                &Creds::admin(),
            ))
            .await
            .expect("delete_node")
            .into_inner();
        assert!(ok(r.state), "{}", r.message);
        assert!(!node_exists(&mut ca, &id).await, "{id}: node deleted");
        assert_eq!(
            stored_roles(&db, &id).await,
            vec![UserRoles::User as i32],
            "{id}: the person's account survives the node's deletion"
        );
        assert!(
            authenticates(&mut cb, &person).await,
            "{id}: the person's token works"
        );
    }
    // The node's own identity does go with it.
    let (registered, message) = register_node(&mut ca, "gone-node").await;
    assert!(registered, "{message}");
    let node = Creds::token("gone-node", &token_of(&message));
    let r = cb
        .delete_node(req(
            MessageDeleteNode {
                nodeid: "gone-node".into(),
                delete_jobs: false,
            },
            &Creds::admin(),
        ))
        .await
        .expect("delete_node")
        .into_inner();
    assert!(ok(r.state), "{}", r.message);
    assert!(stored_roles(&db, "gone-node").await.is_empty());
    assert!(
        !authenticates(&mut cb, &node).await,
        "deleted node's token refused"
    );
}
