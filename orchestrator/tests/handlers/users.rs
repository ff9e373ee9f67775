//! User RPCs (register, get, modify, delete) and `kernel_access`, which judges a user's role.

use leotest_proto::unary::*;
use leotest_test_support::Creds;
use tonic::Code;

use crate::harness::{denied, Scene, FAILED, OK};

fn profile(id: &str, name: &str, role: UserRoles) -> MessageRegisterUser {
    MessageRegisterUser {
        id: id.into(),
        name: name.into(),
        role: role as i32,
        team: "team-y".into(),
    }
}

/// ADMIN registers a user whose token then authenticates; others are denied, bad ids refused.
mod register_user {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r =
            s.h.admin()
                .register_user(profile("carol", "Carol", UserRoles::UserPriv))
                .await;
        assert_eq!(r.state, OK, "{}", r.message);
        let token = leotest_test_support::token_from_message(&r.message);
        let carol = s.h.with(&Creds::token("carol", &token));
        let me = carol.get_user("carol").await;
        assert!(me.exists);
        assert_eq!(
            (me.name.as_str(), me.role),
            ("Carol", UserRoles::UserPriv as i32)
        );
        let again =
            s.h.admin()
                .register_user(profile("carol", "C2", UserRoles::User))
                .await;
        assert_eq!(
            (again.state, again.message.as_str()),
            (FAILED, "user with given id already exists")
        );
    }

    pub(super) async fn refused(s: Scene) {
        for who in [&s.alice, &s.n1] {
            let r = who
                .register_user(profile("mallory", "M", UserRoles::Admin))
                .await;
            assert_eq!(r.state, FAILED);
            let role = if who.creds().who() == "n1" {
                "NODE"
            } else {
                "USER"
            };
            assert_eq!(r.message, denied(who, role));
        }
        assert!(!s.h.admin().get_user("mallory").await.exists);
        let r =
            s.h.admin()
                .register_user(profile("", "no id", UserRoles::User))
                .await;
        assert_eq!(r.state, FAILED);
        assert!(r.message.starts_with("invalid id"), "{}", r.message);
    }
}

/// Any authenticated caller reads a user; no credentials never reach the handler.
mod get_user {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.bob.get_user("alice").await;
        assert!(r.exists);
        assert_eq!((r.id.as_str(), r.name.as_str()), ("alice", "alice name"));
        assert_eq!(
            (r.role, r.team.as_str()),
            (UserRoles::User as i32, "team-x")
        );
        let n = s.alice.get_user("n1").await;
        assert_eq!(n.role, UserRoles::Node as i32);
    }

    pub(super) async fn refused(s: Scene) {
        let status =
            s.h.anonymous()
                .try_get_user("alice")
                .await
                .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
        let r = s.alice.get_user("nobody").await;
        assert!(!r.exists);
        assert_eq!(r.id, "");
    }
}

/// ADMIN changes name, role and team (the token keeps working); others are denied.
mod modify_user {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r =
            s.h.admin()
                .modify_user(MessageModifyUser {
                    id: "alice".into(),
                    name: "Alice".into(),
                    role: UserRoles::UserPriv as i32,
                    team: "t2".into(),
                })
                .await;
        assert_eq!((r.state, r.message.as_str()), (OK, "user updated"));
        let me = s.alice.get_user("alice").await;
        assert_eq!(
            (me.name.as_str(), me.role, me.team.as_str()),
            ("Alice", UserRoles::UserPriv as i32, "t2")
        );
    }

    pub(super) async fn refused(s: Scene) {
        let r = s
            .alice
            .modify_user(MessageModifyUser {
                id: "alice".into(),
                name: "Alice".into(),
                role: UserRoles::Admin as i32,
                team: "t".into(),
            })
            .await;
        assert_eq!((r.state, r.message), (FAILED, denied(&s.alice, "USER")));
        assert_eq!(s.alice.get_user("alice").await.role, UserRoles::User as i32);
        let r =
            s.h.admin()
                .modify_user(MessageModifyUser {
                    id: "nobody".into(),
                    name: "N".into(),
                    role: UserRoles::User as i32,
                    team: "t".into(),
                })
                .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "user with given id does not exist")
        );
        let r =
            s.h.admin()
                .modify_user(MessageModifyUser {
                    id: "alice".into(),
                    role: 42,
                    ..Default::default()
                })
                .await;
        assert_eq!((r.state, r.message.as_str()), (FAILED, "invalid role: 42"));
    }
}

/// ADMIN deletes a user, whose token stops authenticating; others are denied.
mod delete_user {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.h.admin().delete_user("bob").await;
        assert_eq!((r.state, r.message.as_str()), (OK, "user deleted"));
        let status = s.bob.try_get_user("bob").await.expect_err("deleted");
        assert_eq!(status.code(), Code::Unauthenticated);
        let r = s.h.admin().delete_user("bob").await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "user with given id does not exist")
        );
    }

    pub(super) async fn refused(s: Scene) {
        let r = s.alice.delete_user("bob").await;
        assert_eq!((r.state, r.message), (FAILED, denied(&s.alice, "USER")));
        let r = s.n1.delete_user("bob").await;
        assert_eq!((r.state, r.message), (FAILED, denied(&s.n1, "NODE")));
        assert!(s.bob.get_user("bob").await.exists);
    }
}

/// A node's kernel service (NODE) or ADMIN asks whether a user may change kernel
/// settings: yes for USER_PRIV, no for USER; anyone else is denied.
mod kernel_access {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        s.h.user("pat", UserRoles::UserPriv).await;
        let r = s.n1.kernel_access("pat").await;
        assert_eq!(r.state, OK, "{}", r.message);
        assert_eq!(
            r.message,
            "userid=pat role=USER_PRIV has access to kernel services"
        );
        let r = s.h.admin().kernel_access("alice").await;
        assert_eq!(r.state, FAILED);
        assert!(
            r.message
                .starts_with("userid=alice role=USER does not have access"),
            "{}",
            r.message
        );
        let r = s.n1.kernel_access("nobody").await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "userid=nobody does not exist")
        );
    }

    pub(super) async fn refused(s: Scene) {
        let pat = s.h.user("pat", UserRoles::UserPriv).await;
        // Only a NODE or ADMIN may ask, even about itself.
        for (who, role) in [(&s.alice, "USER"), (&pat, "USER_PRIV")] {
            let r = who.kernel_access("pat").await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
    }
}

rpc_tests!(
    register_user,
    get_user,
    modify_user,
    delete_user,
    kernel_access
);
