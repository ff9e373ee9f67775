//! The text replies the broker sends for job commands and one-shot lines (needs root).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use leotest_kernel_service::sandbox::{wire, JobManager, SandboxConfig};

fn manager() -> JobManager {
    JobManager::new(SandboxConfig::default()).expect("sandbox needs root and cgroups")
}

/// `job.watch` over an in-memory connection whose client stays until the reply ends.
async fn watch(m: &JobManager, who: &str, id: &str) -> (u64, Vec<u8>) {
    let (mut conn, mut client) = tokio::io::duplex(1 << 20);
    let n = wire::job_watch(m, who, false, id, &mut conn).await.unwrap();
    drop(conn);
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut client, &mut out)
        .await
        .unwrap();
    (n, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_lines_reply_with_output_like_the_original() {
    let m = manager();
    assert_eq!(
        wire::oneshot(&m, "alice", "echo hello   world").await,
        b"hello world\n"
    );
    // No shell: metacharacters are plain arguments.
    assert_eq!(
        wire::oneshot(&m, "alice", "echo $HOME;id").await,
        b"$HOME;id\n"
    );
    assert_eq!(
        wire::oneshot(&m, "alice", "true").await,
        wire::COMMAND_EXECUTED
    );
    let err = wire::oneshot(&m, "alice", "   ").await;
    assert!(
        err.starts_with(b"error: invalid job request"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(m.list("alice", false).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_commands_reply_in_text() {
    let m = manager();
    let id = wire::job_start(&m, "alice", vec!["echo".into(), "hi".into()]).await;
    let id = String::from_utf8(id).unwrap();
    assert!(id.ends_with('\n') && id.trim().len() == 32, "{id}");
    let id = id.trim();

    let (n, out) = watch(&m, "alice", id).await;
    assert_eq!((n, out.as_slice()), (3, &b"hi\n"[..]));
    m.wait("alice", false, id).await.unwrap();

    let status = String::from_utf8(wire::job_status(&m, "alice", false, id)).unwrap();
    assert!(
        status.starts_with(&format!("id={id} state=COMPLETED exit_code=0")),
        "{status}"
    );
    let stopped = String::from_utf8(wire::job_stop(&m, "alice", false, id).await).unwrap();
    assert!(stopped.contains("state=COMPLETED"), "{stopped}");
    let list = String::from_utf8(wire::job_list(&m, "alice", false)).unwrap();
    assert_eq!(list.lines().count(), 1);
    assert!(wire::job_list(&m, "bob", false).is_empty());

    let unknown = wire::job_status(&m, "bob", false, id);
    assert!(unknown.starts_with(b"error: unknown job id"));
    let (_, out) = watch(&m, "bob", id).await;
    assert!(out.starts_with(b"error: unknown job id"));
}
