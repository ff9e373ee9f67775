//! What a reply means beyond its gRPC status: whether an OK reply refused the request in its
//! `state`/`message` fields (the original's way of refusing: its clients retry every error
//! status forever), and the one audit line of each state-changing RPC.
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

/// RPCs that change stored state and get an audit line at INFO. `report_heartbeat` and
/// `update_run` also write, but are the node agents' routine traffic (one every few seconds
/// per node): they are logged at DEBUG with the rest.
const AUDITED: [&str; 15] = [
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
];

/// Whether `rpc` gets an audit line.
pub fn audited(rpc: &str) -> bool {
    AUDITED.contains(&rpc)
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

/// The id a request names, for the audit line (empty where it names none).
pub trait Target {
    fn target(&self) -> String {
        String::new()
    }
}

macro_rules! target {
    ($($t:ty => |$r:ident| $e:expr;)*) => {
        $(impl Target for $t {
            fn target(&self) -> String {
                let $r = self;
                $e
            }
        })*
    };
}

target! {
    MessageRegisterUser => |r| r.id.clone();
    MessageModifyUser => |r| r.id.clone();
    MessageDeleteUser => |r| r.userid.clone();
    MessageScheduleJob => |r| r.id.clone();
    MessageRescheduleJob => |r| r.jobid.clone();
    MessageDeleteJobById => |r| r.jobid.clone();
    MessageDeleteJobsByNodeid => |r| r.nodeid.clone();
    MessageRegisterNode => |r| r.node.as_ref().map(|n| n.nodeid.clone()).unwrap_or_default();
    MessageUpdateNode => |r| r.nodeid.clone();
    MessageDeleteNode => |r| r.nodeid.clone();
    MessageSetScavengerStatus => |r| r.nodeid.clone();
    MessageScheduleTask => |r| r.task.as_ref().map(|t| t.taskid.clone()).unwrap_or_default();
    MessageUpdateTask => |r| r.taskid.clone();
}

macro_rules! no_target {
    ($($t:ty),* $(,)?) => {
        $(impl Target for $t {})*
    };
}

no_target!(
    MessageHeartbeat,
    MessageUpdateGlobalConfig,
    MessageGetGlobalConfig,
    MessageGetUser,
    MessageGetJobById,
    MessageGetJobsByUserid,
    MessageGetJobsByNodeid,
    MessageModifyJob,
    MessageUpdateRun,
    MessageGetRuns,
    MessageGetScheduledRuns,
    MessageGetNodes,
    MessageGetScavengerStatus,
    MessageGetTasks,
    MessageKernelAccess,
);
