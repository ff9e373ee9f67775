//! The `help` word and the audit outcome of a granted command that then fails (issue 24).

use super::*;

/// Log lines of this thread while a capture is on (a current-thread runtime runs the service).
///
/// One process-wide subscriber writes into a per-thread buffer: a scoped `set_default` raced
/// with the other tests' threads over tracing's cached callsite interest and saw no lines.
#[derive(Clone, Default)]
struct Captured;

thread_local! {
    static BUF: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

struct ThreadBuf;

impl std::io::Write for ThreadBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BUF.with(|b| {
            if let Some(v) = b.borrow_mut().as_mut() {
                v.extend_from_slice(buf)
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start(&self) {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::fmt()
                    .with_writer(|| ThreadBuf)
                    .with_max_level(tracing::Level::INFO)
                    .with_ansi(false)
                    .finish(),
            );
        });
        BUF.with(|b| *b.borrow_mut() = Some(Vec::new()));
    }
    fn text(&self) -> String {
        BUF.with(|b| {
            String::from_utf8_lossy(b.borrow().as_deref().unwrap_or_default()).into_owned()
        })
    }
}

#[tokio::test]
async fn help_lists_the_commands_and_other_words_still_run() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("172.30.0.2", "c-priv", Some("priv"));
    id.add("172.30.0.3", "c-plain", Some("plain"));
    let out = String::from_utf8(exchange(&svc, "172.30.0.2", b"help\n").await).unwrap();
    assert_eq!(out, commands::HELP);
    assert!(out.contains("job.start CMD ARGS..."), "{out}");
    // Only the bare word: `help me` is a program like any other (no sandbox here).
    assert_eq!(
        exchange(&svc, "172.30.0.2", b"help me\n").await,
        UNKNOWN_COMMAND
    );
    // The access check comes first.
    assert_eq!(exchange(&svc, "172.30.0.3", b"help\n").await, ACCESS_DENIED);
    let m = svc.metrics().render();
    assert!(
        m.contains("leotest_kernel_commands_total{command=\"help\"} 1\n"),
        "{m}"
    );
}

#[tokio::test]
async fn a_granted_command_that_fails_is_audited_as_failed() {
    let (id, _, svc) = service(Duration::ZERO, "/nonexistent".into());
    id.add("172.30.0.2", "c-priv", Some("priv"));
    let logs = Captured;
    logs.start();
    let out =
        String::from_utf8(exchange(&svc, "172.30.0.2", b"cca.change nosuchalg\n").await).unwrap();
    assert!(out.starts_with("error:"), "{out}");
    exchange(&svc, "172.30.0.2", b"cca.check\n").await;
    let text = logs.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("decision=")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("command=\"cca.change\"") || lines[0].contains("command=cca.change"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("decision=\"granted\"") || lines[0].contains("decision=granted"));
    assert!(
        lines[0].contains("outcome=\"failed\"") || lines[0].contains("outcome=failed"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("outcome=\"ok\"") || lines[1].contains("outcome=ok"),
        "{}",
        lines[1]
    );
}
