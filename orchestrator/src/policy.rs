//! Authorisation: the original's role rules, the one ownership rule for jobs and everything
//! hanging off them (runs, tasks), and the original's denial message, in one place.
//!
//! The ownership rule: a job, its runs and its tasks belong to ADMIN, to the job's owner
//! (`job.userid`) and to the job's node — a node identity (role NODE or NODE_PRIV) whose id is
//! the job's `nodeid` or its `server` (the node agent of a server node runs the job's server
//! side: it reads the client's run and completes the task). [`job_access`] says which of the
//! three a caller is; each RPC states which it accepts (docs/compatibility.md lists them).

use crate::auth::Caller;
use crate::store::{Job, Role};

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

/// The identity node agents and kernel services authenticate with.
pub fn is_node_identity(caller: &Caller) -> bool {
    matches!(caller.role, Role::Node | Role::NodePriv)
}

/// The node `nodeid` itself, authenticated as a node identity.
pub fn is_node(caller: &Caller, nodeid: &str) -> bool {
    is_node_identity(caller) && caller.userid == nodeid
}

/// How a caller relates to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAccess {
    /// The caller is ADMIN.
    Admin,
    /// The caller scheduled the job.
    Owner,
    /// The caller is the job's node or its server node.
    Node,
    /// None of the above: the job is not the caller's business.
    None,
}

impl JobAccess {
    /// Admin, owner or node: may read the job and report its runs and tasks.
    pub fn any(self) -> bool {
        self != JobAccess::None
    }
}

/// The one ownership rule (see the module documentation).
pub fn job_access(caller: &Caller, job: &Job) -> JobAccess {
    if is_admin(caller) {
        JobAccess::Admin
    } else if caller.userid == job.userid {
        JobAccess::Owner
    } else if is_node(caller, &job.nodeid) || job.server_node().is_some_and(|s| is_node(caller, s))
    {
        JobAccess::Node
    } else {
        JobAccess::None
    }
}

/// `get_global_config` in full (storage connection string, weather API key): ADMIN and node
/// identities, whose agents upload artifacts. Others get the config without credentials.
pub fn may_read_credentials(caller: &Caller) -> bool {
    is_admin(caller) || is_node_identity(caller)
}

/// `kernel_access` may be asked by the kernel service of a node (NODE) or by ADMIN.
pub fn may_check_kernel_access(caller: &Caller) -> bool {
    matches!(caller.role, Role::Node | Role::Admin)
}

/// Roles that the kernel service lets reconfigure kernel settings.
pub fn has_kernel_access(role: Role) -> bool {
    matches!(role, Role::UserPriv | Role::NodePriv | Role::Admin)
}

/// `set_scavenger_status`: ADMIN, or exactly role NODE with the node's id (the original).
pub fn may_set_scavenger(caller: &Caller, nodeid: &str) -> bool {
    (caller.role == Role::Node && caller.userid == nodeid) || is_admin(caller)
}

/// `update_node`: ADMIN, or the node updating itself (the original let anyone update any node).
pub fn may_update_node(caller: &Caller, nodeid: &str) -> bool {
    is_node(caller, nodeid) || is_admin(caller)
}

/// Jobs of `owner` may be listed by ADMIN and by `owner` itself.
pub fn may_list_jobs_of(caller: &Caller, owner: &str) -> bool {
    is_admin(caller) || caller.userid == owner
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{JobKind, JobParams};

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            userid: id.to_string(),
            role,
        }
    }

    const ALL: [Role; 5] = [
        Role::Admin,
        Role::User,
        Role::Node,
        Role::UserPriv,
        Role::NodePriv,
    ];

    fn job(owner: &str, nodeid: &str, server: Option<&str>) -> Job {
        Job {
            id: "j".into(),
            nodeid: nodeid.into(),
            userid: owner.into(),
            kind: JobKind::Atq,
            params: JobParams::default(),
            schedule: None,
            start_date: String::new(),
            end_date: String::new(),
            length_secs: 0,
            overhead: false,
            server: server.map(str::to_string),
            trigger: None,
            config: None,
            expire_at: None,
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
    fn ownership_rule() {
        let j = job("alice", "n1", Some("n2"));
        assert_eq!(
            job_access(&caller("root", Role::Admin), &j),
            JobAccess::Admin
        );
        assert_eq!(
            job_access(&caller("alice", Role::User), &j),
            JobAccess::Owner
        );
        assert_eq!(job_access(&caller("n1", Role::Node), &j), JobAccess::Node);
        assert_eq!(
            job_access(&caller("n2", Role::NodePriv), &j),
            JobAccess::Node
        );
        assert_eq!(
            job_access(&caller("bob", Role::UserPriv), &j),
            JobAccess::None
        );
        assert_eq!(job_access(&caller("n3", Role::Node), &j), JobAccess::None);
        // A person whose id happens to be the node's id is not the node.
        assert_eq!(job_access(&caller("n1", Role::User), &j), JobAccess::None);
        assert_eq!(
            job_access(&caller("n2", Role::Node), &job("alice", "n1", None)),
            JobAccess::None
        );
    }

    #[test]
    fn role_table() {
        for role in ALL {
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
                may_set_scavenger(&c, "n1"),
                matches!(role, Role::Admin | Role::Node)
            );
            assert_eq!(may_set_scavenger(&c, "n2"), role == Role::Admin);
            assert_eq!(
                may_update_node(&c, "n1"),
                matches!(role, Role::Admin | Role::Node | Role::NodePriv)
            );
            assert_eq!(
                may_read_credentials(&c),
                matches!(role, Role::Admin | Role::Node | Role::NodePriv)
            );
        }
    }
}
