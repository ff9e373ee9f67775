//! Static tokens on the real binary: the security review's derivation attack fails, no reply
//! carries a stored token, tokens the original stored keep working (and are reported at
//! start-up and by `tokens audit`), `tokens rotate` replaces them, new tokens are stored as
//! `--token-storage` says, and re-registering a node keeps its existing credentials working.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::path::Path;
use std::process::{Command, Output};

use leotest_orchestrator::store::embedded::EmbeddedStore;
use leotest_orchestrator::store::{Role, Store, User};
use leotest_proto::unary::*;
use leotest_test_support::calls::*;
use leotest_test_support::mongo::TestMongo;
use leotest_test_support::{orchestrator_bin, req, token_from_message, As, Creds, Orchestrator};
use sha2::{Digest, Sha256};
use tonic::Code;

const OK: i32 = ResponseState::Success as i32;

fn derive(id: &str, name: &str, team: &str) -> String {
    hex::encode(Sha256::digest(format!("{id}{name}{team}").as_bytes()))
}

fn token_of(c: &Creds) -> &str {
    match c {
        Creds::Token(_, t) => t,
        other => panic!("token credentials expected, got {other:?}"),
    }
}

/// Whether `creds` authenticate (a cheap read every role may do).
async fn works(c: &mut Client, creds: &Creds) -> bool {
    match c
        .get_user(req(
            MessageGetUser {
                userid: "admin".into(),
            },
            creds,
        ))
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == Code::Unauthenticated => false,
        Err(s) => panic!("unexpected status {s:?}"),
    }
}

/// Users as the original orchestrator left them: plaintext derived static tokens.
fn legacy_users() -> Vec<User> {
    [
        ("old-user", "Old User", "lab", Role::User),
        ("old-node", "Old Node", "roof", Role::Node),
    ]
    .into_iter()
    .map(|(id, name, team, role)| User {
        id: id.into(),
        name: name.into(),
        role,
        team: team.into(),
        static_access_token: derive(id, name, team),
        access_token: String::new(),
    })
    .collect()
}

async fn seed_embedded(data_dir: &Path, users: &[User]) {
    let dir = data_dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir))
        .await
        .expect("join")
        .expect("open store");
    for u in users {
        store.put_user(u).await.expect("seed user");
    }
}

/// The stored records of `ids`, read through one opening of the store: opening it again right
/// after closing it can find the directory lock still held, by a child another test of this
/// process is forking at that moment (the lock's descriptor lives on in the fork until exec).
async fn stored_users<const N: usize>(data_dir: &Path, ids: [&str; N]) -> [User; N] {
    let dir = data_dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir))
        .await
        .expect("join")
        .expect("open store");
    let mut users = Vec::new();
    for id in ids {
        users.push(store.get_user(id).await.expect("read").expect("user"));
    }
    users.try_into().expect("one record per id")
}

fn tokens_cli(s: &Orchestrator, args: &[&str]) -> Output {
    Command::new(orchestrator_bin())
        .env_remove("LEOTEST_DB_SERVER")
        .arg("--data-dir")
        .arg(s.data_dir())
        .args(&s.extra_args)
        .arg("tokens")
        .args(args)
        .output()
        .expect("run tokens subcommand")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn security_tokens_cannot_be_derived_from_what_a_user_can_read() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let mallory = user(&s, "mallory", UserRoles::User).await;
    let victim = user(&s, "victim", UserRoles::UserPriv).await;
    let boss = user(&s, "boss", UserRoles::Admin).await;
    let n1 = node(&s, "n1").await;

    // The review's attack: read profiles with a USER token, compute sha256(id+name+team).
    let mut tried = Vec::new();
    for id in ["victim", "boss", "admin", "n1"] {
        let u = get_user(&mut c, &mallory, id).await;
        assert!(u.exists);
        tried.push((id.to_string(), derive(id, &u.name, &u.team)));
    }
    for n in nodes(&mut c, &mallory, MessageGetNodes::default()).await {
        tried.push((n.nodeid.clone(), derive(&n.nodeid, &n.name, &n.description)));
    }
    for (id, token) in &tried {
        assert!(
            !works(&mut c, &Creds::token(id, token)).await,
            "derived token of {id} works"
        );
    }
    // Not even to register a new ADMIN with the derived admin-like token.
    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: "evil".into(),
                name: "e".into(),
                role: UserRoles::Admin as i32,
                team: "t".into(),
            },
            &Creds::token("boss", &derive("boss", "boss name", "team-x")),
        ))
        .await;
    assert_eq!(r.expect_err("refused").code(), Code::Unauthenticated);
    // The real tokens work, and no two are alike.
    for who in [&mallory, &victim, &boss, &n1] {
        assert!(works(&mut c, who).await, "{who:?}");
    }
    let mut all: Vec<&str> = [&mallory, &victim, &boss, &n1].map(token_of).to_vec();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn security_no_reply_carries_a_stored_token() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let alice = user(&s, "alice", UserRoles::User).await;
    let n1 = node(&s, "n1").await;
    let r = schedule(&mut c, &alice, atq_job("aj", "n1", "")).await;
    assert_eq!(r.state, OK, "{}", r.message);
    let secrets = [
        token_of(&alice),
        token_of(&n1),
        leotest_test_support::ADMIN_TOKEN,
    ];
    let mut replies: Vec<String> = Vec::new();
    for who in [Creds::admin(), alice.clone(), n1.clone()] {
        for id in ["admin", "alice", "n1"] {
            replies.push(format!("{:?}", get_user(&mut c, &who, id).await));
        }
        replies.push(format!(
            "{:?}",
            nodes(&mut c, &who, Default::default()).await
        ));
        replies.push(format!("{:?}", get_job(&mut c, &who, "aj").await));
        let r = c
            .kernel_access(req(
                MessageKernelAccess {
                    userid: "alice".into(),
                },
                &who,
            ))
            .await
            .expect("kernel_access");
        replies.push(format!("{:?}", r.into_inner()));
        let r = c
            .get_global_config(req(MessageGetGlobalConfig {}, &who))
            .await
            .expect("config");
        replies.push(format!("{:?}", r.into_inner()));
    }
    for reply in &replies {
        for secret in secrets {
            assert!(!reply.contains(secret), "a reply carries a token: {reply}");
        }
    }
}

#[tokio::test]
async fn security_new_tokens_are_stored_hashed_or_plain_as_configured() {
    let mut s = Orchestrator::start(&[]).await;
    let alice = user(&s, "alice", UserRoles::User).await;
    s.stop();
    let [stored, admin] = stored_users(&s.data_dir(), ["alice", "admin"]).await;
    assert!(stored.static_access_token.starts_with("sha256:"));
    assert!(!stored.static_access_token.contains(token_of(&alice)));
    assert_eq!(stored.access_token, "");
    assert!(!admin
        .static_access_token
        .contains(leotest_test_support::ADMIN_TOKEN));
    s.launch().await;
    let mut c = s.client().await;
    assert!(works(&mut c, &alice).await);
    assert!(works(&mut c, &Creds::admin()).await);

    // `plain`: the original's layout, so the original orchestrator can authenticate them.
    let mut p = Orchestrator::start(&["--token-storage", "plain"]).await;
    let bob = user(&p, "bob", UserRoles::User).await;
    p.stop();
    let [bob_stored, admin] = stored_users(&p.data_dir(), ["bob", "admin"]).await;
    assert_eq!(bob_stored.static_access_token, token_of(&bob));
    assert_eq!(admin.static_access_token, leotest_test_support::ADMIN_TOKEN);
}

#[tokio::test]
async fn security_tokens_stored_by_the_original_still_work_are_reported_and_rotate() {
    let dir = Orchestrator::prepared_dir();
    let legacy = legacy_users();
    seed_embedded(&dir.path().join("data"), &legacy).await;
    let mut s = Orchestrator::start_in(dir, &[]).await;
    let mut c = s.client().await;
    let old_user = Creds::token("old-user", &legacy[0].static_access_token);
    let old_node = Creds::token("old-node", &legacy[1].static_access_token);
    assert!(works(&mut c, &old_user).await);
    assert!(works(&mut c, &old_node).await);
    let fresh = user(&s, "fresh", UserRoles::User).await;

    // Start-up warning: count and ids, never a token.
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("derivable"))
        .unwrap_or_else(|| panic!("no start-up warning in:\n{log}"));
    assert!(line.contains("count=2"), "{line}");
    assert!(
        line.contains("old-user") && line.contains("old-node"),
        "{line}"
    );
    for u in &legacy {
        assert!(!log.contains(&u.static_access_token), "log leaks a token");
    }

    // The embedded store is one process's: the subcommand needs the server stopped.
    s.stop();
    let audit = tokens_cli(&s, &["audit"]);
    assert!(audit.status.success(), "{audit:?}");
    let text = stdout(&audit);
    let state_of = |id: &str| -> String {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or_else(|| panic!("{id} missing in:\n{text}"))
            .to_string()
    };
    assert_eq!(state_of("old-user"), "derivable");
    assert_eq!(state_of("old-node"), "derivable");
    assert_eq!(state_of("fresh"), "hashed");
    assert_eq!(state_of("admin"), "admin-flag");
    assert!(text.contains("with a derivable token"), "{text}");
    for u in &legacy {
        assert!(
            !text.contains(&u.static_access_token),
            "audit prints a token"
        );
    }

    let rotated = tokens_cli(&s, &["rotate", "--all-derivable"]);
    assert!(rotated.status.success(), "{rotated:?}");
    let new: Vec<(String, String)> = stdout(&rotated)
        .lines()
        .map(|l| {
            let (id, t) = l.split_once(' ').expect("ID TOKEN");
            (id.to_string(), t.to_string())
        })
        .collect();
    let mut ids: Vec<&str> = new.iter().map(|(i, _)| i.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["old-node", "old-user"]);
    for refused in [&["rotate", "admin"][..], &["rotate", "nobody"], &["rotate"]] {
        let o = tokens_cli(&s, refused);
        assert!(!o.status.success(), "{refused:?} must fail");
    }

    s.launch().await;
    let mut c = s.client().await;
    assert!(!works(&mut c, &old_user).await, "rotated token still works");
    assert!(!works(&mut c, &old_node).await);
    for (id, t) in &new {
        assert_eq!(t.len(), 64);
        assert!(works(&mut c, &Creds::token(id, t)).await, "{id}");
    }
    assert!(works(&mut c, &fresh).await, "others are untouched");
    let relaunched = s.log();
    let since = relaunched.rfind("orchestrator listening").unwrap_or(0);
    let start = relaunched[..since]
        .rfind("embedded store opened")
        .unwrap_or(0);
    assert!(
        !relaunched[start..].contains("derivable"),
        "no warning once rotated"
    );
}

#[tokio::test]
async fn security_mongodb_tokens_of_the_original_work_and_rotate_while_serving() {
    let Some(db) = TestMongo::fresh("tok") else {
        return;
    };
    let client = mongodb::Client::with_uri_str(&db.uri).await.expect("mongo");
    let users = client
        .database(&db.name)
        .collection::<bson::Document>("users");
    let token = derive("old-user", "Old User", "lab");
    // The original's user document, field for field.
    users
        .insert_one(bson::doc! {
            "id": "old-user", "name": "Old User", "role": 1, "team": "lab",
            "static_access_token": &token, "access_token": "",
        })
        .await
        .expect("seed");
    let s = Orchestrator::builder().store(&db).start().await;
    let mut c = s.client().await;
    let old = Creds::token("old-user", &token);
    assert!(works(&mut c, &old).await);
    assert!(
        s.log().contains("old-user"),
        "start-up warning names the user"
    );
    // MongoDB is shared: rotate with the server running; the server's user cache lets the old
    // token live on for at most its TTL (0.5 s), never past the documented second.
    let o = tokens_cli(&s, &["rotate", "old-user"]);
    assert!(o.status.success(), "{o:?}");
    let (_, new) = stdout(&o)
        .trim()
        .split_once(' ')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .expect("ID TOKEN");
    let rotated = std::time::Instant::now();
    while works(&mut c, &old).await {
        assert!(
            rotated.elapsed() < std::time::Duration::from_secs(1),
            "the rotated token still works after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(works(&mut c, &Creds::token("old-user", &new)).await);
}

#[tokio::test]
async fn security_re_registering_a_node_keeps_its_existing_token_and_the_new_one_works() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    // A NODE identity made first as a user (as the testbed's init does), then its node.
    let old = user(&s, "n1", UserRoles::Node).await;
    let r = register_node_reply(&s, "n1").await;
    assert_eq!(r.state, OK, "{}", r.message);
    assert!(r
        .message
        .starts_with("node successfully registered access_token="));
    let new = Creds::token("n1", &token_from_message(&r.message));
    assert_ne!(token_of(&old), token_of(&new));
    // The user itself is kept (name, team), as the original kept it.
    assert_eq!(
        get_user(&mut c, &Creds::admin(), "n1").await.name,
        "n1 name"
    );

    for who in [&old, &new] {
        let hb = As::new(&c, who)
            .report_heartbeat(MessageHeartbeat {
                nodeid: "n1".into(),
            })
            .await;
        assert!(hb.received);
        let sc = As::new(&c, who)
            .set_scavenger_status(MessageSetScavengerStatus {
                nodeid: "n1".into(),
                scavenger_mode_active: false,
            })
            .await;
        assert_eq!(sc.state, OK, "{}", sc.message);
        let ur = update_run(&mut c, who, run("r-self", "gone-job", "n1", "x")).await;
        assert_eq!(ur.state, OK, "{}", ur.message);
    }
    // Registering it again while the node exists changes nothing.
    let r = register_node_reply(&s, "n1").await;
    assert_eq!(
        (r.state, r.message.as_str()),
        (
            ResponseState::Failed as i32,
            "node with the given id exists"
        )
    );
    assert!(works(&mut c, &old).await && works(&mut c, &new).await);
}

#[tokio::test]
async fn security_failed_authentication_logs_a_bounded_userid() {
    let s = Orchestrator::start(&[]).await;
    let mut c = s.client().await;
    let long = format!("mallory{}", "A".repeat(8 * 1024 - 16));
    assert!(!works(&mut c, &Creds::token(&long, "wrong")).await);
    assert!(works(&mut c, &Creds::admin()).await);
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("static token rejected"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{log}"));
    assert!(line.contains("mallory"), "{line}");
    assert!(line.contains("bytes]"), "the cut is marked: {line}");
    assert!(line.len() < 600, "{} bytes logged", line.len());
}
