//! leotest-rs benchmarks: every figure is measured next to a baseline in the same run.

#![forbid(unsafe_code)]

pub mod cli;
pub mod compare;
pub mod docker_env;
pub mod ha;
pub mod kernel;
pub mod link;
pub mod load;
pub mod orch;
pub mod procs;
pub mod runs;
pub mod sandbox;
pub mod schedule;
pub mod sites;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

/// Knobs shared by the subcommands.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directory holding the release binaries under test.
    pub bin_dir: PathBuf,
    /// Length of each measured phase.
    pub duration: Duration,
    /// Concurrent gRPC streams.
    pub streams: usize,
    /// HTTP/2 connections the streams share.
    pub conns: usize,
    /// Sequential samples for the latency benchmarks.
    pub samples: usize,
    /// Short run for CI (numbers are not meaningful).
    pub smoke: bool,
}
