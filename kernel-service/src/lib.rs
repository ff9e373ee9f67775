//! LeoTest kernel service: the node daemon on TCP 9000.
//!
//! `unsafe` is denied everywhere but in [`sys`], the one home of system calls.

#![deny(unsafe_code)]
#![warn(unsafe_op_in_unsafe_fn)]

// Until their system calls move under `sys` too (helper `kern`'s part of the same step).
#[allow(unsafe_code)]
pub mod commands;
pub mod config;
pub mod identity;
pub mod metrics;
#[allow(unsafe_code)]
pub mod netns;
pub mod oracle;
#[allow(unsafe_code)]
pub mod procsys;
pub mod protocol;
pub mod sandbox;
pub mod server;
#[allow(unsafe_code)]
pub mod sockdiag;
#[allow(unsafe_code)]
pub mod sys;
