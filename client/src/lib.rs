//! LeoTest client library: the orchestrator's typed, retrying, TLS gRPC client (the
//! `leotest-rpc` crate, re-exported whole so `leotest_client::LeotestClient`, `tls`, `retry`, ...
//! stay where they were) and the kernel service's port-9000 client ([`kernel`]).
//!
//! One async method per RPC of `unary.LeotestOrchestrator`; credentials travel as the
//! original's metadata (`x-leotest-userid` + `x-leotest-access-token`, or
//! `x-leotest-jwt-access-token`). Transient failures are retried within a [`RetryPolicy`].

#![forbid(unsafe_code)]

pub mod kernel;

pub use leotest_rpc::*;
