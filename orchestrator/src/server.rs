//! Server assembly: store, admin bootstrap, TLS, listener, and the gRPC [`Stack`] served on
//! it.

mod stack;

pub use stack::Stack;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_stream::StreamExt;

use crate::auth::{AuthConfigError, JwtVerifier};
use crate::clock::SharedClock;
use crate::config::{ServerConfig, StoreKind};
use crate::conns::{ConnLimits, Conns};
use crate::handshake::{tls_incoming, HandshakeLimits};
use crate::listen::{bind, check_admin_exposure, listen_addr, ListenError};
use crate::metrics::conn::Counted;
use crate::metrics::store::TimedStore;
use crate::metrics::Metrics;
use crate::store::embedded::EmbeddedStore;
use crate::store::{Role, Store, StoreError, User};
use crate::tls::{load_server_tls, TlsError};

/// How often expired tasks and jobs are physically removed.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The JWT settings are inconsistent.
    #[error("JWT: {0}")]
    Auth(#[from] AuthConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// `--listen` cannot be served.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The gRPC server failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The source names the address already (`leotest_metrics::bind`).
    #[error("{source}")]
    Metrics {
        /// The metrics address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Opens the configured store backend.
pub async fn open_store(cfg: &ServerConfig) -> Result<Arc<dyn Store>, ServerError> {
    open_store_with_clock(cfg, crate::clock::system()).await
}

/// [`open_store`] with records expiring by `clock` (the server shares its own with the
/// handlers).
pub async fn open_store_with_clock(
    cfg: &ServerConfig,
    clock: SharedClock,
) -> Result<Arc<dyn Store>, ServerError> {
    match cfg.store_kind() {
        StoreKind::Embedded => {
            let dir = cfg.data_dir.clone();
            let store =
                tokio::task::spawn_blocking(move || EmbeddedStore::open_with_clock(&dir, clock))
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))??;
            tracing::info!(path = %store.path().display(), "embedded store opened");
            Ok(Arc::new(store))
        }
        StoreKind::Mongo => connect_mongo(&cfg.mongo_uri(), &cfg.db_name, clock).await,
    }
}

async fn connect_mongo(
    uri: &str,
    db_name: &str,
    clock: SharedClock,
) -> Result<Arc<dyn Store>, ServerError> {
    // The URI may carry credentials: log only the database name.
    tracing::info!(db = db_name, "connecting to MongoDB");
    let store = crate::store::mongo::MongoStore::connect_with_clock(uri, db_name, clock).await?;
    // Users answered from memory for at most 0.5 s (store::cached): authentication without a
    // round trip per request, revocation seen by every replica within a second.
    Ok(crate::store::cached::CachedUsers::shared(store))
}

/// Re-creates the `admin` user with the configured token, as the original does at start
/// (stored as `--token-storage` says).
pub async fn bootstrap_admin(
    store: &dyn Store,
    token: &str,
    storage: crate::tokens::TokenStorage,
) -> Result<(), StoreError> {
    let token = crate::tokens::stored_form(token, storage);
    store
        .put_user(&User {
            id: "admin".to_string(),
            name: "LEOScope Admin".to_string(),
            role: Role::Admin,
            team: "LeoScope MSR-India".to_string(),
            static_access_token: token.clone(),
            access_token: token,
        })
        .await
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
    // Refuse an exposed default token before anything is written (dev certificate, store).
    let addr = listen_addr(cfg.listen.as_deref(), cfg.grpc_port).await?;
    check_admin_exposure(addr, &cfg.admin_access_token, cfg.allow_default_admin_token)?;
    if cfg.listen.is_none() && cfg.grpc_hostname != "localhost" {
        tracing::warn!(
            grpc_hostname = %cfg.grpc_hostname,
            %addr,
            "--grpc-hostname does not choose the listen address (the original ignored it \
             too); use --listen to bind a specific address"
        );
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

    // Bound before the store is opened: a taken metrics port fails the start at once.
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(
            leotest_metrics::bind(addr)
                .await
                .map_err(|source| ServerError::Metrics { addr, source })?,
        ),
        None => None,
    };
    let metrics = metrics_listener
        .as_ref()
        .map(|_| Arc::new(Metrics::default()));

    // One clock for the stores, the handlers and the purge loop.
    let clock = crate::clock::system();
    let store = open_store_with_clock(&cfg, clock.clone()).await?;
    // Every user of the store (handlers, auth, housekeeping) goes through the timing wrapper.
    let store = match &metrics {
        Some(m) => TimedStore::shared(store, Arc::clone(m)),
        None => store,
    };
    bootstrap_admin(store.as_ref(), &cfg.admin_access_token, cfg.token_storage).await?;
    crate::tokens::warn_derivable(store.as_ref()).await;

    let purge_store = store.clone();
    let purge_clock = clock.clone();
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            match purge_store.purge_expired(purge_clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "expired records purged"),
                Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
            }
        }
    });

    let stack = Stack::new(&cfg, store, clock, jwt, metrics.clone()).await?;

    // Before anything holds descriptors: a flood must meet the connection limits, not EMFILE.
    let nofile = crate::budgets::raise_nofile();
    let listener = bind(addr)?;
    let local = listener
        .local_addr()
        .map_err(|source| ListenError::Bind { addr, source })?;
    let limits = HandshakeLimits {
        timeout: Duration::from_secs(cfg.handshake_timeout),
        max_pending: cfg.max_handshakes,
        max_per_source: cfg.max_handshakes_per_source,
    };
    // SIGHUP: re-read --tls-cert / --tls-key (certificate rotation without a restart).
    let reload_task = crate::tls_reload::spawn_on_sighup(crate::tls_reload::CertReloader::new(
        cfg.tls_cert.clone(),
        cfg.tls_key.clone(),
        tls.current.clone(),
    ));
    let b = &cfg.budgets;
    let trusted = Arc::new(b.trusted_proxies.clone());
    let (incoming, acceptor_task) = tls_incoming(
        listener,
        TlsAcceptor::from(tls.config),
        limits,
        Arc::clone(&trusted),
    );
    let max_connections =
        crate::budgets::fit_connections(b.max_connections, cfg.max_handshakes, nofile);
    let conns = Conns::new(ConnLimits {
        max: max_connections,
        max_per_source: b.max_connections_per_source,
        idle_timeout: b.idle_timeout(),
        receive_budget: b.max_connection_receive_bytes,
    });
    let reaper = conns.spawn_reaper();
    let conn_metrics = metrics.clone();
    let admitted = Arc::clone(&conns);
    let incoming = incoming.map(move |c| {
        c.and_then(|(tls, client)| admitted.admit(Counted::new(tls, conn_metrics.clone()), client))
    });
    let metrics_task = match (metrics_listener, &metrics) {
        (Some(l), Some(m)) => {
            let at = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(addr = %at, "metrics endpoint listening (HTTP: /metrics, /healthz)");
            // /healthz follows the store, as the gRPC health service does.
            let up = stack.store_up();
            let health: leotest_metrics::Health = Arc::new(move || up.load(Ordering::Relaxed));
            Some(tokio::spawn(leotest_metrics::serve(
                l,
                m.registry(),
                health,
            )))
        }
        _ => None,
    };
    tracing::info!(
        addr = %local,
        store = ?cfg.store_kind(),
        overlap_rules = ?cfg.overlap_rules,
        handshake_timeout_s = cfg.handshake_timeout,
        max_handshakes = cfg.max_handshakes,
        max_handshakes_per_source = cfg.max_handshakes_per_source,
        max_connections,
        max_connections_per_source = b.max_connections_per_source,
        max_concurrent_streams = b.max_concurrent_streams,
        trusted_proxies = %trusted,
        "orchestrator listening (TLS)"
    );

    let result = stack.serve(incoming, shutdown).await;
    purger.abort();
    reaper.abort();
    acceptor_task.abort();
    if let Some(t) = reload_task {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    tracing::info!("orchestrator stopped");
    Ok(result?)
}
