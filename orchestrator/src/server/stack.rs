//! The gRPC stack [`run`](super::run) serves: the orchestrator service with health and
//! reflection beside it, behind the budget, metrics and auth layers, under the HTTP/2 and
//! request budgets. One constructor, so that the in-process handler harness
//! (`orchestrator/tests/handlers`) serves what production serves, over its own transport,
//! rather than a copy of the assembly that can drift from it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leotest_proto::{LeotestOrchestratorServer, FILE_DESCRIPTOR_SET};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::service::Routes;
use tonic::transport::server::Connected;
use tonic::transport::Server;

use super::ServerError;
use crate::auth::{AuthLayer, Authenticator, JwtVerifier};
use crate::budgets::BudgetArgs;
use crate::clock::SharedClock;
use crate::config::ServerConfig;
use crate::conns::BudgetLayer;
use crate::metrics::layer::MetricsLayer;
use crate::metrics::Metrics;
use crate::service::{Ctx, OrchestratorService};
use crate::store::Store;

/// How often the store is probed for the health service.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// The services and layers of one orchestrator, ready to be served on any transport.
pub struct Stack {
    budgets: BudgetArgs,
    auth: Arc<Authenticator>,
    metrics: Option<Arc<Metrics>>,
    routes: Routes,
    store_up: Arc<AtomicBool>,
    health_task: AbortOnDrop,
}

/// The health task lives as long as the stack, served or not.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Stack {
    /// The stack over `store` (already bootstrapped), with the handlers' `clock`, JWTs
    /// checked by `jwt` when given, counted in `metrics` when given, and the service options
    /// and budgets of `cfg`. Starts the task that keeps the health service following the
    /// store; it stops when the stack is dropped or [`Stack::serve`] returns.
    pub async fn new(
        cfg: &ServerConfig,
        store: Arc<dyn Store>,
        clock: SharedClock,
        jwt: Option<JwtVerifier>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Stack, ServerError> {
        let auth = Arc::new(Authenticator::new(store.clone(), jwt));
        let service = OrchestratorService::new(Ctx {
            store: store.clone(),
            overlap: cfg.overlap_rules,
            tokens: cfg.token_storage,
            sched_memo: Default::default(),
            max_reply_bytes: cfg.budgets.max_reply_bytes,
            clock,
        });
        let grpc = LeotestOrchestratorServer::new(service)
            .max_decoding_message_size(cfg.max_message_bytes)
            .max_encoding_message_size(usize::MAX);

        // Built first: a failure here leaves no task behind.
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<LeotestOrchestratorServer<OrchestratorService>>()
            .await;
        // Health follows the store: NOT_SERVING while it cannot answer a ping.
        let store_up = Arc::new(AtomicBool::new(true));
        let store_up_task = Arc::clone(&store_up);
        let health_task = AbortOnDrop(tokio::spawn(async move {
            use tonic_health::ServingStatus;
            let mut tick = tokio::time::interval(HEALTH_INTERVAL);
            let mut serving = true;
            loop {
                tick.tick().await;
                let ok = store.ping().await.is_ok();
                if ok != serving {
                    serving = ok;
                    store_up_task.store(ok, Ordering::Relaxed);
                    let status = if ok {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    tracing::warn!(serving = ok, "store health changed");
                    for name in ["", leotest_proto::SERVICE_NAME] {
                        health.set_service_status(name, status).await;
                    }
                }
            }
        }));
        let routes = Routes::new(grpc)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        Ok(Stack {
            budgets: cfg.budgets.clone(),
            auth,
            metrics,
            routes,
            store_up,
            health_task,
        })
    }

    /// Whether the store answered its last health probe (the metrics endpoint's /healthz
    /// follows it, as the gRPC health service does).
    pub fn store_up(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.store_up)
    }

    /// Serves the stack on the connections of `incoming` until `shutdown` completes.
    pub async fn serve<I, IO, IE>(
        self,
        incoming: I,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error>
    where
        I: Stream<Item = Result<IO, IE>>,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Stack {
            budgets: b,
            auth,
            metrics,
            routes,
            health_task,
            ..
        } = self;
        let result = Server::builder()
            .max_concurrent_streams(b.max_concurrent_streams)
            .timeout(Duration::from_secs(b.request_timeout))
            .http2_keepalive_interval(Some(Duration::from_secs(b.keepalive_interval)))
            .http2_keepalive_timeout(Some(Duration::from_secs(b.keepalive_timeout)))
            // No grace: tonic's grace replaces the GOAWAY by a hard close. The request
            // time-out bounds how long a drained connection can linger.
            .max_connection_age(Duration::from_secs(b.max_connection_age))
            .initial_stream_window_size(b.stream_window())
            .initial_connection_window_size(b.connection_window())
            .max_frame_size(crate::budgets::MAX_FRAME_BYTES)
            .http2_max_header_list_size(crate::budgets::MAX_HEADER_LIST_BYTES)
            // Outermost first: the budget layer sees every request (busy connection, receive
            // budget), the metrics layer also the requests auth refuses.
            .layer(BudgetLayer)
            .layer(MetricsLayer::new(metrics.clone()))
            .layer(AuthLayer::new(auth, metrics))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        drop(health_task);
        result
    }
}
