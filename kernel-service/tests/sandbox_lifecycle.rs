//! Job lifecycle on real sandboxed processes (needs root): start/status/stop/watch/list,
//! ownership, replay, spill and the time limit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod jobs;

use jobs::{collect, manager, sh};

use std::time::{Duration, Instant};

use futures::StreamExt;
use leotest_kernel_service::sandbox::{
    ExitInfo, JobId, JobManager, JobState, SandboxConfig, SandboxError,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_status_watch_and_replay() {
    let m = manager();
    let id = m
        .start(
            "alice",
            sh("for i in 1 2 3 4 5; do echo out $i; echo err $i >&2; sleep 0.2; done"),
        )
        .await
        .unwrap();
    let st = m.status("alice", false, id.as_str()).unwrap();
    assert_eq!(st.state, JobState::Running, "{st}");
    assert_eq!(st.exit, None);

    // Two live watchers, one attached a little later, both must see everything from byte 0.
    let w1 = tokio::spawn({
        let (m, id) = (m.clone(), id.clone());
        async move { collect(&m, "alice", false, &id).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let w2 = tokio::spawn({
        let (m, id) = (m.clone(), id.clone());
        async move { collect(&m, "alice", false, &id).await }
    });
    let (a, b) = (w1.await.unwrap(), w2.await.unwrap());
    let expected: String = (1..=5).map(|i| format!("out {i}\nerr {i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&a), expected);
    assert_eq!(a, b);

    let st = m.wait("alice", false, id.as_str()).await.unwrap();
    assert_eq!(st.state, JobState::Completed, "{st}");
    assert_eq!(st.exit_code(), Some(0));
    assert!(
        st.stats.cpu_usage_usec.is_some() && st.stats.memory_peak.is_some(),
        "{st}"
    );

    // After exit, a new watcher replays everything and ends.
    assert_eq!(collect(&m, "alice", false, &id).await, a);

    // Stopping a finished job changes nothing.
    let again = m.stop("alice", false, id.as_str()).await.unwrap();
    assert_eq!(again.state, JobState::Completed);
    assert_eq!(again.exit, Some(ExitInfo::Code(0)));

    let listed = m.list("alice", false);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_the_whole_job() {
    let m = manager();
    let id = m
        .start("alice", sh("sleep 100 & sleep 100 & echo started; wait"))
        .await
        .unwrap();
    let mut watch = m.watch("alice", false, id.as_str()).unwrap();
    assert_eq!(&watch.next().await.unwrap()[..], b"started\n");
    let st = m.stop("alice", false, id.as_str()).await.unwrap();
    assert_eq!(st.state, JobState::Stopped, "{st}");
    assert_eq!(st.exit, Some(ExitInfo::Signal(9)));
    // The watcher ends once the job is gone (the background sleeps died with it).
    assert!(watch.next().await.is_none());
    assert_eq!(
        m.status("alice", false, id.as_str()).unwrap().state,
        JobState::Stopped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_only_owner_or_admin_sees_a_job() {
    let m = manager();
    let id = m.start("alice", sh("sleep 30")).await.unwrap();
    for res in [
        m.status("bob", false, id.as_str()).map(|_| ()),
        m.watch("bob", false, id.as_str()).map(|_| ()),
        m.stop("bob", false, id.as_str()).await.map(|_| ()),
    ] {
        assert!(matches!(res, Err(SandboxError::NotFound(_))), "{res:?}");
    }
    assert!(m.list("bob", false).is_empty());
    assert_eq!(m.list("root-admin", true).len(), 1);
    assert_eq!(
        m.status("alice", false, id.as_str()).unwrap().state,
        JobState::Running
    );
    let st = m.stop("root-admin", true, id.as_str()).await.unwrap();
    assert_eq!(st.state, JobState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_a_clear_error() {
    let m = manager();
    let fresh = JobId::random().unwrap();
    for id in [fresh.as_str(), "nope", "", "../../etc/passwd"] {
        let err = m.status("alice", true, id).unwrap_err();
        assert!(matches!(err, SandboxError::NotFound(_)), "{err:?}");
        assert!(err.to_string().starts_with("unknown job id"), "{err}");
        assert!(m.stop("alice", true, id).await.is_err());
        assert!(m.watch("alice", true, id).is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_reported() {
    let m = manager();
    let id = m.start("alice", sh("echo bye; exit 3")).await.unwrap();
    let st = m.wait("alice", false, id.as_str()).await.unwrap();
    assert_eq!((st.state, st.exit_code()), (JobState::Failed, Some(3)));

    let id = m
        .start("alice", vec!["no-such-command-xyz".into()])
        .await
        .unwrap();
    let st = m.wait("alice", false, id.as_str()).await.unwrap();
    assert_eq!(st.state, JobState::Failed, "{st}");
    let out = collect(&m, "alice", false, &id).await;
    assert!(String::from_utf8_lossy(&out).contains("cannot execute"));

    for bad in [vec![], vec!["".to_string()], vec!["a\0b".to_string()]] {
        assert!(matches!(
            m.start("alice", bad).await,
            Err(SandboxError::InvalidRequest(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_limit_kills_the_job() {
    let m = manager();
    let t0 = Instant::now();
    let out = m
        .run_oneshot("alice", sh("echo begin; sleep 60"), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(out.status.state, JobState::Failed, "{}", out.status);
    assert_eq!(out.status.reason.as_deref(), Some("time limit exceeded"));
    assert_eq!(out.output, b"begin\n");
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_output_spills_and_replays_exactly() {
    let spill = tempfile::tempdir().unwrap();
    let m = JobManager::new(SandboxConfig {
        output_memory_cap: 4096,
        spill_dir: spill.path().into(),
        ..SandboxConfig::default()
    })
    .unwrap();
    let id = m
        .start("alice", vec!["seq".into(), "1".into(), "100000".into()])
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        collect(&m, "alice", false, &id),
        collect(&m, "alice", false, &id)
    );
    let expected: String = (1..=100000).map(|i| format!("{i}\n")).collect();
    assert_eq!(a.len(), expected.len());
    assert!(a == expected.as_bytes() && b == a);
    assert_eq!(collect(&m, "alice", false, &id).await, a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded() {
    let m = JobManager::new(SandboxConfig {
        max_running: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let id = m.start("alice", sh("sleep 30")).await.unwrap();
    assert!(matches!(
        m.start("alice", sh("true")).await,
        Err(SandboxError::TooManyJobs(1))
    ));
    m.stop("alice", false, id.as_str()).await.unwrap();
    let id = m.start("alice", sh("true")).await.unwrap();
    assert_eq!(
        m.wait("alice", false, id.as_str()).await.unwrap().state,
        JobState::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_root_jobs_are_refused() {
    let err = JobManager::new(SandboxConfig {
        uid: 0,
        ..SandboxConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
}
