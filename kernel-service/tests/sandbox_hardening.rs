//! Sandbox hardening on real jobs (needs root): the seccomp filters refuse namespace creation,
//! mounts, bpf, the keyring, ptrace, perf, modules and kexec; the job sees a minimal root (no
//! host files outside it, no /sys); ordinary commands still run.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// a test: a panic is its failure report
// Raw system calls the sandbox must refuse, and signals to its processes: `unsafe` by nature.
#![allow(unsafe_code)]

mod jobs;

use jobs::{manager, run, sh};

use leotest_kernel_service::sandbox::JobState;

/// Calls each `name:nr:arg0` by number with zero arguments otherwise and prints the outcome.
const PROBE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for spec in sys.argv[1:]:
    name, nr, arg0 = spec.split(":")
    ctypes.set_errno(0)
    args = [ctypes.c_long(int(nr)), ctypes.c_long(int(arg0))] + [ctypes.c_long(0)] * 5
    r = libc.syscall(*args)
    if r == 0 and name == "clone":
        os._exit(0)
    print(name, "refused:" + os.strerror(ctypes.get_errno()) if r == -1 else "allowed")
sys.stdout.flush()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_seccomp_refuses_the_kernel_attack_surface() {
    let newuser = libc::CLONE_NEWUSER as i64;
    let refused: Vec<(&str, i64, i64)> = vec![
        ("unshare", libc::SYS_unshare, newuser),
        ("unshare", libc::SYS_unshare, libc::CLONE_NEWNET as i64),
        ("clone", libc::SYS_clone, newuser | libc::SIGCHLD as i64),
        ("setns", libc::SYS_setns, 0),
        ("mount", libc::SYS_mount, 0),
        ("umount2", libc::SYS_umount2, 0),
        ("pivot_root", libc::SYS_pivot_root, 0),
        ("chroot", libc::SYS_chroot, 0),
        ("fsopen", libc::SYS_fsopen, 0),
        ("open_tree", libc::SYS_open_tree, 0),
        ("bpf", libc::SYS_bpf, 0),
        ("keyctl", libc::SYS_keyctl, 0),
        ("add_key", libc::SYS_add_key, 0),
        ("request_key", libc::SYS_request_key, 0),
        ("ptrace", libc::SYS_ptrace, 0),
        ("perf_event_open", libc::SYS_perf_event_open, 0),
        ("kexec_load", libc::SYS_kexec_load, 0),
        ("kexec_file_load", libc::SYS_kexec_file_load, 0),
        ("init_module", libc::SYS_init_module, 0),
        ("finit_module", libc::SYS_finit_module, 0),
        ("delete_module", libc::SYS_delete_module, 0),
        ("io_uring_setup", libc::SYS_io_uring_setup, 0),
        ("userfaultfd", libc::SYS_userfaultfd, 0),
    ];
    let mut argv: Vec<String> = vec!["python3".into(), "-c".into(), PROBE.into()];
    argv.extend(refused.iter().map(|(n, nr, a)| format!("{n}:{nr}:{a}")));
    // Control: unshare without namespace flags stays allowed; clone3 says ENOSYS so that
    // libc falls back to clone (whose flags the filter can see).
    argv.push(format!(
        "unshare-files:{}:{}",
        libc::SYS_unshare,
        libc::CLONE_FILES
    ));
    argv.push(format!("clone3:{}:0", libc::SYS_clone3));
    let (st, out) = run(&manager(), argv).await;
    assert_eq!(st.state, JobState::Completed, "{st} {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), refused.len() + 2, "{out}");
    for ((name, _, _), line) in refused.iter().zip(&lines) {
        assert_eq!(
            *line,
            format!("{name} refused:Operation not permitted"),
            "{out}"
        );
    }
    assert_eq!(lines[refused.len()], "unshare-files allowed", "{out}");
    assert_eq!(
        lines[refused.len() + 1],
        "clone3 refused:Function not implemented",
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_no_user_namespace_root_and_threads_still_work() {
    let m = manager();
    let (st, out) = run(&m, sh("unshare -U -r id -u 2>&1; echo rc=$?")).await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.trim_end().ends_with("rc=1"), "{out}");
    let (_, out) = run(&m, sh("grep -E '^Seccomp(_filters)?:' /proc/self/status")).await;
    assert_eq!(out, "Seccomp:\t2\nSeccomp_filters:\t2\n", "{out}");
    // pthread_create goes through clone3 -> ENOSYS -> clone.
    let (st, out) = run(
        &m,
        vec![
            "python3".into(),
            "-c".into(),
            "import threading; t = threading.Thread(target=print, args=('thread-ok',)); \
             t.start(); t.join()"
                .into(),
        ],
    )
    .await;
    assert_eq!(
        (st.state, out.as_str()),
        (JobState::Completed, "thread-ok\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_the_job_sees_a_minimal_root() {
    let probe = format!("/var/tmp/leotest-rootfs-probe-{}", std::process::id());
    std::fs::write(&probe, "host secret\n").unwrap();
    let script = format!(
        "cat {probe} 2>/dev/null || echo no-probe; ls /sys/class/net 2>/dev/null || echo no-sys; \
         cat /etc/hostname 2>/dev/null || echo no-hostname; ls /work 2>/dev/null || echo no-work; \
         ls /root 2>/dev/null || echo no-root; echo ROOT; ls /; echo DEV; ls /dev"
    );
    let (st, out) = run(&manager(), sh(&script)).await;
    let _ = std::fs::remove_file(&probe);
    assert_eq!(st.state, JobState::Completed, "{out}");
    for want in ["no-probe", "no-sys", "no-hostname", "no-work", "no-root"] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
    assert!(!out.contains("host secret"), "{out}");
    let (_, rest) = out.split_once("ROOT\n").unwrap();
    let (root, dev) = rest.split_once("DEV\n").unwrap();
    let allowed = [
        "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
    ];
    let root: Vec<&str> = root.lines().collect();
    assert!(root.iter().all(|e| allowed.contains(e)), "{root:?}");
    for need in ["usr", "etc", "dev", "proc", "tmp"] {
        assert!(root.contains(&need), "{root:?}");
    }
    let mut dev: Vec<&str> = dev.lines().collect();
    dev.sort();
    assert_eq!(
        dev,
        ["fd", "full", "null", "random", "stderr", "stdin", "stdout", "tty", "urandom", "zero"],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_ordinary_commands_still_run() {
    let m = manager();
    let script = "echo hi; ls /usr/bin >/dev/null && echo ls-ok; grep -c '^nobody:' /etc/passwd; \
                  (id -un >/dev/null 2>&1 && id -un) || echo unnamed; awk 'BEGIN { print 6 * 7 }'; date +%Y >/dev/null && echo date-ok; \
                  head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok; \
                  cat /proc/self/cgroup >/dev/null && echo proc-ok";
    let (st, out) = run(&m, sh(script)).await;
    assert_eq!(st.state, JobState::Completed, "{out}");
    assert_eq!(
        // Each job's uid is its own (issue 23) and has no name in the host's /etc/passwd.
        out,
        "hi\nls-ok\n1\nunnamed\n42\ndate-ok\n4\nnull-ok\nproc-ok\n",
        "{out}"
    );
    if std::path::Path::new("/usr/bin/python3").exists() {
        let (st, out) = run(
            &m,
            vec![
                "python3".into(),
                "-c".into(),
                "import json, os; print(json.dumps(sorted(os.listdir('/etc'))[:2]))".into(),
            ],
        )
        .await;
        assert_eq!(st.state, JobState::Completed, "{out}");
        assert!(out.starts_with("[\""), "{out}");
    }
}

/// Issue 23: jobs inherited the service's ignored signals (SIGPIPE from Rust; SIGQUIT, SIGXFSZ
/// from whoever started it) and its raised open-file limit. This test process stands in for the
/// service: it ignores SIGQUIT and SIGXFSZ before the sandboxes are cloned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_jobs_get_default_signals_and_explicit_rlimits() {
    // SAFETY: changing this process's disposition of two signals nobody here relies on.
    unsafe {
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let m = manager();
    let (_, status) = run(&m, vec!["/bin/cat".into(), "/proc/self/status".into()]).await;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("SigIgn:"), "0000000000000000", "{status}");
    assert_eq!(field("SigBlk:"), "0000000000000000", "{status}");
    let (_, limits) = run(&m, vec!["/bin/cat".into(), "/proc/self/limits".into()]).await;
    let limit = |k: &str| {
        limits
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(limit("Max open files"), "1024 1024", "{limits}");
    assert_eq!(limit("Max core file size"), "0 0", "{limits}");
    assert_eq!(limit("Max pending signals"), "1024 1024", "{limits}");
    assert_eq!(limit("Max msgqueue size"), "65536 65536", "{limits}");
}

/// Issue 23: the daemon had no seccomp filter of its own. Installed on one thread here (seccomp
/// is per thread): what it refuses fails with EPERM there, ordinary calls and sandboxed jobs
/// started from a manager made on that thread still work.
#[test]
fn security_the_daemons_own_filter_refuses_what_it_never_needs() {
    std::thread::spawn(|| {
        leotest_kernel_service::hardening::install().unwrap();
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert!(status.contains("Seccomp:\t2"), "{status}");
        // SAFETY: invalid arguments; only the error code is looked at.
        let r = unsafe { libc::syscall(libc::SYS_open_by_handle_at, -1, 0, 0) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        assert_eq!((r, errno), (-1, Some(libc::EPERM)));
        // SAFETY: as above.
        let r = unsafe { libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        assert_eq!((r, errno), (-1, Some(libc::EPERM)));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (st, out) = run(&manager(), sh("echo ok")).await;
            assert_eq!(st.state, JobState::Completed, "{out}");
            assert_eq!(out, "ok\n");
        });
    })
    .join()
    .unwrap();
}
