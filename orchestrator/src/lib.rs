//! LeoTest orchestrator: the gRPC control plane of the testbed.

#![forbid(unsafe_code)]

pub mod auth;
pub mod budgets;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conns;
pub mod error;
pub mod handshake;
pub mod jwtcmd;
pub mod listen;
pub mod logsafe;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod schedule;
pub mod server;
pub mod service;
pub mod store;
pub mod timefmt;
pub mod tls;
pub mod tls_reload;
pub mod tokens;
