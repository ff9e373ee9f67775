//! The one place the orchestrator reads the time of day: handlers (`service::Ctx`) and stores
//! hold a [`SharedClock`] instead of calling `Utc::now()`, so tests can set and advance the
//! time (a job expiring at its end date, a task at its TTL) without sleeping and without
//! depending on the calendar year.
//!
//! Not behind it, on purpose: durations measured with `Instant` (metrics, caches, timeouts),
//! the MongoDB lease clock (`store::mongo::lease`, compared with the server's own clock),
//! certificate validity (`tls`) and CLI token minting (`jwtcmd`), which are about real time.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The clock the handlers and stores share.
pub type SharedClock = Arc<dyn Clock>;

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock as a [`SharedClock`]: the default of every store and of the server.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until a test sets or advances it (microsecond resolution, as
/// the stores keep times).
#[derive(Debug)]
pub struct TestClock {
    micros: AtomicI64,
}

impl TestClock {
    /// A clock standing at `at`.
    pub fn at(at: DateTime<Utc>) -> Arc<TestClock> {
        Arc::new(TestClock {
            micros: AtomicI64::new(at.timestamp_micros()),
        })
    }

    /// A clock standing at the current real time.
    pub fn starting_now() -> Arc<TestClock> {
        TestClock::at(Utc::now())
    }

    /// Moves the clock to `at` (also backwards).
    pub fn set(&self, at: DateTime<Utc>) {
        self.micros.store(at.timestamp_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let step = by.num_microseconds().unwrap_or(i64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(step))
            });
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_stands_still_until_moved() {
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let c = TestClock::at(t0);
        assert_eq!(c.now(), t0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::hours(2));
        assert_eq!(c.now(), t0 + Duration::hours(2));
        c.set(t0);
        assert_eq!(c.now(), t0);
    }

    #[test]
    fn system_clock_follows_real_time() {
        let before = Utc::now();
        let now = SystemClock.now();
        assert!(now >= before && now <= Utc::now());
    }
}
