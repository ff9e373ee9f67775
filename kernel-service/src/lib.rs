//! LeoTest kernel service: the node daemon on TCP 9000.

pub mod commands;
pub mod config;
pub mod identity;
pub mod metrics;
pub mod netns;
pub mod oracle;
pub mod procsys;
pub mod protocol;
pub mod sandbox;
pub mod server;
pub mod sockdiag;
