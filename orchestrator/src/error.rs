//! Handler errors and their single mapping to gRPC statuses.
//!
//! Most refusals of the original are ordinary replies (`state = FAILED` plus a message) and
//! never come here; this is for what the original reported as a gRPC status, and for faults.

use tonic::Status;

use crate::store::StoreError;

/// Why a handler could not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The RPC exists in the contract but is not implemented (yet).
    #[error("{0} is not implemented")]
    Unimplemented(&'static str),
    /// The request is malformed in a way the reply type cannot express.
    #[error("{0}")]
    InvalidArgument(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something on this server failed (e.g. the OS random source); the detail is logged.
    #[error("{0}")]
    Internal(String),
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Unimplemented(rpc) => {
                Status::unimplemented(format!("{rpc} is not implemented"))
            }
            ServiceError::InvalidArgument(msg) => Status::invalid_argument(msg),
            ServiceError::Store(StoreError::Unavailable(detail)) => {
                tracing::error!(%detail, "store unavailable");
                Status::unavailable("store unavailable")
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal failure");
                Status::internal("internal error")
            }
            ServiceError::Store(err) => {
                // Details stay in the log; clients learn nothing about the backend.
                tracing::error!(error = %err, "store failure");
                Status::internal("internal error")
            }
        }
    }
}

/// What handlers return.
pub type ServiceResult<T> = Result<T, ServiceError>;
