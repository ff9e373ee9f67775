//! The `LeotestOrchestrator` gRPC service: thin handlers grouped by RPC family.
//!
//! Every RPC goes through the same wrapper: take the [`Caller`] the auth layer attached, call
//! `family::rpc(&ctx, &caller, request)`, map a [`ServiceError`] to a status in one place.

pub mod access;
pub mod config;
pub mod convert;
pub mod jobs;
pub mod kernel;
pub mod nodes;
pub mod outcome;
pub mod reply;
pub mod runs;
mod sched_memo;
pub use sched_memo::SchedMemo;
pub mod tasks;
pub mod users;
pub mod validate;

use std::sync::Arc;

use leotest_proto::unary::*;
use leotest_proto::LeotestOrchestrator;
use tonic::{Request, Response, Status};

use crate::auth::{caller_of, Caller};
use crate::error::ServiceError;
use crate::logsafe::untrusted;
use crate::store::Store;

/// What every handler may use.
#[derive(Clone)]
pub struct Ctx {
    /// Where everything is stored.
    pub store: Arc<dyn Store>,
    /// `--overlap-rules`: conflict check of schedule_job and slot search of
    /// reschedule_job_nearest.
    pub overlap: crate::schedule::OverlapRules,
    /// `--token-storage`: how tokens issued by register_user / register_node are stored.
    pub tokens: crate::tokens::TokenStorage,
    /// Parsed schedules of stored jobs, reused between bookings (`sched_memo`).
    pub sched_memo: Arc<SchedMemo>,
    /// `--max-reply-bytes`: the largest reply a list RPC builds.
    pub max_reply_bytes: usize,
    /// The time of day of every handler (heartbeats, task expiry, active-node filters).
    pub clock: crate::clock::SharedClock,
}

/// The gRPC service implementation.
#[derive(Clone)]
pub struct OrchestratorService {
    ctx: Ctx,
}

impl OrchestratorService {
    /// The gRPC service over `ctx`.
    pub fn new(ctx: Ctx) -> OrchestratorService {
        OrchestratorService { ctx }
    }
}

/// Runs one handler: the caller from the auth layer, the reply or the error status, the
/// refusal marker for the metrics (`outcome::Outcome`) and, for a state-changing RPC, its
/// audit line.
async fn dispatch<Req, Resp, Fut>(
    rpc: &'static str,
    request: Request<Req>,
    handler: impl FnOnce(Caller, Req) -> Fut,
) -> Result<Response<Resp>, Status>
where
    Req: outcome::Audit,
    Resp: outcome::Outcome,
    Fut: std::future::Future<Output = Result<Resp, ServiceError>>,
{
    let caller = caller_of(&request)?;
    tracing::debug!(rpc, userid = %untrusted(&caller.userid), role = caller.role.name(), "rpc");
    let req = request.into_inner();
    let target = if Req::AUDITED {
        Some(req.target())
    } else {
        None
    };
    let result = handler(caller.clone(), req).await;
    let refused = matches!(&result, Ok(r) if r.refused());
    let result = result.map_err(Status::from);
    if let Some(target) = target {
        let what = match &result {
            Ok(_) if refused => "refused".to_string(),
            Ok(_) => "ok".to_string(),
            Err(status) => format!("error ({:?})", status.code()),
        };
        outcome::audit(rpc, &caller, &target, &what);
    }
    result.map(|reply| {
        let mut response = Response::new(reply);
        if refused {
            response.extensions_mut().insert(crate::metrics::Refused);
        }
        response
    })
}

/// Implements the service from the RPC table: each method runs `family::rpc` through
/// [`dispatch`].
macro_rules! rpcs {
    ($(
        $(#[$doc:meta])*
        $name:ident($req:ident) -> $resp:ident
            { family: $family:ident, client: $client:ident, try_call: $try_call:ident };
    )*) => {
        #[tonic::async_trait]
        impl LeotestOrchestrator for OrchestratorService {
            $(
                async fn $name(
                    &self,
                    request: Request<$req>,
                ) -> Result<Response<$resp>, Status> {
                    let ctx = &self.ctx;
                    dispatch(stringify!($name), request, |caller, req| async move {
                        $family::$name(ctx, &caller, req).await
                    })
                    .await
                }
            )*
        }
    };
}

leotest_proto::for_each_rpc!(rpcs);

/// `(state, message)` reply helpers shared by the families.
pub(crate) fn state(ok: bool) -> i32 {
    if ok {
        ResponseState::Success as i32
    } else {
        ResponseState::Failed as i32
    }
}
