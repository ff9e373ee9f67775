//! A fresh MongoDB database per test on the server at `LEOTEST_TEST_MONGO_URI`, dropped when
//! the handle goes away. The one copy of this helper for every integration test.
//!
//! Unset URI: the MongoDB variants are skipped locally, but FAIL when `CI=true`, so a CI run
//! that lost its MongoDB-wire server cannot pass silently.
//!
//! With `LEOTEST_TEST_MONGO_PROXY=1`, every test reaches the server through one pass-through
//! [`FaultProxy`](crate::mongo_proxy::FaultProxy) of this process, so the whole MongoDB suite
//! also proves the proxy forwards faithfully (and the store works behind one).

use std::sync::atomic::{AtomicU32, Ordering};

/// Environment variable with the test server's connection string.
pub const URI_VAR: &str = "LEOTEST_TEST_MONGO_URI";

/// A database name no other test (or concurrent test run) uses.
fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "leotest_{prefix}_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Environment variable that routes every test through a pass-through proxy (`1`).
pub const PROXY_VAR: &str = "LEOTEST_TEST_MONGO_PROXY";

/// The test server's URI; `None` (skip) when unset, a panic when unset under `CI=true`.
pub fn uri() -> Option<String> {
    match std::env::var(URI_VAR).ok().filter(|u| !u.is_empty()) {
        Some(uri) if std::env::var(PROXY_VAR).is_ok_and(|v| v == "1") => Some(proxied(uri)),
        Some(uri) => Some(uri),
        None if std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true")) => {
            panic!("{URI_VAR} is not set but CI=true: the MongoDB tests must run in CI")
        }
        None => {
            eprintln!("{URI_VAR} not set: MongoDB variant skipped");
            None
        }
    }
}

/// The URI of this process's pass-through proxy to `uri` (started on first use, on a thread
/// of its own so it outlives every test's runtime).
fn proxied(uri: String) -> String {
    static PROXY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROXY
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(async {
                    let proxy = crate::mongo_proxy::FaultProxy::start(&uri).await;
                    tx.send(proxy.uri()).expect("proxy uri");
                    std::future::pending::<()>().await;
                });
            });
            rx.recv().expect("proxy started")
        })
        .clone()
}

/// A fresh database name on the test server; the database is dropped on drop.
pub struct TestMongo {
    /// Connection string of the test server.
    pub uri: String,
    /// Database name, unique to this test.
    pub name: String,
}

impl TestMongo {
    /// `None` when the MongoDB tests are skipped (see [`uri`]).
    pub fn fresh(prefix: &str) -> Option<TestMongo> {
        Some(TestMongo {
            uri: uri()?,
            name: unique_name(prefix),
        })
    }

    /// The orchestrator flags selecting this database.
    pub fn server_args(&self) -> [&str; 4] {
        ["--db-server", &self.uri, "--db-name", &self.name]
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        let (uri, name) = (self.uri.clone(), self.name.clone());
        // The test's runtime may be shutting down (or be current-thread and busy here); use
        // one of our own on a plain thread.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let client = mongodb::Client::with_uri_str(&uri)
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .database(&name)
                    .drop()
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
