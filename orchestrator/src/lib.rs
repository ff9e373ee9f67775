//! LeoTest orchestrator: the gRPC control plane of the testbed.

pub mod schedule;
