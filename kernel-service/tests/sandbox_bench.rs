//! Benchmark (ignored by default): job start → first output byte, p50/p99 over 200 runs, with
//! the default warm sandboxes and with each sandbox made on demand (`prewarm` 0).
//! Run: `cargo test -p leotest-kernel-service --release --test sandbox_bench -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::time::{Duration, Instant};

use futures::StreamExt;
use leotest_kernel_service::sandbox::{JobManager, JobState, SandboxConfig};

async fn measure(label: &str, m: &JobManager, runs: usize) {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        let id = m
            .start("bench", vec!["/bin/echo".into(), "x".into()])
            .await
            .unwrap();
        let mut w = m.watch("bench", false, id.as_str()).unwrap();
        let first = w.next().await.expect("output");
        samples.push(t0.elapsed());
        assert_eq!(&first[..], b"x\n");
        drop(w);
        let st = m.wait("bench", false, id.as_str()).await.unwrap();
        assert_eq!(st.state, JobState::Completed);
    }
    samples.sort();
    let pct = |p: f64| samples[((runs as f64 * p).ceil() as usize).min(runs) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: start->first byte over {runs} runs: p50 {:.2} ms, p99 {:.2} ms, min {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(samples[0]),
        ms(samples[runs - 1])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly with --ignored"]
async fn start_to_first_output_byte() {
    let m = JobManager::new(SandboxConfig::default()).expect("sandbox needs root and cgroups");
    measure("warm (default prewarm)", &m, 200).await;
    drop(m);
    let cold = JobManager::new(SandboxConfig {
        prewarm: 0,
        ..SandboxConfig::default()
    })
    .expect("sandbox needs root and cgroups");
    measure("on demand (prewarm 0)", &cold, 100).await;
}
