//! Real sandboxed jobs on this machine (needs root): namespaces, identity, filesystem and limits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod jobs;

use jobs::{manager, run, sh};

use std::time::{Duration, Instant};

use leotest_kernel_service::sandbox::spec::DEFAULT_JOB_UID_BASE;
use leotest_kernel_service::sandbox::{
    cgroup, ExitInfo, JobManager, JobState, Layout, SandboxConfig,
};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_is_sandbox() {
    let (st, out) = run(&manager(), sh("cat /proc/sys/kernel/hostname; hostname")).await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    assert_eq!(out, "sandbox\nsandbox\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_job_sees_only_its_own_pids() {
    let (st, out) = run(
        &manager(),
        sh("echo self=$$; for p in /proc/[0-9]*; do echo ${p#/proc/}; done"),
    )
    .await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("self=1"), "{out}");
    let pids: Vec<u32> = lines.map(|l| l.parse().expect("numeric pid")).collect();
    // The shell (1) and at most the short-lived glob expansion helpers; never host pids.
    assert!(pids.contains(&1), "{out}");
    assert!(
        pids.iter().all(|p| *p < 10),
        "foreign pids visible: {pids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_job_has_no_network() {
    let m = manager();
    let (st, out) = run(&m, sh("tail -n +3 /proc/net/dev | cut -d: -f1")).await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    assert_eq!(out.trim(), "lo", "interfaces: {out}");
    let (_, out) = run(&m, vec!["ip".into(), "-o".into(), "link".into()]).await;
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("lo:") && !out.contains(",UP"),
        "loopback must be down: {out}"
    );
    let (_, out) = run(
        &m,
        sh("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 9000), 2)' 2>&1 | tail -n 1"),
    )
    .await;
    assert!(out.contains("unreachable"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_job_runs_unprivileged_with_minimal_env() {
    let m = manager();
    let (st, out) = run(
        &m,
        sh("id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; pwd; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"),
    )
    .await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    let l: Vec<&str> = out.lines().collect();
    // Its own uid and gid from the reserved range (issue 23), as `job.status` says.
    let uid = st.uid.to_string();
    assert!(st.uid >= DEFAULT_JOB_UID_BASE, "{st}");
    assert_eq!(
        &l[..5],
        [uid.as_str(), &uid, &uid, "NoNewPrivs:\t1", "/tmp"],
        "{out}"
    );
    // Permitted, effective and bounding capability sets are all empty.
    assert_eq!(l.len(), 8, "{out}");
    assert!(
        l[5..].iter().all(|c| c.ends_with("\t0000000000000000")),
        "{out}"
    );
    let (_, env) = run(&m, vec!["env".into()]).await;
    let mut keys: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    keys.sort();
    assert_eq!(keys, ["HOME", "LANG", "PATH", "TMPDIR"], "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_writes_outside_the_job_dir_fail() {
    let probe = format!("/var/tmp/leotest-sandbox-probe-{}", std::process::id());
    let script = format!(
        "echo a > {probe} || echo denied-var; echo b > /etc/leotest-probe || echo denied-etc; \
         echo c > /dev/shm/x || echo denied-shm; echo d > ./mine && cat ./mine; \
         touch /tmp/own && echo tmp-ok"
    );
    let (st, out) = run(&manager(), sh(&script)).await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    for want in ["denied-var", "denied-etc", "denied-shm", "d\n", "tmp-ok"] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!std::path::Path::new(&probe).exists());
    assert!(!std::path::Path::new("/etc/leotest-probe").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_memory_hog_is_killed_at_the_limit() {
    // A 96 MiB limit rather than the default 512: at the job's 10 % of a core `tail` needs
    // most of a minute to fill 512 MiB on a busy machine (it met the time limit first in CI).
    let mut cfg = SandboxConfig::default();
    cfg.limits.memory_max = 96 * MIB;
    cfg.limits.memory_high = 64 * MIB;
    let m = JobManager::new(cfg).expect("sandbox needs root and cgroups");
    let (st, out) = run(&m, vec!["tail".into(), "/dev/zero".into()]).await;
    assert_eq!(st.state, JobState::Failed, "{st}");
    assert_eq!(st.exit, Some(ExitInfo::Signal(9)), "{st}");
    assert!(st.stats.oom_kills.unwrap_or(0) >= 1, "{st}");
    let peak = st.stats.memory_peak.expect("peak accounted");
    assert!(peak > 48 * MIB && peak <= 97 * MIB, "peak {peak}: {st}");
    assert!(
        st.reason.as_deref().unwrap_or("").contains("out of memory"),
        "{st} {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_fork_bomb_stops_at_pids_max() {
    let m = manager();
    let id = m
        .start("alice", sh("f(){ f | f & }; f; sleep 60"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut max_seen = 0;
    let mut hits = 0;
    while Instant::now() < deadline && hits == 0 {
        let st = m.status("alice", false, id.as_str()).unwrap();
        assert_eq!(st.state, JobState::Running, "{st}");
        max_seen = max_seen.max(st.stats.pids_current.unwrap_or(0));
        hits = st.stats.pids_limit_hits.unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hits > 0, "pids.max never refused a fork");
    assert!(max_seen <= 64, "saw {max_seen} tasks");
    let st = m.stop("alice", false, id.as_str()).await.unwrap();
    assert_eq!(st.state, JobState::Stopped, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_spinner_gets_about_ten_percent_of_a_core() {
    let m = manager();
    let id = m.start("alice", sh("while :; do :; done")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let u0 = m
        .status("alice", false, id.as_str())
        .unwrap()
        .stats
        .cpu_usage_usec
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s1 = m.status("alice", false, id.as_str()).unwrap();
    let wall = t0.elapsed().as_micros() as f64;
    let share = (s1.stats.cpu_usage_usec.unwrap() - u0) as f64 / wall;
    assert!(s1.stats.cpu_throttled_periods.unwrap_or(0) > 0, "{s1}");
    m.stop("alice", false, id.as_str()).await.unwrap();
    assert!((0.03..=0.25).contains(&share), "cpu share {share:.3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_job_is_in_its_cgroup_from_the_start_and_it_is_removed_after() {
    let m = manager();
    let (st, out) = run(&m, vec!["cat".into(), "/proc/self/cgroup".into()]).await;
    assert_eq!(st.state, JobState::Completed);
    let needle = format!("/leotest-jobs/{}", st.id);
    // The very first read of the program already sees its job cgroup in every controller used.
    for ctrl in ["memory", "pids", "cpu"] {
        assert!(
            out.lines()
                .any(|l| l.contains(ctrl) && l.ends_with(&needle))
                || out
                    .lines()
                    .any(|l| l.starts_with("0::") && l.ends_with(&needle)),
            "{ctrl} not joined: {out}"
        );
    }
    if let Layout::V1(dirs) = cgroup::detect().unwrap() {
        for d in dirs.values() {
            assert!(!d.join("leotest-jobs").join(st.id.as_str()).exists());
        }
        // While running, the io throttle is applied to the block devices.
        let id = m.start("alice", sh("sleep 30")).await.unwrap();
        if let Some(blk) = dirs.get("blkio") {
            let f = blk
                .join("leotest-jobs")
                .join(id.as_str())
                .join("blkio.throttle.write_bps_device");
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.contains(&(5 * MIB).to_string()), "{text}");
        }
        m.stop("alice", false, id.as_str()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_has_its_own_pid_mount_net_uts_and_ipc_namespaces() {
    let kinds = ["pid", "mnt", "net", "uts", "ipc"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let (st, out) = run(&manager(), sh(&script)).await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    let inside: Vec<&str> = out.lines().collect();
    assert_eq!(inside.len(), kinds.len(), "{out}");
    for (k, seen) in kinds.iter().zip(inside) {
        let host = std::fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
        assert!(seen.starts_with(&format!("{k}:[")), "{seen}");
        assert_ne!(
            seen,
            host.to_string_lossy(),
            "{k} namespace shared with the host"
        );
    }
}

/// Issue 23: every job ran as uid 65534, and the kernel counts some quotas per uid: one job
/// holding every inotify instance its uid may have left none to another user's job (nor to any
/// host process running as `nobody`). Each running job now has a uid of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_one_jobs_per_uid_quota_is_not_anothers() {
    use futures::StreamExt;
    let m = manager();
    let hog = "import ctypes, time\nl = ctypes.CDLL(None)\nn = 0\n\
               while n < 100000 and l.inotify_init() >= 0:\n    n += 1\n\
               print(n, flush=True)\ntime.sleep(60)\n";
    let id = m
        .start("alice", vec!["python3".into(), "-c".into(), hog.into()])
        .await
        .unwrap();
    // Its first output: every instance its uid may have is taken.
    let mut w = m.watch("alice", false, id.as_str()).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), w.next())
        .await
        .unwrap()
        .unwrap();
    let taken: u64 = String::from_utf8_lossy(&first).trim().parse().unwrap();
    assert!(taken > 0 && taken < 100_000, "{taken}");
    let probe = "import ctypes; print(ctypes.CDLL(None).inotify_init() >= 0)";
    let o = m
        .run_oneshot(
            "bob",
            vec!["python3".into(), "-c".into(), probe.into()],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.output), "True\n");
    let hog_uid = m.status("alice", false, id.as_str()).unwrap().uid;
    assert_ne!(hog_uid, o.status.uid);
    m.stop("alice", false, id.as_str()).await.unwrap();
}
