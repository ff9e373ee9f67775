//! The RPC table of `unary.LeotestOrchestrator`: every RPC once, in the order of
//! `leotest.proto`, for the crates that write one item per RPC (the orchestrator's service,
//! the typed client, the test harness's calls) to generate their lists from.
//!
//! The `.proto` file stays the source of the wire contract; a test below holds the table
//! against the compiled descriptor and the original contract, and implements the generated
//! server trait from it, so a missing, extra, renamed or retyped RPC fails here first.

/// Calls the macro `$callback` once with the whole table, one row per RPC:
///
/// ```text
/// /// doc
/// rpc(Request) -> Response { family: module, client: method, try_call: try_method };
/// ```
///
/// - `rpc`: the method name on the wire (`/unary.LeotestOrchestrator/rpc`) and in the
///   generated client and server trait.
/// - `Request`, `Response`: message names in [`crate::unary`] (bare idents: the callback's
///   module has them in scope).
/// - `family`: the orchestrator's handler module (`service::family::rpc`).
/// - `client`: the method of `leotest_rpc::LeotestClient` that takes the full request
///   (`kernel_access_raw`: `kernel_access` there takes only the user id).
/// - `try_call`: the test harness's variant that returns the error status instead of
///   panicking.
///
/// The per-crate names are in the table (not derived from `rpc`) because deriving an ident
/// needs a proc macro such as `paste`, which the workspace does not depend on.
#[macro_export]
macro_rules! for_each_rpc {
    ($callback:ident) => { $callback! {
        /// `report_heartbeat`: marks a node as alive.
        report_heartbeat(MessageHeartbeat) -> MessageHeartbeatResponse
            { family: nodes, client: report_heartbeat, try_call: try_report_heartbeat };
        /// `update_global_config` (admin).
        update_global_config(MessageUpdateGlobalConfig) -> MessageUpdateGlobalConfigResponse
            { family: config, client: update_global_config, try_call: try_update_global_config };
        /// `get_global_config`.
        get_global_config(MessageGetGlobalConfig) -> MessageGetGlobalConfigResponse
            { family: config, client: get_global_config, try_call: try_get_global_config };
        /// `register_user` (admin).
        register_user(MessageRegisterUser) -> MessageRegisterUserResponse
            { family: users, client: register_user, try_call: try_register_user };
        /// `get_user`.
        get_user(MessageGetUser) -> MessageGetUserResponse
            { family: users, client: get_user, try_call: try_get_user };
        /// `modify_user` (admin).
        modify_user(MessageModifyUser) -> MessageModifyUserResponse
            { family: users, client: modify_user, try_call: try_modify_user };
        /// `delete_user` (admin).
        delete_user(MessageDeleteUser) -> MessageDeleteUserResponse
            { family: users, client: delete_user, try_call: try_delete_user };
        /// `schedule_job`.
        schedule_job(MessageScheduleJob) -> MessageScheduleJobResponse
            { family: jobs, client: schedule_job, try_call: try_schedule_job };
        /// `get_job_by_id`.
        get_job_by_id(MessageGetJobById) -> MessageGetJobByIdResponse
            { family: jobs, client: get_job_by_id, try_call: try_get_job_by_id };
        /// `get_jobs_by_userid`.
        get_jobs_by_userid(MessageGetJobsByUserid) -> MessageGetJobsByUseridResponse
            { family: jobs, client: get_jobs_by_userid, try_call: try_get_jobs_by_userid };
        /// `get_jobs_by_nodeid`.
        get_jobs_by_nodeid(MessageGetJobsByNodeid) -> MessageGetJobsByNodeidResponse
            { family: jobs, client: get_jobs_by_nodeid, try_call: try_get_jobs_by_nodeid };
        /// `reschedule_job_nearest`.
        reschedule_job_nearest(MessageRescheduleJob) -> MessageRescheduleJobResponse
            { family: jobs, client: reschedule_job_nearest, try_call: try_reschedule_job_nearest };
        /// `modify_job` (empty in the contract).
        modify_job(MessageModifyJob) -> MessageModifyJobResponse
            { family: jobs, client: modify_job, try_call: try_modify_job };
        /// `delete_job_by_id`.
        delete_job_by_id(MessageDeleteJobById) -> MessageDeleteJobByIdResponse
            { family: jobs, client: delete_job_by_id, try_call: try_delete_job_by_id };
        /// `delete_jobs_by_nodeid`.
        delete_jobs_by_nodeid(MessageDeleteJobsByNodeid) -> MessageDeleteJobsByNodeidResponse
            { family: jobs, client: delete_jobs_by_nodeid, try_call: try_delete_jobs_by_nodeid };
        /// `update_run`.
        update_run(MessageUpdateRun) -> MessageUpdateRunResponse
            { family: runs, client: update_run, try_call: try_update_run };
        /// `get_runs`.
        get_runs(MessageGetRuns) -> MessageGetRunsResponse
            { family: runs, client: get_runs, try_call: try_get_runs };
        /// `get_scheduled_runs`.
        get_scheduled_runs(MessageGetScheduledRuns) -> MessageGetScheduledRunsResponse
            { family: runs, client: get_scheduled_runs, try_call: try_get_scheduled_runs };
        /// `register_node`.
        register_node(MessageRegisterNode) -> MessageRegisterNodeResponse
            { family: nodes, client: register_node, try_call: try_register_node };
        /// `get_nodes`.
        get_nodes(MessageGetNodes) -> MessageGetNodesResponse
            { family: nodes, client: get_nodes, try_call: try_get_nodes };
        /// `update_node`.
        update_node(MessageUpdateNode) -> MessageUpdateNodeResponse
            { family: nodes, client: update_node, try_call: try_update_node };
        /// `delete_node`.
        delete_node(MessageDeleteNode) -> MessageDeleteNodeResponse
            { family: nodes, client: delete_node, try_call: try_delete_node };
        /// `set_scavenger_status`.
        set_scavenger_status(MessageSetScavengerStatus) -> MessageSetScavengerStatusResponse
            { family: nodes, client: set_scavenger_status, try_call: try_set_scavenger_status };
        /// `get_scavenger_status`.
        get_scavenger_status(MessageGetScavengerStatus) -> MessageGetScavengerStatusResponse
            { family: nodes, client: get_scavenger_status, try_call: try_get_scavenger_status };
        /// `schedule_task`.
        schedule_task(MessageScheduleTask) -> MessageScheduleTaskResponse
            { family: tasks, client: schedule_task, try_call: try_schedule_task };
        /// `get_tasks`.
        get_tasks(MessageGetTasks) -> MessageGetTasksResponse
            { family: tasks, client: get_tasks, try_call: try_get_tasks };
        /// `update_task`.
        update_task(MessageUpdateTask) -> MessageUpdateTaskResponse
            { family: tasks, client: update_task, try_call: try_update_task };
        /// `kernel_access`: whether a user may change kernel settings (the kernel service's check).
        kernel_access(MessageKernelAccess) -> MessageKernelAccessResponse
            { family: kernel, client: kernel_access_raw, try_call: try_kernel_access };
    } };
}

/// Every RPC's method name, in the order of `leotest.proto` (metric labels, coverage counts).
pub const RPC_METHODS: &[&str] = {
    macro_rules! names {
        ($(
            $(#[$doc:meta])*
            $rpc:ident($req:ident) -> $resp:ident
                { family: $family:ident, client: $client:ident, try_call: $try_call:ident };
        )*) => {
            &[$(stringify!($rpc)),*]
        };
    }
    for_each_rpc!(names)
};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;
    use prost_types::FileDescriptorSet;
    use tonic::{Request, Response, Status};

    use crate::unary::*;
    use crate::LeotestOrchestrator;

    /// One table row as text: `(rpc, request, response)`.
    type Row = (&'static str, &'static str, &'static str);

    macro_rules! rows {
        ($(
            $(#[$doc:meta])*
            $rpc:ident($req:ident) -> $resp:ident
                { family: $family:ident, client: $client:ident, try_call: $try_call:ident };
        )*) => {
            vec![$((stringify!($rpc), stringify!($req), stringify!($resp))),*]
        };
    }

    macro_rules! try_calls {
        ($(
            $(#[$doc:meta])*
            $rpc:ident($req:ident) -> $resp:ident
                { family: $family:ident, client: $client:ident, try_call: $try_call:ident };
        )*) => {
            vec![$((stringify!($rpc), stringify!($try_call))),*]
        };
    }

    fn table() -> Vec<Row> {
        for_each_rpc!(rows)
    }

    /// `message_get_job_by_id` as prost names the Rust type: `MessageGetJobById`.
    fn rust_name(proto_type: &str) -> String {
        let bare = proto_type.rsplit('.').next().unwrap_or(proto_type);
        bare.split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The service's methods as `leotest.proto` compiles: `(rpc, request, response)`.
    fn compiled() -> Vec<(String, String, String)> {
        let set = FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).expect("descriptor");
        let file = set.file.into_iter().next().expect("one file");
        let service = file
            .service
            .iter()
            .find(|s| format!("{}.{}", file.package(), s.name()) == crate::SERVICE_NAME)
            .expect("the service");
        service
            .method
            .iter()
            .map(|m| {
                (
                    m.name().to_string(),
                    rust_name(m.input_type()),
                    rust_name(m.output_type()),
                )
            })
            .collect()
    }

    fn owned(rows: Vec<Row>) -> Vec<(String, String, String)> {
        rows.into_iter()
            .map(|(a, b, c)| (a.into(), b.into(), c.into()))
            .collect()
    }

    #[test]
    fn table_is_the_compiled_service_in_order() {
        assert_eq!(owned(table()), compiled());
    }

    #[test]
    fn table_is_the_original_contract_in_order() {
        let contract: serde_json::Value =
            serde_json::from_str(include_str!("../contract/leotest-contract.json"))
                .expect("contract JSON");
        let methods = contract["services"][0]["methods"]
            .as_array()
            .expect("methods");
        let theirs: Vec<(String, String, String)> = methods
            .iter()
            .map(|m| {
                let text = |k: &str| m[k].as_str().expect("a string").to_string();
                (
                    text("name"),
                    rust_name(&text("input")),
                    rust_name(&text("output")),
                )
            })
            .collect();
        assert_eq!(owned(table()), theirs);
        assert_eq!(table().len(), 28);
    }

    #[test]
    fn try_call_is_try_and_the_rpc() {
        for (rpc, try_call) in for_each_rpc!(try_calls) {
            assert_eq!(try_call, format!("try_{rpc}"));
        }
        let names: BTreeSet<_> = table().iter().map(|r| r.0).collect();
        assert_eq!(names.len(), table().len(), "an RPC is listed twice");
        let in_order: Vec<_> = table().iter().map(|r| r.0).collect();
        assert_eq!(crate::RPC_METHODS, in_order);
    }

    /// The generated server trait, implemented from the table: it compiles only if the
    /// table names every method of the trait, no other, with the generated message types.
    struct FromTable;

    macro_rules! server {
        ($(
            $(#[$doc:meta])*
            $rpc:ident($req:ident) -> $resp:ident
                { family: $family:ident, client: $client:ident, try_call: $try_call:ident };
        )*) => {
            #[tonic::async_trait]
            impl LeotestOrchestrator for FromTable {$(
                async fn $rpc(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(stringify!($rpc)))
                }
            )*}
        };
    }

    for_each_rpc!(server);

    #[test]
    fn table_implements_the_generated_server() {
        let _ = crate::LeotestOrchestratorServer::new(FromTable);
    }
}
