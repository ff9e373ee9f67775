//! Per-user and total limits of the sandbox (needs root): one user cannot take the running-job
//! slots, the watcher slots or the spill space of everybody; a watcher whose client left frees
//! its slot at once; one-shot replies are capped.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod jobs;

use jobs::{collect, manager, sh};

use std::time::Duration;

use leotest_kernel_service::sandbox::output::{DISCARDED_MARKER, TRUNCATED_MARKER};
use leotest_kernel_service::sandbox::reader::CHARGE_AFTER;
use leotest_kernel_service::sandbox::{wire, JobId, JobManager, JobState, SandboxConfig};
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1024 * 1024;

async fn stop_all(m: &JobManager, who: &str, ids: &[JobId]) {
    for id in ids {
        let _ = m.stop(who, false, id.as_str()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_one_user_at_its_job_limit_does_not_stop_another() {
    let m = manager();
    let mut alice = Vec::new();
    let refusal = loop {
        match m.start("alice", sh("sleep 60")).await {
            Ok(id) => alice.push(id),
            Err(e) => break e.to_string(),
        }
        assert!(alice.len() <= 16, "no limit at all");
    };
    let bob = m.start("bob", sh("sleep 60")).await;
    stop_all(&m, "alice", &alice).await;
    let bob = bob.expect("bob's job.start refused while only alice is at her limit");
    m.stop("bob", false, bob.as_str()).await.unwrap();
    assert!(refusal.contains("for this user"), "{refusal}");
    assert_eq!(alice.len(), SandboxConfig::default().max_running_per_user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_watchers_are_limited_per_job_and_per_user() {
    let m = manager();
    let cfg = SandboxConfig::default();
    let jobs: Vec<JobId> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(m.start("alice", sh("sleep 60")).await.unwrap());
        }
        v
    };
    let mut held = Vec::new();
    for _ in 0..cfg.max_watchers_per_job {
        held.push(
            m.watch("alice", false, jobs[0].as_str())
                .expect("within the job limit"),
        );
    }
    let err = m
        .watch("alice", false, jobs[0].as_str())
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("on this job")),
        "{err:?}"
    );
    // A watcher given back is a slot free again.
    held.pop();
    held.push(
        m.watch("alice", false, jobs[0].as_str())
            .expect("freed slot"),
    );
    for _ in 0..cfg.max_watchers_per_user - cfg.max_watchers_per_job {
        held.push(
            m.watch("alice", false, jobs[1].as_str())
                .expect("within the user limit"),
        );
    }
    let err = m
        .watch("alice", false, jobs[2].as_str())
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("for this user")),
        "{err:?}"
    );
    // Another user (ADMIN here) still gets one on the same job.
    let admin = m.watch("admin", true, jobs[2].as_str());
    assert!(admin.is_ok());
    drop((held, admin));
    stop_all(&m, "alice", &jobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_watcher_whose_client_disconnects_frees_its_slot_at_once() {
    let m = manager();
    let per_job = SandboxConfig::default().max_watchers_per_job;
    let id = m
        .start("alice", sh("echo started; sleep 120"))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..per_job * 2 {
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let serve = tokio::spawn({
            let (m, id) = (m.clone(), id.clone());
            async move { wire::job_watch(&m, "alice", false, id.as_str(), &mut conn).await }
        });
        // The client reads the first output, then goes away while the job keeps running.
        let mut first = [0u8; 8];
        let mut c = client;
        tokio::io::AsyncReadExt::read_exact(&mut c, &mut first)
            .await
            .unwrap();
        assert_eq!(&first, b"started\n");
        drop(c);
        let res = tokio::time::timeout(Duration::from_secs(60), serve)
            .await
            .expect("the watch kept its slot after the client left")
            .unwrap();
        assert!(res.is_err(), "{res:?}");
    }
    // Twice the per-job limit came and went: every slot is free again.
    let held: Vec<_> = (0..per_job)
        .map(|_| m.watch("alice", false, id.as_str()).expect("slot freed"))
        .collect();
    assert_eq!(
        m.status("alice", false, id.as_str()).unwrap().state,
        JobState::Running
    );
    drop(held);
    m.stop("alice", false, id.as_str()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_oneshot_replies_are_capped() {
    let m = manager();
    let reply = wire::oneshot(&m, "alice", "head -c 3000000 /dev/zero").await;
    let cap = SandboxConfig::default().oneshot_output_max as usize;
    assert_eq!(reply.len(), cap + TRUNCATED_MARKER.len());
    assert!(reply.ends_with(TRUNCATED_MARKER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_spill_is_bounded_per_user_and_finished_jobs_give_theirs_up() {
    let spill = tempfile::tempdir().unwrap();
    let m = JobManager::new(SandboxConfig {
        output_memory_cap: 4096,
        spill_dir: spill.path().into(),
        spill_max: 3 * MIB,
        spill_max_per_user: MIB,
        ..SandboxConfig::default()
    })
    .unwrap();
    let write = |n: u64| sh(&format!("head -c {n} /dev/zero"));
    // Alice writes 3 MiB but may spill only 1 MiB; Bob, at the same time, gets his own share.
    let (a, b) = tokio::join!(m.start("alice", write(3 * MIB)), m.start("bob", write(MIB)));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (out_a, out_b) = tokio::join!(
        collect(&m, "alice", false, &a),
        collect(&m, "bob", false, &b)
    );
    assert!(out_a.ends_with(TRUNCATED_MARKER), "{}", out_a.len());
    assert!(out_a.len() as u64 <= MIB + 4096 + TRUNCATED_MARKER.len() as u64);
    assert_eq!(out_b.len() as u64, MIB, "bob's output was cut by alice's");
    m.wait("alice", false, a.as_str()).await.unwrap();
    let (_, alice_used) = m.spill_used("alice");
    assert!(
        alice_used <= MIB + TRUNCATED_MARKER.len() as u64,
        "{alice_used}"
    );

    // Alice's next job needs spill: her finished job's is given up for it.
    let c = m.start("alice", write(MIB / 2)).await.unwrap();
    let out_c = collect(&m, "alice", false, &c).await;
    assert_eq!(out_c.len() as u64, MIB / 2, "the running job was cut");
    let replay = collect(&m, "alice", false, &a).await;
    assert_eq!(replay.len(), 4096 + DISCARDED_MARKER.len());
    assert!(replay.ends_with(DISCARDED_MARKER));
    m.wait("alice", false, c.as_str()).await.unwrap();
    assert!(m.spill_used("alice").1 <= MIB);
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_finished_jobs_are_remembered_per_user() {
    let m = JobManager::new(SandboxConfig {
        max_finished: 8,
        max_finished_per_user: 4,
        ..SandboxConfig::default()
    })
    .unwrap();
    for who in [
        "bob", "bob", "alice", "alice", "alice", "alice", "alice", "alice",
    ] {
        let id = m.start(who, sh("true")).await.unwrap();
        m.wait(who, false, id.as_str()).await.unwrap();
    }
    assert_eq!(m.list("alice", false).len(), 4);
    assert_eq!(m.list("bob", false).len(), 2);
}

/// Issue 23: after the output cap the daemon kept reading (and discarding) a job's output for
/// the job's whole life, at a CPU cost outside any cgroup. Now it stops reading at the cap and
/// the job is stopped at once with a clear reason, its output kept up to the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_job_over_its_output_cap_is_stopped_not_read_forever() {
    let m = JobManager::new(SandboxConfig {
        output_max: 64 * 1024,
        ..SandboxConfig::default()
    })
    .unwrap();
    // Endless output: without the fix it runs until its wall-clock limit (10 minutes).
    let id = m
        .start("alice", vec!["/bin/cat".into(), "/dev/zero".into()])
        .await
        .unwrap();
    let st = tokio::time::timeout(Duration::from_secs(60), m.wait("alice", false, id.as_str()))
        .await
        .expect("stopped at the cap, not at the time limit")
        .unwrap();
    assert_eq!(st.state, JobState::Failed, "{st}");
    assert_eq!(st.reason.as_deref(), Some("output limit reached"), "{st}");
    let out = collect(&m, "alice", false, &id).await;
    assert_eq!(out.len(), 64 * 1024 + TRUNCATED_MARKER.len());
}

/// Threads of this process (the daemon) listed in a cgroup `tasks` file, with their names.
fn our_threads_in(tasks: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(tasks).unwrap_or_default();
    text.lines()
        .filter_map(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{}/comm", tid.trim())).ok()
        })
        .map(|c| c.trim().to_string())
        .collect()
}

/// Issue 23: reading a job's output cost the daemon as much CPU as writing it cost the job,
/// on a shared thread outside every cgroup (four `cat /dev/zero` jobs capped at 10 % made the
/// daemon use ~40 % of a core). Each job's reader is now a thread of its own that sits in the
/// job's CPU cgroup while it reads (the job's quota throttles it, its accounting counts it),
/// and leaves it before the cgroup is removed. cgroup v1 only (v2 cannot split a process's
/// threads across domain cgroups; there the output cap bounds the reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_jobs_output_reader_is_charged_to_the_job() {
    use leotest_kernel_service::sandbox::{cgroup, Layout};
    let Layout::V1(dirs) = cgroup::detect().unwrap() else {
        eprintln!("cgroup v2: a thread cannot join a job's cgroup; nothing to check");
        return;
    };
    let m = manager();
    // A little output is read at the daemon's expense (joining a cgroup costs milliseconds);
    // past CHARGE_AFTER bytes the reader joins the job.
    let lines = CHARGE_AFTER / 64 + 10;
    let script = format!(
        "i=0; while [ $i -lt {lines} ]; do echo {}; i=$((i+1)); done; sleep 60",
        "x".repeat(63)
    );
    let id = m.start("alice", sh(&script)).await.unwrap();
    let controllers: Vec<&str> = ["cpu", "cpuacct"]
        .into_iter()
        .filter(|c| dirs.contains_key(*c))
        .collect();
    let job_tasks = |c: &str| dirs[c].join("leotest-jobs").join(id.as_str()).join("tasks");
    for c in &controllers {
        let mut seen = Vec::new();
        // The reader joins right after the job starts: give it a moment, not a deadline race.
        for _ in 0..100 {
            seen = our_threads_in(&job_tasks(c));
            if !seen.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            seen,
            ["job-output"],
            "{c}: the daemon threads in the job's cgroup"
        );
    }
    // Only CPU: memory is charged per process, and the job's pids budget stays its own.
    for c in ["memory", "pids"] {
        let procs = dirs[c].join("leotest-jobs").join(id.as_str()).join("tasks");
        assert!(
            our_threads_in(&procs).is_empty(),
            "{c} holds a daemon thread"
        );
    }
    let st = m.stop("alice", false, id.as_str()).await.unwrap();
    assert_eq!(st.state, JobState::Stopped, "{st}");
    // The daemon survived the job's cleanup (which kills what is left in its cgroup), and the
    // cgroup is gone: the reader left it first.
    for c in &controllers {
        assert!(!job_tasks(c).exists(), "{c} cgroup left behind");
    }
    let out = collect(&m, "alice", false, &id).await;
    assert_eq!(out.len() as u64, lines * 64);
}
