//! Load generators: closed loop (N workers back to back) and open loop (fixed arrival rate).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::stats::Samples;

/// Outcome of one load phase.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Latency of every request, failed ones included.
    pub samples: Samples,
    /// Requests answered successfully.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Wall-clock length of the phase.
    pub elapsed: Duration,
}

impl LoadResult {
    /// Successful calls per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    fn merge(&mut self, other: LoadResult) {
        self.samples.extend(other.samples);
        self.ok += other.ok;
        self.errors += other.errors;
    }
}

/// `workers` tasks each issue `call(worker)` back to back for `duration`.
pub async fn closed_loop<F, Fut>(workers: usize, duration: Duration, call: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = LoadResult::default();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let ok = call(w).await;
                r.samples.push(t0.elapsed());
                if ok {
                    r.ok += 1;
                } else {
                    r.errors += 1;
                }
            }
            r
        }));
    }
    collect(tasks, start).await
}

/// `workers` tasks together issue `rate` calls per second for `duration`; latency is measured
/// from each call's scheduled start, so a stalled server cannot hide its queueing delay.
pub async fn open_loop<F, Fut>(workers: usize, rate: f64, duration: Duration, call: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let per_worker = (rate / workers as f64).max(0.001);
    let period = Duration::from_secs_f64(1.0 / per_worker);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let call = call.clone();
        // Spread the workers' first ticks over one period instead of firing all at once.
        let offset = period.mul_f64(w as f64 / workers as f64);
        tasks.push(tokio::spawn(async move {
            let mut r = LoadResult::default();
            let mut tick = tokio::time::interval_at((start + offset).into(), period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            loop {
                let scheduled = tick.tick().await.into_std();
                if scheduled >= deadline {
                    break;
                }
                let ok = call(w).await;
                r.samples.push(scheduled.elapsed());
                if ok {
                    r.ok += 1;
                } else {
                    r.errors += 1;
                }
            }
            r
        }));
    }
    collect(tasks, start).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<LoadResult>>, start: Instant) -> LoadResult {
    let mut total = LoadResult::default();
    for t in tasks {
        match t.await {
            Ok(r) => total.merge(r),
            Err(_) => total.errors += 1,
        }
    }
    total.elapsed = start.elapsed();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_loop_counts_successes_and_errors() {
        let r = closed_loop(2, Duration::from_millis(50), |w| async move {
            tokio::task::yield_now().await;
            w == 0
        })
        .await;
        assert!(r.ok > 0 && r.errors > 0);
        assert_eq!(r.samples.len() as u64, r.ok + r.errors);
    }

    #[tokio::test]
    async fn open_loop_issues_about_the_scheduled_number_of_calls() {
        let r = open_loop(4, 200.0, Duration::from_millis(500), |_| async { true }).await;
        // 200/s for 0.5 s is 100 calls; the schedule is exact, so only the edges differ.
        assert!((96..=104).contains(&r.ok), "{}", r.ok);
    }
}
