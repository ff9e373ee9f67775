//! Warm sandboxes (needs root): a killed waiting sandbox does not fail the next job, and
//! dropping the manager leaves no process or cgroup behind. Its own test binary, so every child
//! of this process is one of this manager's sandboxes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// a test: a panic is its failure report
// Raw system calls the sandbox must refuse, and signals to its processes: `unsafe` by nature.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use leotest_kernel_service::sandbox::{cgroup, JobManager, JobState, Layout, SandboxConfig};

const PARENT: &str = "leotest-jobs";

/// Directories that hold the job cgroups (one per hierarchy).
fn job_bases() -> Vec<PathBuf> {
    match cgroup::detect().expect("cgroup layout") {
        Layout::V1(dirs) => {
            let mut v: Vec<PathBuf> = dirs.values().map(|d| d.join(PARENT)).collect();
            v.sort();
            v.dedup();
            v
        }
        Layout::V2 { dir, .. } => vec![dir.join(PARENT)],
    }
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Our children sitting in job cgroups, with the cgroup directory name.
fn our_sandboxes() -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for base in job_bases() {
        let Ok(rd) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(procs) = std::fs::read_to_string(e.path().join("cgroup.procs")) else {
                continue;
            };
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if ppid(pid) == Some(me) {
                    out.push((pid, e.file_name().to_string_lossy().into_owned()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn wait_for(n: usize) -> Vec<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = our_sandboxes();
        if s.len() >= n || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_waiting_sandboxes_are_replaced_and_drop_cleans_up() {
    let m = JobManager::new(SandboxConfig::default()).expect("sandbox needs root and cgroups");
    let prewarm = SandboxConfig::default().prewarm;
    assert!(prewarm > 0);
    let waiting = wait_for(prewarm);
    assert_eq!(waiting.len(), prewarm, "{waiting:?}");
    for (pid, _) in &waiting {
        // SAFETY: kill(2) on a child of this process.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    // Both spares are dead: the start must still succeed, on a fresh sandbox.
    let out = m
        .run_oneshot(
            "alice",
            vec!["/bin/echo".into(), "ok".into()],
            Duration::from_secs(30),
        )
        .await
        .expect("job runs");
    assert_eq!(out.status.state, JobState::Completed, "{}", out.status);
    assert_eq!(out.output, b"ok\n");
    assert!(
        waiting.iter().all(|(_, id)| id != out.status.id.as_str()),
        "ran in a killed sandbox"
    );

    // (The second killed spare is still queued; it is found dead and replaced when its turn
    // comes, so at least one live spare is waiting again.)
    let ready = wait_for(1);
    assert!(!ready.is_empty());
    drop(m);
    assert!(
        our_sandboxes().is_empty(),
        "waiting sandboxes outlive the manager"
    );
    for (_, id) in ready {
        for base in job_bases() {
            assert!(!base.join(&id).exists(), "cgroup {id} left behind");
        }
    }
}
