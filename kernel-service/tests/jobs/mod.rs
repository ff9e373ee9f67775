//! Helpers of the sandbox tests (real jobs, needs root): a job manager with the default
//! configuration, `sh -c` argv, a one-shot run and a watch read to its end.
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use leotest_kernel_service::sandbox::{JobId, JobManager, JobStatus, SandboxConfig};

pub(crate) fn manager() -> JobManager {
    JobManager::new(SandboxConfig::default()).expect("sandbox needs root and cgroups")
}

pub(crate) fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// A one-shot job of `alice` (60 s at most): its status and output.
pub(crate) async fn run(m: &JobManager, argv: Vec<String>) -> (JobStatus, String) {
    let o = m
        .run_oneshot("alice", argv, Duration::from_secs(60))
        .await
        .expect("job runs");
    (o.status, String::from_utf8_lossy(&o.output).into_owned())
}

/// Everything `job.watch` of `id` replays and streams, as `who` (an admin if `admin`).
pub(crate) async fn collect(m: &JobManager, who: &str, admin: bool, id: &JobId) -> Vec<u8> {
    m.watch(who, admin, id.as_str())
        .expect("watch")
        .fold(Vec::new(), |mut acc, b| async move {
            acc.extend_from_slice(&b);
            acc
        })
        .await
}
