//! The LeoTest wire contract (`package unary`): messages, enums, and the
//! `LeotestOrchestrator` client and server generated from `leotest.proto`.
//!
//! Nothing else in the workspace defines wire types. The names are the
//! original's (snake_case messages, `_node`, `_task`), so the generated Rust
//! types are re-exported under readable aliases where that helps callers.
//!
//! It is also the home of the few words every side shares: how times are written
//! ([`timefmt`]) and how caller-supplied text reaches a log line ([`logsafe`]), and the one
//! list of the service's RPCs the other crates generate their per-RPC code from
//! ([`for_each_rpc!`]).

#![forbid(unsafe_code)]
#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

pub mod logsafe;
mod metadata;
mod rpcs;
pub mod timefmt;

pub use metadata::{JWT_HEADER, MAX_CREDENTIAL_LEN, TOKEN_HEADER, USERID_HEADER};
pub use rpcs::RPC_METHODS;

/// Generated code for `package unary`.
// Generated from leotest.proto by tonic/prost: the .proto file is where its items are
// described, and its generated items carry no docs we could add, so missing_docs is off here.
#[allow(missing_docs)]
pub mod unary {
    tonic::include_proto!("unary");
}

pub use unary::leotest_orchestrator_client::LeotestOrchestratorClient;
pub use unary::leotest_orchestrator_server::{LeotestOrchestrator, LeotestOrchestratorServer};

/// Encoded `FileDescriptorSet` of `leotest.proto`, for gRPC reflection and tests.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/leotest_descriptor.bin"));

/// Fully qualified gRPC service name.
pub const SERVICE_NAME: &str = "unary.LeotestOrchestrator";
