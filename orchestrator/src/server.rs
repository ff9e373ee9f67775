//! Server assembly: store, admin bootstrap, TLS, auth layer, health, reflection, listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use leotest_proto::{LeotestOrchestratorServer, FILE_DESCRIPTOR_SET};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::auth::{AuthConfigError, AuthLayer, Authenticator, JwtVerifier};
use crate::config::{ServerConfig, StoreKind};
use crate::service::{Ctx, OrchestratorService};
use crate::store::embedded::EmbeddedStore;
use crate::store::{Role, Store, StoreError, User};
use crate::tls::{load_server_tls, TlsError};

/// How often expired tasks and jobs are physically removed.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the store is probed for the health service.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// A client must finish its TLS handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait to be accepted.
const MAX_PENDING_HANDSHAKES: usize = 512;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("JWT: {0}")]
    Auth(#[from] AuthConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Opens the configured store backend.
pub async fn open_store(cfg: &ServerConfig) -> Result<Arc<dyn Store>, ServerError> {
    match cfg.store_kind() {
        StoreKind::Embedded => {
            let dir = cfg.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))??;
            tracing::info!(path = %store.path().display(), "embedded store opened");
            Ok(Arc::new(store))
        }
        StoreKind::Mongo => connect_mongo(&cfg.mongo_uri(), &cfg.db_name).await,
    }
}

async fn connect_mongo(uri: &str, db_name: &str) -> Result<Arc<dyn Store>, ServerError> {
    // The URI may carry credentials: log only the database name.
    tracing::info!(db = db_name, "connecting to MongoDB");
    let store = crate::store::mongo::MongoStore::connect(uri, db_name).await?;
    // Users answered from memory for at most 0.5 s (store::cached): authentication without a
    // round trip per request, revocation seen by every replica within a second.
    Ok(crate::store::cached::CachedUsers::shared(store))
}

/// Re-creates the `admin` user with the configured token, as the original does at start.
pub async fn bootstrap_admin(store: &dyn Store, token: &str) -> Result<(), StoreError> {
    store
        .put_user(&User {
            id: "admin".to_string(),
            name: "LEOScope Admin".to_string(),
            role: Role::Admin,
            team: "LeoScope MSR-India".to_string(),
            static_access_token: token.to_string(),
            access_token: token.to_string(),
        })
        .await
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ServerError> {
    // Accept the bracketed IPv6 form too (`[::]`, as the original's bind address).
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| ServerError::Resolve(format!("{host}:{port}")))?
        .collect();
    // Prefer IPv4: the original clients default to 0.0.0.0 / 127.0.0.1.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| ServerError::Resolve(format!("{host}:{port}")))
}

type TlsConn = Result<TlsStream<TcpStream>, std::io::Error>;

/// Accepts TCP connections and hands the completed TLS sessions to the gRPC server.
fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> (ReceiverStream<TlsConn>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<TlsConn>(64);
    let slots = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let task = tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    (ReceiverStream::new(rx), task)
}

/// Runs the orchestrator until `shutdown` completes.
pub async fn run(
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let jwt = JwtVerifier::from_settings(
        &cfg.jwt_algo,
        &cfg.jwt_secret,
        cfg.jwt_public_key.as_deref(),
    )?;
    if jwt.is_none() {
        tracing::info!(algo = %cfg.jwt_algo, "JWT authentication disabled (unknown algorithm)");
    }
    let tls = load_server_tls(
        &cfg.tls_cert,
        &cfg.tls_key,
        cfg.tls_client_ca.as_deref(),
        cfg.tls_paths_are_default(),
    )?;
    if tls.generated {
        tracing::warn!(
            cert = %cfg.tls_cert.display(),
            key = %cfg.tls_key.display(),
            "no certificate found: generated a self-signed development pair (SAN localhost)"
        );
    }

    let store = open_store(&cfg).await?;
    bootstrap_admin(store.as_ref(), &cfg.admin_access_token).await?;

    let purge_store = store.clone();
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            match purge_store.purge_expired(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "expired records purged"),
                Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
            }
        }
    });

    let auth = Arc::new(Authenticator::new(store.clone(), jwt));
    let service = OrchestratorService::new(Ctx {
        store: store.clone(),
        overlap: cfg.overlap_rules,
    });
    let grpc = LeotestOrchestratorServer::new(service)
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(usize::MAX);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<LeotestOrchestratorServer<OrchestratorService>>()
        .await;
    // Health follows the store: NOT_SERVING while it cannot answer a ping.
    let health_store = store.clone();
    let health_task = tokio::spawn(async move {
        use tonic_health::ServingStatus;
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        let mut serving = true;
        loop {
            tick.tick().await;
            let ok = health_store.ping().await.is_ok();
            if ok != serving {
                serving = ok;
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
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let addr = resolve(&cfg.grpc_hostname, cfg.grpc_port).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let (incoming, acceptor_task) = tls_incoming(listener, TlsAcceptor::from(tls.config));
    tracing::info!(
        addr = %local,
        store = ?cfg.store_kind(),
        overlap_rules = ?cfg.overlap_rules,
        "orchestrator listening (TLS)"
    );

    let result = Server::builder()
        .layer(AuthLayer::new(auth))
        .add_service(grpc)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    purger.abort();
    health_task.abort();
    acceptor_task.abort();
    tracing::info!("orchestrator stopped");
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_addresses() {
        let a = resolve("127.0.0.1", 5).await.expect("v4");
        assert_eq!(a, "127.0.0.1:5".parse().expect("addr"));
        let a = resolve("[::]", 6).await.expect("bracketed v6");
        assert_eq!(a, "[::]:6".parse().expect("addr"));
        let a = resolve("localhost", 7).await.expect("localhost");
        assert!(a.ip().is_loopback());
        assert!(resolve("no such host.invalid", 8).await.is_err());
    }
}
