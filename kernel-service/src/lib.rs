//! LeoTest kernel service: the node daemon on TCP 9000.
//!
//! `unsafe` is denied everywhere but in [`sys`], the one home of system calls.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod caps;
pub mod commands;
pub mod config;
pub mod conncheck;
pub mod hardening;
pub mod identity;
pub mod logsafe;
pub mod metrics;
pub mod misses;
pub mod netns;
pub mod oracle;
pub mod preflight;
pub mod procsys;
pub mod protocol;
pub mod sandbox;
pub mod server;
pub mod sockdiag;
pub mod stale;
#[allow(unsafe_code)]
pub mod sys;
pub mod tcp_counters;
