//! Node RPCs: heartbeat, register, list, update, delete and scavenger mode.

use chrono::Duration;
use leotest_proto::unary::*;
use leotest_test_support::Creds;
use tonic::Code;

use crate::harness::{denied, node_record, Scene, FAILED, OK};

fn active(thres_secs: i32) -> MessageGetNodes {
    MessageGetNodes {
        active: Some(true),
        active_thres: Some(thres_secs),
        ..Default::default()
    }
}

fn ids(nodes: &[Node]) -> Vec<&str> {
    let mut ids: Vec<&str> = nodes.iter().map(|n| n.nodeid.as_str()).collect();
    ids.sort_unstable();
    ids
}

fn scavenger(nodeid: &str, on: bool) -> MessageSetScavengerStatus {
    MessageSetScavengerStatus {
        nodeid: nodeid.into(),
        scavenger_mode_active: on,
    }
}

/// A node marks itself alive at the clock's time; the active filter then finds it.
mod report_heartbeat {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        assert!(s.n1.report_heartbeat("n1").await.received);
        assert_eq!(ids(&s.alice.get_nodes(active(60)).await.nodes), ["n1"]);
        s.h.clock.advance(Duration::seconds(61));
        assert!(s.alice.get_nodes(active(60)).await.nodes.is_empty());
    }

    pub(super) async fn refused(s: Scene) {
        // Nobody makes another identity look alive: not a person, not another node.
        assert!(!s.alice.report_heartbeat("n1").await.received);
        assert!(!s.n2.report_heartbeat("n1").await.received);
        assert!(s.alice.get_nodes(active(600)).await.nodes.is_empty());
    }
}

/// ADMIN registers a node: the reply's token authenticates as role NODE.
mod register_node {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r =
            s.h.admin()
                .register_node(MessageRegisterNode {
                    node: Some(node_record("n3")),
                })
                .await;
        assert_eq!(r.state, OK, "{}", r.message);
        assert!(r
            .message
            .starts_with("node successfully registered access_token="));
        let token = leotest_test_support::token_from_message(&r.message);
        let me = s.h.with(&Creds::token("n3", &token)).get_user("n3").await;
        assert_eq!(me.role, UserRoles::Node as i32);
        let r =
            s.h.admin()
                .register_node(MessageRegisterNode {
                    node: Some(node_record("n3")),
                })
                .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "node with the given id exists")
        );
    }

    pub(super) async fn refused(s: Scene) {
        for (who, role) in [(&s.alice, "USER"), (&s.n1, "NODE")] {
            let r = who
                .register_node(MessageRegisterNode {
                    node: Some(node_record("n3")),
                })
                .await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        assert!(s
            .alice
            .get_nodes(MessageGetNodes {
                nodeid: Some("n3".into()),
                ..Default::default()
            })
            .await
            .nodes
            .is_empty());
        // A person's id cannot be taken over by a node.
        let r =
            s.h.admin()
                .register_node(MessageRegisterNode {
                    node: Some(node_record("alice")),
                })
                .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "user with given id already exists")
        );
        let r =
            s.h.admin()
                .register_node(MessageRegisterNode {
                    node: Some(node_record("")),
                })
                .await;
        assert_eq!(r.state, FAILED);
        assert!(r.message.starts_with("invalid nodeid"), "{}", r.message);
    }
}

/// Any caller lists nodes by filter, with the node's jobs summarised.
mod get_nodes {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let all = s.bob.get_nodes(()).await.nodes;
        assert_eq!(ids(&all), ["n1", "n2"]);
        let n1 = s
            .bob
            .get_nodes(MessageGetNodes {
                nodeid: Some("n1".into()),
                ..Default::default()
            })
            .await
            .nodes;
        assert_eq!(n1.len(), 1);
        assert_eq!(
            (n1[0].location.as_str(), n1[0].provider.as_str()),
            ("bangalore", "starlink")
        );
        assert!(
            n1[0].jobs.as_deref().is_some_and(|j| j.contains("j1")),
            "{:?}",
            n1[0].jobs
        );
        let none = s
            .bob
            .get_nodes(MessageGetNodes {
                location: Some("paris".into()),
                ..Default::default()
            })
            .await;
        assert!(none.nodes.is_empty());
    }

    pub(super) async fn refused(s: Scene) {
        let status =
            s.h.anonymous()
                .try_get_nodes(())
                .await
                .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

/// A node updates its own record (empty fields stay as they were).
mod update_node {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r =
            s.n1.update_node(MessageUpdateNode {
                nodeid: "n1".into(),
                location: Some("delhi".into()),
                public_ip: Some("192.0.2.7".into()),
                ..Default::default()
            })
            .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (OK, "updated node successfully")
        );
        let n = s
            .alice
            .get_nodes(MessageGetNodes {
                nodeid: Some("n1".into()),
                ..Default::default()
            })
            .await
            .nodes;
        assert_eq!(
            (n[0].location.as_str(), n[0].name.as_str()),
            ("delhi", "n1-name")
        );
    }

    pub(super) async fn refused(s: Scene) {
        let change = || MessageUpdateNode {
            nodeid: "n1".into(),
            location: Some("evil".into()),
            ..Default::default()
        };
        for (who, role) in [(&s.alice, "USER"), (&s.n2, "NODE")] {
            let r = who.update_node(change()).await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        let r =
            s.n1.update_node(MessageUpdateNode {
                nodeid: "n1".into(),
                last_active: Some("not a date".into()),
                ..Default::default()
            })
            .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "invalid last_active: not a date")
        );
        let n = s
            .alice
            .get_nodes(MessageGetNodes {
                nodeid: Some("n1".into()),
                ..Default::default()
            })
            .await
            .nodes;
        assert_eq!(n[0].location, "bangalore");
    }
}

/// ADMIN deletes a node, its identity and (asked to) its jobs.
mod delete_node {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r =
            s.h.admin()
                .delete_node(MessageDeleteNode {
                    nodeid: "n1".into(),
                    delete_jobs: true,
                })
                .await;
        assert_eq!((r.state, r.message.as_str()), (OK, "node deleted"));
        assert_eq!(ids(&s.alice.get_nodes(()).await.nodes), ["n2"]);
        assert!(!s.alice.get_job_by_id("j1").await.exists);
        assert_eq!(
            s.n1.try_get_user("n1")
                .await
                .expect_err("identity gone")
                .code(),
            Code::Unauthenticated
        );
    }

    pub(super) async fn refused(s: Scene) {
        for (who, role) in [(&s.alice, "USER"), (&s.n1, "NODE")] {
            let r = who
                .delete_node(MessageDeleteNode {
                    nodeid: "n1".into(),
                    delete_jobs: true,
                })
                .await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        let r =
            s.h.admin()
                .delete_node(MessageDeleteNode {
                    nodeid: "n9".into(),
                    delete_jobs: false,
                })
                .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "node with given id does not exist")
        );
        assert_eq!(ids(&s.alice.get_nodes(()).await.nodes), ["n1", "n2"]);
        assert!(s.alice.get_job_by_id("j1").await.exists);
    }
}

/// The node itself (role NODE) switches its scavenger mode.
mod set_scavenger_status {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.n1.set_scavenger_status(scavenger("n1", true)).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (OK, "updated scavenger_mode_status successfully")
        );
        assert!(
            s.alice
                .get_scavenger_status("n1")
                .await
                .scavenger_mode_active
        );
        let r =
            s.h.admin()
                .set_scavenger_status(scavenger("n1", false))
                .await;
        assert_eq!(r.state, OK);
        assert!(
            !s.alice
                .get_scavenger_status("n1")
                .await
                .scavenger_mode_active
        );
    }

    pub(super) async fn refused(s: Scene) {
        for (who, role) in [(&s.alice, "USER"), (&s.n2, "NODE")] {
            let r = who.set_scavenger_status(scavenger("n1", true)).await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        assert!(!s.alice.get_scavenger_status("n1").await.found);
        let r =
            s.h.admin()
                .set_scavenger_status(scavenger("n9", true))
                .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "node with given id does not exist")
        );
    }
}

/// Any caller reads a node's scavenger mode: `found` only while it is on (the original).
mod get_scavenger_status {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        s.n1.set_scavenger_status(scavenger("n1", true)).await;
        let r = s.bob.get_scavenger_status("n1").await;
        assert!(r.found && r.scavenger_mode_active);
    }

    pub(super) async fn refused(s: Scene) {
        let r = s.bob.get_scavenger_status("n9").await;
        assert!(!r.found && !r.scavenger_mode_active);
        let status =
            s.h.anonymous()
                .try_get_scavenger_status("n1")
                .await
                .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

rpc_tests!(
    report_heartbeat,
    register_node,
    get_nodes,
    update_node,
    delete_node,
    set_scavenger_status,
    get_scavenger_status
);
