//! Typed errors of the client library, classified so callers can tell transient from fatal.

use std::path::PathBuf;

use tonic::Code;

/// Everything that can go wrong when talking to the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint string could not be turned into a URI.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA certificate file could not be read.
    #[error("cannot read CA certificate {}: {source}", path.display())]
    CaCert {
        /// The CA certificate path as given.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A user id or token cannot be sent as gRPC metadata (non-ASCII or control characters).
    #[error("invalid credentials: {0}")]
    InvalidCredentials(&'static str),
    /// TLS or channel configuration was rejected before any connection was made.
    #[error("cannot configure the connection: {0}")]
    Transport(#[source] tonic::transport::Error),
    /// The orchestrator could not be reached (connection refused, TLS failure, UNAVAILABLE).
    #[error("orchestrator unreachable: {0}")]
    Unavailable(String),
    /// The TLS handshake failed: the server's certificate is not trusted by the CA file, does
    /// not carry the expected name, or the server does not speak TLS. Not retried.
    #[error("{0}")]
    Tls(crate::tls::ConnectError),
    /// The call did not complete within the per-call timeout (or DEADLINE_EXCEEDED).
    #[error("request timed out: {0}")]
    Timeout(String),
    /// The orchestrator rejected the credentials.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    /// The credentials are valid but the caller may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Any other gRPC status.
    #[error("orchestrator returned {code:?}: {message}")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The status message sent by the orchestrator.
        message: String,
    },
}

impl ClientError {
    /// True for errors that may go away on their own, and only those are retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unavailable(_) | ClientError::Timeout(_))
    }

    /// The gRPC status code this error stands for, when it came from a call.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Unavailable(_) => Some(Code::Unavailable),
            ClientError::Timeout(_) => Some(Code::DeadlineExceeded),
            ClientError::Unauthenticated(_) => Some(Code::Unauthenticated),
            ClientError::PermissionDenied(_) => Some(Code::PermissionDenied),
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        if let Some(connect) = crate::tls::ConnectError::find(&status) {
            return match connect.stage {
                crate::tls::ConnectStage::Tls => ClientError::Tls(connect),
                _ => ClientError::Unavailable(connect.to_string()),
            };
        }
        match status.code() {
            Code::Unavailable => ClientError::Unavailable(describe_unavailable(&status)),
            // What a call gets when its connection is closed under it (hyper's "operation was
            // canceled: connection closed"), e.g. when HTTP/2 keepalive drops a connection a
            // satellite handover stalled: the orchestrator was not heard, so it is retried.
            Code::Cancelled => ClientError::Unavailable(describe_unavailable(&status)),
            // The other form of it ("transport error": the connection broke while the call was
            // on it) is made on this side, with the transport's error as its source; an
            // UNKNOWN the server sent carries none and is not retried.
            Code::Unknown if std::error::Error::source(&status).is_some() => {
                ClientError::Unavailable(describe_unavailable(&status))
            }
            Code::DeadlineExceeded => ClientError::Timeout(message),
            Code::Unauthenticated => ClientError::Unauthenticated(message),
            Code::PermissionDenied => ClientError::PermissionDenied(message),
            code => ClientError::Status { code, message },
        }
    }
}

/// Connection failures carry their cause (refused, TLS) in the source chain, not the message.
fn describe_unavailable(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let part = err.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = err.source();
    }
    text
}
