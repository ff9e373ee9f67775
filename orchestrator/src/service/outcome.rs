//! What a reply means beyond its gRPC status: whether an OK reply refused the request in its
//! `state`/`message` fields (the original's way of refusing: its clients retry every error
//! status forever), and the one audit line of each state-changing RPC ([`Audit`]).
//!
//! The refusal marker goes into the reply's extensions for the metrics layer's `result`
//! label ([`crate::metrics::Refused`]); nothing of it reaches the wire.

use leotest_proto::unary::*;

use crate::auth::Caller;
use crate::logsafe::untrusted;

/// A reply that can say it refused the request.
pub trait Outcome {
    /// True when the reply is a refusal (a rule, a conflict, a permission denial) although
    /// its status is OK.
    fn refused(&self) -> bool {
        false
    }
}

fn failed(state: i32) -> bool {
    state == ResponseState::Failed as i32
}

fn denied(message: &str) -> bool {
    message.starts_with("permission denied")
}

macro_rules! by_state {
    ($($t:ty),* $(,)?) => {
        $(impl Outcome for $t {
            fn refused(&self) -> bool {
                failed(self.state)
            }
        })*
    };
}

macro_rules! never {
    ($($t:ty),* $(,)?) => {
        $(impl Outcome for $t {})*
    };
}

by_state!(
    MessageUpdateGlobalConfigResponse,
    MessageRegisterUserResponse,
    MessageModifyUserResponse,
    MessageDeleteUserResponse,
    MessageScheduleJobResponse,
    MessageUpdateRunResponse,
    MessageRegisterNodeResponse,
    MessageUpdateNodeResponse,
    MessageDeleteNodeResponse,
    MessageSetScavengerStatusResponse,
    MessageScheduleTaskResponse,
    MessageUpdateTaskResponse,
    MessageKernelAccessResponse,
    MessageGetScheduledRunsResponse,
);

never!(
    MessageGetGlobalConfigResponse,
    MessageHeartbeatResponse,
    MessageGetUserResponse,
    MessageGetJobByIdResponse,
    MessageGetJobsByNodeidResponse,
    MessageModifyJobResponse,
    MessageGetRunsResponse,
    MessageGetNodesResponse,
    MessageGetScavengerStatusResponse,
    MessageGetTasksResponse,
);

impl Outcome for MessageRescheduleJobResponse {
    fn refused(&self) -> bool {
        !self.rescheduled
    }
}

// These carry no state: a refusal is the policy's `permission denied` message.
impl Outcome for MessageGetJobsByUseridResponse {
    fn refused(&self) -> bool {
        denied(&self.message)
    }
}

impl Outcome for MessageDeleteJobByIdResponse {
    fn refused(&self) -> bool {
        denied(&self.message)
    }
}

impl Outcome for MessageDeleteJobsByNodeidResponse {
    fn refused(&self) -> bool {
        denied(&self.message)
    }
}

/// The audit line of a state-changing RPC: who (user id and role), what (the RPC and the
/// id it names, as `id`, escaped and bounded), and the result (`ok`, `refused`, or `error` with the
/// status code). Reply messages are not logged: some carry a freshly issued token.
pub fn audit(rpc: &'static str, caller: &Caller, target: &str, result: &str) {
    tracing::info!(
        target: "audit",
        rpc,
        userid = %untrusted(&caller.userid),
        role = caller.role.name(),
        id = %untrusted(target),
        result,
        "state-changing rpc"
    );
}

/// How a request is audited: whether its RPC changes stored state and so gets an audit line
/// at INFO, and the id it names there. Every request type implements it exactly once, below
/// (the service does not compile without), so a new RPC is classified where it is added.
/// `report_heartbeat` and `update_run` also write, but are the node agents' routine traffic
/// (one every few seconds per node): they are logged at DEBUG with the rest.
pub trait Audit {
    /// Whether the RPC gets an audit line.
    const AUDITED: bool;

    /// The id the request names, for the audit line (empty where it names none).
    fn target(&self) -> String {
        String::new()
    }
}

/// State-changing requests, each with the id its audit line names.
macro_rules! audited {
    ($($t:ty => |$r:ident| $e:expr;)*) => {
        $(impl Audit for $t {
            const AUDITED: bool = true;

            fn target(&self) -> String {
                let $r = self;
                $e
            }
        })*
    };
}

audited! {
    // The config and modify_job name no id.
    MessageUpdateGlobalConfig => |_r| String::new();
    MessageRegisterUser => |r| r.id.clone();
    MessageModifyUser => |r| r.id.clone();
    MessageDeleteUser => |r| r.userid.clone();
    MessageScheduleJob => |r| r.id.clone();
    MessageRescheduleJob => |r| r.jobid.clone();
    MessageModifyJob => |_r| String::new();
    MessageDeleteJobById => |r| r.jobid.clone();
    MessageDeleteJobsByNodeid => |r| r.nodeid.clone();
    MessageRegisterNode => |r| r.node.as_ref().map(|n| n.nodeid.clone()).unwrap_or_default();
    MessageUpdateNode => |r| r.nodeid.clone();
    MessageDeleteNode => |r| r.nodeid.clone();
    MessageSetScavengerStatus => |r| r.nodeid.clone();
    MessageScheduleTask => |r| r.task.as_ref().map(|t| t.taskid.clone()).unwrap_or_default();
    MessageUpdateTask => |r| r.taskid.clone();
}

/// Reads, and the agents' routine writes.
macro_rules! not_audited {
    ($($t:ty),* $(,)?) => {
        $(impl Audit for $t {
            const AUDITED: bool = false;
        })*
    };
}

not_audited!(
    MessageHeartbeat,
    MessageGetGlobalConfig,
    MessageGetUser,
    MessageGetJobById,
    MessageGetJobsByUserid,
    MessageGetJobsByNodeid,
    MessageUpdateRun,
    MessageGetRuns,
    MessageGetScheduledRuns,
    MessageGetNodes,
    MessageGetScavengerStatus,
    MessageGetTasks,
    MessageKernelAccess,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC of the table with whether its request is audited.
    macro_rules! audited_rpcs {
        ($(
            $(#[$doc:meta])*
            $name:ident($req:ident) -> $resp:ident
                { family: $family:ident, client: $client:ident, try_call: $try_call:ident };
        )*) => {
            [$((stringify!($name), <$req as Audit>::AUDITED)),*]
        };
    }

    /// The audit policy (every state-changing RPC but the agents' heartbeats and run
    /// updates, see [`Audit`]), pinned against the one place each RPC's is decided.
    #[test]
    fn exactly_the_state_changing_rpcs_are_audited() {
        let table = leotest_proto::for_each_rpc!(audited_rpcs);
        assert_eq!(table.len(), leotest_proto::RPC_METHODS.len());
        let audited: Vec<&str> = table.iter().filter(|r| r.1).map(|r| r.0).collect();
        assert_eq!(
            audited,
            [
                "update_global_config",
                "register_user",
                "modify_user",
                "delete_user",
                "schedule_job",
                "reschedule_job_nearest",
                "modify_job",
                "delete_job_by_id",
                "delete_jobs_by_nodeid",
                "register_node",
                "update_node",
                "delete_node",
                "set_scavenger_status",
                "schedule_task",
                "update_task",
            ]
        );
    }
}
