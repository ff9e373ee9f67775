//! Typed calls: [`As`] is a client acting as one identity, with every RPC of the contract as a
//! method that takes the message (or a shorthand for it, see [`Msg`]) and returns the reply,
//! panicking on an error status; `try_<rpc>` returns the status instead. The free functions
//! below register identities the way an operator does and build the records tests reuse.

use leotest_proto::unary::*;
use leotest_proto::LeotestOrchestratorClient;
use tonic::transport::Channel;
use tonic::Status;

use crate::{future_year, req, token_from_message, Creds, Orchestrator};

/// The generated orchestrator client over a TLS channel, as the tests use it.
pub type Client = LeotestOrchestratorClient<Channel>;

/// What an RPC method of [`As`] accepts for the message `M`: the message itself, or a
/// shorthand (the id alone for the messages that carry only an id, `()` for an empty query).
pub trait Msg<M> {
    /// Builds the message.
    fn msg(self) -> M;
}

impl<M> Msg<M> for M {
    fn msg(self) -> M {
        self
    }
}

macro_rules! id_shorthand {
    ($($msg:ident { $field:ident }),* $(,)?) => {$(
        impl Msg<$msg> for &str {
            fn msg(self) -> $msg {
                $msg { $field: self.into() }
            }
        }
    )*};
}

id_shorthand!(
    MessageGetUser { userid },
    MessageDeleteUser { userid },
    MessageKernelAccess { userid },
    MessageHeartbeat { nodeid },
    MessageGetScavengerStatus { nodeid },
    MessageGetJobById { jobid },
    MessageGetJobsByUserid { userid },
    MessageGetJobsByNodeid { nodeid },
    MessageDeleteJobById { jobid },
    MessageDeleteJobsByNodeid { nodeid },
);

macro_rules! empty_shorthand {
    ($($msg:ident),* $(,)?) => {$(
        impl Msg<$msg> for () {
            fn msg(self) -> $msg {
                $msg::default()
            }
        }
    )*};
}

empty_shorthand!(
    MessageGetGlobalConfig,
    MessageGetNodes,
    MessageGetRuns,
    MessageGetTasks
);

/// A client acting as `creds`. Cheap to clone (the channel is shared).
#[derive(Clone)]
pub struct As {
    client: Client,
    creds: Creds,
}

impl As {
    /// Calls on `client` (a cheap clone of its channel) that carry `creds`.
    pub fn new(client: &Client, creds: &Creds) -> As {
        As {
            client: client.clone(),
            creds: creds.clone(),
        }
    }

    /// The credentials every call carries.
    pub fn creds(&self) -> &Creds {
        &self.creds
    }
}

/// Generates both methods of [`As`] for each RPC of the table.
macro_rules! rpcs {
    ($(
        $(#[$doc:meta])*
        $rpc:ident($msg:ident) -> $reply:ident
            { family: $family:ident, client: $client:ident, try_call: $try_rpc:ident };
    )*) => {
        impl As {$(
            #[doc = concat!("`", stringify!($rpc), "`; the error status as `Err`.")]
            pub async fn $try_rpc(&self, m: impl Msg<$msg>) -> Result<$reply, Status> {
                self.client
                    .clone()
                    .$rpc(req(m.msg(), &self.creds))
                    .await
                    .map(tonic::Response::into_inner)
            }

            #[doc = concat!("`", stringify!($rpc), "`; panics on an error status.")]
            pub async fn $rpc(&self, m: impl Msg<$msg>) -> $reply {
                self.$try_rpc(m).await.unwrap_or_else(|s| {
                    panic!(concat!(stringify!($rpc), " as {}: {:?}"), self.creds.who(), s)
                })
            }
        )*}
    };
}

leotest_proto::for_each_rpc!(rpcs);

/// A `register_user` message (`name` is `"<id> name"`, team `team-x`, as [`user`] registers).
pub fn user_msg(id: &str, role: UserRoles) -> MessageRegisterUser {
    MessageRegisterUser {
        id: id.into(),
        name: format!("{id} name"),
        role: role as i32,
        team: "team-x".into(),
    }
}

/// Registers a user through the admin and returns its credentials.
pub async fn user(s: &Orchestrator, id: &str, role: UserRoles) -> Creds {
    let r = As::new(&s.client().await, &Creds::admin())
        .register_user(user_msg(id, role))
        .await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    Creds::token(id, &token_from_message(&r.message))
}

/// The node record a test registers.
pub fn node_record(id: &str) -> Node {
    Node {
        nodeid: id.into(),
        name: format!("{id}-name"),
        description: "roof".into(),
        coords: "12.9,77.5".into(),
        location: "bangalore".into(),
        provider: "starlink".into(),
        ..Default::default()
    }
}

/// `register_node` as the admin; the raw reply.
pub async fn register_node_reply(s: &Orchestrator, id: &str) -> MessageRegisterNodeResponse {
    As::new(&s.client().await, &Creds::admin())
        .register_node(MessageRegisterNode {
            node: Some(node_record(id)),
        })
        .await
}

/// Registers a node and returns the credentials its reply carries.
pub async fn node(s: &Orchestrator, id: &str) -> Creds {
    let r = register_node_reply(s, id).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    Creds::token(id, &token_from_message(&r.message))
}

/// An atq job on `nodeid` (with a server node unless `server` is empty), far in the future.
pub fn atq_job(id: &str, nodeid: &str, server: &str) -> MessageScheduleJob {
    let y = future_year();
    MessageScheduleJob {
        id: id.into(),
        nodeid: nodeid.into(),
        r#type: JobType::Atq as i32,
        params: Some(JobParams {
            mode: "docker".into(),
            deploy: "image=x".into(),
            execute: "run".into(),
            finish: String::new(),
        }),
        start_date: format!("{y}-03-01 10:00:00"),
        end_date: format!("{y}-03-02 10:00:00"),
        length_secs: 600,
        overhead: false,
        // As the original client: `server` only when non-empty.
        server: (!server.is_empty()).then(|| server.into()),
        config: format!("secret: config of {id}\n"),
        ..Default::default()
    }
}

/// `ScheduleJob` as `who`; panics on a transport error, not on a refused job.
pub async fn schedule(
    c: &mut Client,
    who: &Creds,
    job: MessageScheduleJob,
) -> MessageScheduleJobResponse {
    As::new(c, who).schedule_job(job).await
}

/// A run of `jobid` as a node agent reports it.
pub fn run(runid: &str, jobid: &str, nodeid: &str, userid: &str) -> RunInstance {
    let y = future_year();
    RunInstance {
        runid: runid.into(),
        jobid: jobid.into(),
        nodeid: nodeid.into(),
        userid: userid.into(),
        start_time: format!("{y}-03-01 10:00:00"),
        end_time: format!("{y}-03-01 10:10:00"),
        last_updated: format!("{y}-03-01 10:10:00"),
        blob_url: "https://blob.example/run.zip".into(),
        status: "EXECUTING".into(),
        status_message: "Executing job.".into(),
    }
}

/// `UpdateRun` of `r` as `who`.
pub async fn update_run(c: &mut Client, who: &Creds, r: RunInstance) -> MessageUpdateRunResponse {
    As::new(c, who)
        .update_run(MessageUpdateRun { run: Some(r) })
        .await
}

/// `GetRuns` as `who`: the runs only.
pub async fn get_runs(c: &mut Client, who: &Creds, m: MessageGetRuns) -> Vec<RunInstance> {
    As::new(c, who).get_runs(m).await.runs
}

/// `GetJobById` as `who`.
pub async fn get_job(c: &mut Client, who: &Creds, jobid: &str) -> MessageGetJobByIdResponse {
    As::new(c, who).get_job_by_id(jobid).await
}

/// `GetUser` as `who`.
pub async fn get_user(c: &mut Client, who: &Creds, userid: &str) -> MessageGetUserResponse {
    As::new(c, who).get_user(userid).await
}

/// `GetNodes` as `who`: the nodes only.
pub async fn nodes(c: &mut Client, who: &Creds, m: MessageGetNodes) -> Vec<Node> {
    As::new(c, who).get_nodes(m).await.nodes
}

/// A SERVER_START task as the client node's executor schedules it.
pub fn task(taskid: &str, runid: &str, jobid: &str, nodeid: &str) -> Task {
    Task {
        r#type: TaskType::ServerStart as i32,
        taskid: taskid.into(),
        runid: runid.into(),
        jobid: jobid.into(),
        nodeid: nodeid.into(),
        ttl_secs: 600,
        ..Default::default()
    }
}

/// `ScheduleTask` of `t` as `who`.
pub async fn schedule_task(c: &mut Client, who: &Creds, t: Task) -> MessageScheduleTaskResponse {
    As::new(c, who)
        .schedule_task(MessageScheduleTask { task: Some(t) })
        .await
}

/// `GetTasks` as `who`: the tasks only.
pub async fn get_tasks(c: &mut Client, who: &Creds, m: MessageGetTasks) -> Vec<Task> {
    As::new(c, who).get_tasks(m).await.tasks
}

/// `UpdateTask` as `who`, marking `taskid` complete.
pub async fn update_task(c: &mut Client, who: &Creds, taskid: &str) -> MessageUpdateTaskResponse {
    As::new(c, who)
        .update_task(MessageUpdateTask {
            taskid: taskid.into(),
            status: TaskStatus::TaskComplete as i32,
        })
        .await
}

/// The denial text of the original for `creds` with `role`.
pub fn denied(creds: &Creds, role: &str) -> String {
    format!("permission denied: userid={} and role={role}", creds.who())
}

/// Whether `creds` authenticate on the server behind `c` (a `get_user` of the admin answers).
pub async fn authenticates(c: &mut LeotestOrchestratorClient<Channel>, creds: &Creds) -> bool {
    c.get_user(req(
        MessageGetUser {
            userid: "admin".into(),
        },
        creds,
    ))
    .await
    .is_ok()
}
