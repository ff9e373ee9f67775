//! Authorisation by role: the original's rules and its denial message, in one place.

use crate::auth::Caller;
use crate::store::Role;

/// The original's denial text: `permission denied: userid=<id> and role=<ROLE>`.
pub fn denied(caller: &Caller) -> String {
    format!(
        "permission denied: userid={} and role={}",
        caller.userid,
        caller.role.name()
    )
}

/// Only ADMIN may do this (users, nodes, global config updates, deleting jobs of a node).
pub fn is_admin(caller: &Caller) -> bool {
    caller.role == Role::Admin
}

/// `get_global_config` (holds storage credentials): ADMIN and node identities.
pub fn may_read_global_config(caller: &Caller) -> bool {
    matches!(caller.role, Role::Admin | Role::Node | Role::NodePriv)
}

/// `kernel_access` may be asked by the kernel service of a node (NODE) or by ADMIN.
pub fn may_check_kernel_access(caller: &Caller) -> bool {
    matches!(caller.role, Role::Node | Role::Admin)
}

/// Roles that the kernel service lets reconfigure kernel settings.
pub fn has_kernel_access(role: Role) -> bool {
    matches!(role, Role::UserPriv | Role::NodePriv | Role::Admin)
}

/// The node itself (a NODE whose id is `nodeid`) or ADMIN.
pub fn is_node_or_admin(caller: &Caller, nodeid: &str) -> bool {
    (caller.role == Role::Node && caller.userid == nodeid) || is_admin(caller)
}

/// `update_node`: ADMIN, or the node updating itself (any role whose id is the node's).
pub fn may_update_node(caller: &Caller, nodeid: &str) -> bool {
    caller.userid == nodeid || is_admin(caller)
}

/// Jobs of `owner` may be read or deleted by ADMIN and by `owner` itself.
pub fn may_access_jobs_of(caller: &Caller, owner: &str) -> bool {
    is_admin(caller) || caller.userid == owner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            userid: id.to_string(),
            role,
        }
    }

    #[test]
    fn denial_text_matches_the_original() {
        assert_eq!(
            denied(&caller("alice", Role::UserPriv)),
            "permission denied: userid=alice and role=USER_PRIV"
        );
    }

    #[test]
    fn role_table() {
        let all = [
            Role::Admin,
            Role::User,
            Role::Node,
            Role::UserPriv,
            Role::NodePriv,
        ];
        for role in all {
            let c = caller("n1", role);
            assert_eq!(is_admin(&c), role == Role::Admin);
            assert_eq!(
                may_check_kernel_access(&c),
                matches!(role, Role::Admin | Role::Node)
            );
            assert_eq!(
                has_kernel_access(role),
                matches!(role, Role::Admin | Role::UserPriv | Role::NodePriv)
            );
            assert_eq!(
                is_node_or_admin(&c, "n1"),
                matches!(role, Role::Admin | Role::Node)
            );
            assert_eq!(is_node_or_admin(&c, "n2"), role == Role::Admin);
        }
    }
}
