//! A typed, retrying, TLS gRPC client for the LeoTest orchestrator: the library half of the
//! client, in a crate of its own so the kernel service (which asks `kernel_access`) builds
//! neither the CLI nor its dependencies. `leotest-client` re-exports all of it.
//!
//! One async method per RPC of `unary.LeotestOrchestrator`; credentials travel as the
//! original's metadata (`x-leotest-userid` + `x-leotest-access-token`, or
//! `x-leotest-jwt-access-token`). Transient failures are retried within a [`RetryPolicy`].

#![forbid(unsafe_code)]

mod connect;
mod error;
pub mod retry;
pub mod tls;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leotest_proto::unary;
use leotest_proto::LeotestOrchestratorClient;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

pub use error::ClientError;
pub use leotest_proto;
use leotest_proto::MAX_CREDENTIAL_LEN;
pub use leotest_proto::{JWT_HEADER, TOKEN_HEADER, USERID_HEADER};
pub use retry::RetryPolicy;

/// CA certificate used when none is given, relative to the working directory like the original.
pub const DEFAULT_CA_CERT: &str = "certs/server.crt";
/// TLS server name used when none is given (the original's `ssl_target_name_override`).
pub const DEFAULT_DOMAIN: &str = "localhost";

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// User id plus static (or per-user) access token.
    Static {
        /// User id sent in the `userid` metadata header.
        userid: String,
        /// Token sent in the `access_token` metadata header; never printed.
        access_token: String,
    },
    /// A JWT whose `userid` claim names the user.
    Jwt(String),
}

impl fmt::Debug for Credentials {
    // Never print a token, even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Static { userid, .. } => f
                .debug_struct("Static")
                .field("userid", userid)
                .field("access_token", &"<redacted>")
                .finish(),
            Credentials::Jwt(_) => f.debug_tuple("Jwt").field(&"<redacted>").finish(),
        }
    }
}

/// Everything needed to reach and authenticate to an orchestrator.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` or `https://host:port`.
    pub endpoint: String,
    /// PEM CA certificate; `None` means [`DEFAULT_CA_CERT`].
    pub ca_cert: Option<PathBuf>,
    /// Name the server certificate must carry.
    pub domain: String,
    /// Another name accepted when the certificate does not carry `domain` (see
    /// [`tls::NameFallback`]); `None` checks `domain` only.
    pub fallback_domain: Option<String>,
    /// Who the client says it is, sent with every call.
    pub credentials: Credentials,
    /// Limit for each call (and for connecting).
    pub timeout: Duration,
    /// When failed calls are tried again (only transient failures are).
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// A config with the original's defaults for everything but endpoint and credentials.
    pub fn new(endpoint: impl Into<String>, credentials: Credentials) -> Self {
        ClientConfig {
            endpoint: endpoint.into(),
            ca_cert: None,
            domain: DEFAULT_DOMAIN.to_string(),
            fallback_domain: None,
            credentials,
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// Connection behaviour beyond [`ClientConfig`]; the default is what [`LeotestClient::connect`]
/// uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    /// HTTP/2 keepalive: a PING after this much silence on the connection (idle or not), and
    /// the connection is dropped (the next call reconnects) when its answer does not come
    /// within the same time. A dead link is then noticed in about twice this, not at a call's
    /// deadline. `None`: no pings (the original's client sends none).
    pub keepalive: Option<Duration>,
}

/// Metadata values, validated once at connect time.
#[derive(Clone)]
enum AuthMetadata {
    Static {
        userid: AsciiMetadataValue,
        token: AsciiMetadataValue,
    },
    Jwt(AsciiMetadataValue),
}

impl AuthMetadata {
    fn from_credentials(creds: &Credentials) -> Result<Self, ClientError> {
        fn value(text: &str, what: &'static str) -> Result<AsciiMetadataValue, ClientError> {
            if text.is_empty() || text.len() > MAX_CREDENTIAL_LEN {
                return Err(ClientError::InvalidCredentials(what));
            }
            let mut v: AsciiMetadataValue = text
                .parse()
                .map_err(|_| ClientError::InvalidCredentials(what))?;
            v.set_sensitive(true);
            Ok(v)
        }
        Ok(match creds {
            Credentials::Static {
                userid,
                access_token,
            } => AuthMetadata::Static {
                userid: value(userid, "user id is empty, too long or not printable ASCII")?,
                token: value(
                    access_token,
                    "access token is empty, too long or not printable ASCII",
                )?,
            },
            Credentials::Jwt(jwt) => {
                AuthMetadata::Jwt(value(jwt, "JWT is empty, too long or not printable ASCII")?)
            }
        })
    }

    fn apply(&self, md: &mut MetadataMap) {
        match self {
            AuthMetadata::Static { userid, token } => {
                md.insert(USERID_HEADER, userid.clone());
                md.insert(TOKEN_HEADER, token.clone());
            }
            AuthMetadata::Jwt(jwt) => {
                md.insert(JWT_HEADER, jwt.clone());
            }
        }
    }
}

/// A connection to the orchestrator; cheap to clone (clones share one channel).
#[derive(Clone)]
pub struct LeotestClient {
    grpc: LeotestOrchestratorClient<Channel>,
    auth: AuthMetadata,
    timeout: Duration,
    retry: RetryPolicy,
    /// `host:port` as given, for error messages.
    endpoint: String,
    /// Attempts after the first, over every call of this client and its clones.
    retries: Arc<AtomicU64>,
}

impl fmt::Debug for LeotestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeotestClient")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Turns `host:port` into an `https://` URI; plaintext is refused (the orchestrator is TLS-only).
pub fn endpoint_uri(endpoint: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    if trimmed.starts_with("http://") {
        return Err(invalid(
            "plaintext http is not supported, use https:// or host:port",
        ));
    }
    let uri = if trimmed.starts_with("https://") {
        trimmed.to_string()
    } else if trimmed.contains("://") {
        return Err(invalid("only https:// is supported"));
    } else {
        format!("https://{trimmed}")
    };
    let parsed: http::Uri = uri.parse().map_err(|_| invalid("not a valid host:port"))?;
    if parsed.host().is_none_or(str::is_empty) {
        return Err(invalid("missing host"));
    }
    Ok(uri)
}

impl LeotestClient {
    /// Prepares a TLS channel; the network connection is made lazily on the first call.
    ///
    /// The server certificate is checked by [`tls::PinnedOrWebPki`]: one byte-identical to a
    /// certificate of the CA file is trusted (as grpcio does), anything else needs WebPKI.
    pub async fn connect(cfg: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_with(cfg, ChannelOptions::default()).await
    }

    /// [`LeotestClient::connect`] with [`ChannelOptions`].
    pub async fn connect_with(
        cfg: ClientConfig,
        opts: ChannelOptions,
    ) -> Result<Self, ClientError> {
        let auth = AuthMetadata::from_credentials(&cfg.credentials)?;
        let uri = endpoint_uri(&cfg.endpoint)?;
        let invalid = |reason: String| ClientError::InvalidEndpoint {
            endpoint: cfg.endpoint.clone(),
            reason,
        };
        let parsed: http::Uri = uri.parse().map_err(|_| invalid("not a valid URI".into()))?;
        let authority = parsed
            .authority()
            .ok_or_else(|| invalid("missing host".into()))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(443);
        let ca_path = cfg
            .ca_cert
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_CERT));
        let pem = tokio::fs::read(&ca_path)
            .await
            .map_err(|source| ClientError::CaCert {
                path: ca_path.clone(),
                source,
            })?;
        let connector =
            tls::TlsConnector::with_fallback(&pem, &cfg.domain, cfg.fallback_domain.as_deref())
                .map(|c| c.handshake_timeout(cfg.timeout))
                .map_err(|e| match e {
                    tls::TlsSetupError::ServerName(_) => ClientError::InvalidEndpoint {
                        endpoint: cfg.domain.clone(),
                        reason: e.to_string(),
                    },
                    other => ClientError::CaCert {
                        path: ca_path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            other.to_string(),
                        ),
                    },
                })?;
        // tonic's own TLS cannot take a custom verifier: the connector does TCP + TLS and tonic
        // sees a plain `http://` transport, while requests still carry the `https` origin.
        let connect = tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            let host = host.clone();
            async move {
                let tls = connector.connect(&host, port).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        let mut endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| invalid(e.to_string()))?
            .origin(parsed)
            .connect_timeout(cfg.timeout);
        if let Some(k) = opts.keepalive.filter(|k| !k.is_zero()) {
            endpoint = endpoint
                .http2_keep_alive_interval(k)
                .keep_alive_timeout(k)
                .keep_alive_while_idle(true);
        }
        let channel = endpoint.connect_with_connector_lazy(connect);
        Ok(LeotestClient {
            grpc: LeotestOrchestratorClient::new(channel),
            auth,
            timeout: cfg.timeout,
            retry: cfg.retry,
            endpoint: cfg.endpoint.clone(),
            retries: Arc::default(),
        })
    }

    /// Retries made after transient errors by this client and its clones, since it was made.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        self.auth.apply(request.metadata_mut());
        request
    }

    /// Runs one RPC with credentials, per-call timeout and retry of transient errors.
    async fn call<Req, Resp, F, Fut>(&self, message: Req, rpc: F) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(LeotestOrchestratorClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let timeout = self.timeout;
        let endpoint = &self.endpoint;
        retry::with_retry_counted(&self.retry, &self.retries, || {
            let fut = rpc(self.grpc.clone(), self.request(message.clone()));
            async move {
                match tokio::time::timeout(timeout, fut).await {
                    Ok(Ok(response)) => Ok(response.into_inner()),
                    Ok(Err(status)) => Err(ClientError::from(status)),
                    Err(_) => Err(ClientError::Timeout(format!(
                        "no reply from {endpoint} within {} ms",
                        timeout.as_millis()
                    ))),
                }
            }
        })
        .await
    }

    /// Asks whether `userid` may change kernel settings (the kernel service's check).
    pub async fn kernel_access(
        &self,
        userid: &str,
    ) -> Result<unary::MessageKernelAccessResponse, ClientError> {
        self.kernel_access_raw(unary::MessageKernelAccess {
            userid: userid.to_string(),
        })
        .await
    }
}

/// Generates one typed method per RPC of the table, named as its `client` column says.
macro_rules! rpc_methods {
    ($(
        $(#[$doc:meta])*
        $rpc:ident($req:ident) -> $resp:ident
            { family: $family:ident, client: $method:ident, try_call: $try_call:ident };
    )*) => {
        impl LeotestClient {
            $(
                $(#[$doc])*
                pub async fn $method(
                    &self,
                    request: unary::$req,
                ) -> Result<unary::$resp, ClientError> {
                    self.call(request, |mut grpc, req| async move { grpc.$rpc(req).await })
                        .await
                }
            )*
        }
    };
}

leotest_proto::for_each_rpc!(rpc_methods);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_host_port_and_https() {
        assert_eq!(
            endpoint_uri("localhost:50051").unwrap(),
            "https://localhost:50051"
        );
        assert_eq!(
            endpoint_uri("https://10.0.0.1:443").unwrap(),
            "https://10.0.0.1:443"
        );
    }

    #[test]
    fn endpoint_rejects_plaintext_and_garbage() {
        for bad in ["", "http://h:1", "ftp://h:1", "exa mple:1"] {
            assert!(
                matches!(endpoint_uri(bad), Err(ClientError::InvalidEndpoint { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn credentials_debug_hides_tokens() {
        let s = Credentials::Static {
            userid: "alice".into(),
            access_token: "s3cret".into(),
        };
        let j = Credentials::Jwt("eyJ.secret.sig".into());
        let text = format!("{s:?} {j:?}");
        assert!(text.contains("alice"));
        assert!(
            !text.contains("s3cret") && !text.contains("secret.sig"),
            "{text}"
        );
    }

    #[test]
    fn credentials_must_be_metadata_safe() {
        let bad = Credentials::Static {
            userid: "alice".into(),
            access_token: "line\nbreak".into(),
        };
        assert!(matches!(
            AuthMetadata::from_credentials(&bad),
            Err(ClientError::InvalidCredentials(_))
        ));
        assert!(AuthMetadata::from_credentials(&Credentials::Jwt(String::new())).is_err());
    }
}
