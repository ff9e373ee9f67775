//! Typed calls for the RPC-semantics tests (tokens, ownership, wire replies): register
//! identities the way an operator does, and one-line wrappers that return the reply.

use leotest_proto::unary::*;
use leotest_proto::LeotestOrchestratorClient;
use tonic::transport::Channel;

use super::{req, Creds, TestServer};

pub type Client = LeotestOrchestratorClient<Channel>;

/// The token a registration reply carries (`... access_token=<token>`), as clients parse it.
pub fn token_from_message(message: &str) -> String {
    message
        .rsplit_once("access_token=")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("no access_token in {message:?}"))
}

/// Registers a user through the admin and returns its credentials.
pub async fn user(s: &TestServer, id: &str, role: UserRoles) -> Creds {
    let r = s
        .client()
        .await
        .register_user(req(
            MessageRegisterUser {
                id: id.into(),
                name: format!("{id} name"),
                role: role as i32,
                team: "team-x".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("register_user")
        .into_inner();
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
pub async fn register_node_reply(s: &TestServer, id: &str) -> MessageRegisterNodeResponse {
    s.client()
        .await
        .register_node(req(
            MessageRegisterNode {
                node: Some(node_record(id)),
            },
            &Creds::admin(),
        ))
        .await
        .expect("register_node")
        .into_inner()
}

/// Registers a node and returns the credentials its reply carries.
pub async fn node(s: &TestServer, id: &str) -> Creds {
    let r = register_node_reply(s, id).await;
    assert_eq!(r.state, ResponseState::Success as i32, "{}", r.message);
    Creds::token(id, &token_from_message(&r.message))
}

/// An atq job on `nodeid` (with a server node unless `server` is empty), far in the future.
pub fn atq_job(id: &str, nodeid: &str, server: &str) -> MessageScheduleJob {
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
        start_date: "2030-03-01 10:00:00".into(),
        end_date: "2030-03-02 10:00:00".into(),
        length_secs: 600,
        overhead: false,
        // As the original client: `server` only when non-empty.
        server: (!server.is_empty()).then(|| server.into()),
        config: format!("secret: config of {id}\n"),
        ..Default::default()
    }
}

pub async fn schedule(
    c: &mut Client,
    who: &Creds,
    job: MessageScheduleJob,
) -> MessageScheduleJobResponse {
    c.schedule_job(req(job, who))
        .await
        .expect("schedule_job")
        .into_inner()
}

/// A run of `jobid` as a node agent reports it.
pub fn run(runid: &str, jobid: &str, nodeid: &str, userid: &str) -> RunInstance {
    RunInstance {
        runid: runid.into(),
        jobid: jobid.into(),
        nodeid: nodeid.into(),
        userid: userid.into(),
        start_time: "2030-03-01 10:00:00".into(),
        end_time: "2030-03-01 10:10:00".into(),
        last_updated: "2030-03-01 10:10:00".into(),
        blob_url: "https://blob.example/run.zip".into(),
        status: "EXECUTING".into(),
        status_message: "Executing job.".into(),
    }
}

pub async fn update_run(c: &mut Client, who: &Creds, r: RunInstance) -> MessageUpdateRunResponse {
    c.update_run(req(MessageUpdateRun { run: Some(r) }, who))
        .await
        .expect("update_run")
        .into_inner()
}

pub async fn get_runs(c: &mut Client, who: &Creds, m: MessageGetRuns) -> Vec<RunInstance> {
    c.get_runs(req(m, who))
        .await
        .expect("get_runs")
        .into_inner()
        .runs
}

pub async fn get_job(c: &mut Client, who: &Creds, jobid: &str) -> MessageGetJobByIdResponse {
    c.get_job_by_id(req(
        MessageGetJobById {
            jobid: jobid.into(),
        },
        who,
    ))
    .await
    .expect("get_job_by_id")
    .into_inner()
}

pub async fn get_user(c: &mut Client, who: &Creds, userid: &str) -> MessageGetUserResponse {
    c.get_user(req(
        MessageGetUser {
            userid: userid.into(),
        },
        who,
    ))
    .await
    .expect("get_user")
    .into_inner()
}

pub async fn nodes(c: &mut Client, who: &Creds, m: MessageGetNodes) -> Vec<Node> {
    c.get_nodes(req(m, who))
        .await
        .expect("get_nodes")
        .into_inner()
        .nodes
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

pub async fn schedule_task(c: &mut Client, who: &Creds, t: Task) -> MessageScheduleTaskResponse {
    c.schedule_task(req(MessageScheduleTask { task: Some(t) }, who))
        .await
        .expect("schedule_task")
        .into_inner()
}

pub async fn get_tasks(c: &mut Client, who: &Creds, m: MessageGetTasks) -> Vec<Task> {
    c.get_tasks(req(m, who))
        .await
        .expect("get_tasks")
        .into_inner()
        .tasks
}

pub async fn update_task(c: &mut Client, who: &Creds, taskid: &str) -> MessageUpdateTaskResponse {
    c.update_task(req(
        MessageUpdateTask {
            taskid: taskid.into(),
            status: TaskStatus::TaskComplete as i32,
        },
        who,
    ))
    .await
    .expect("update_task")
    .into_inner()
}

/// The denial text of the original for `creds` with `role`.
pub fn denied(creds: &Creds, role: &str) -> String {
    let Creds::Token(id, _) = creds else {
        panic!("token credentials expected")
    };
    format!("permission denied: userid={id} and role={role}")
}
