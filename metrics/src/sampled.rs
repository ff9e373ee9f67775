//! Values read at scrape time, for state another component already keeps (running jobs in
//! the sandbox's table, retries counted by the client library): reading it when asked keeps
//! one source of truth instead of a gauge that has to be kept in step.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

type Read = Box<dyn Fn() -> u64 + Send + Sync>;

/// A gauge or counter whose value a closure reads on every scrape.
pub struct Sampled {
    name: &'static str,
    help: &'static str,
    counter: bool,
    read: Read,
}

impl fmt::Debug for Sampled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampled")
            .field("name", &self.name)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Sampled {
    /// A gauge (`name` as given).
    pub fn gauge(
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Box<Sampled> {
        Box::new(Sampled {
            name,
            help,
            counter: false,
            read: Box::new(read),
        })
    }

    /// A counter (exposed as `name_total`); `read` must never go down.
    pub fn counter(
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Box<Sampled> {
        Box::new(Sampled {
            name,
            help,
            counter: true,
            read: Box::new(read),
        })
    }
}

impl Collector for Sampled {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let v = (self.read)();
        if self.counter {
            let c = ConstCounter::new(v);
            let m = encoder.encode_descriptor(self.name, self.help, None, c.metric_type())?;
            c.encode(m)
        } else {
            let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
            let m = encoder.encode_descriptor(self.name, self.help, None, g.metric_type())?;
            g.encode(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn values_are_read_at_encoding() {
        let n = Arc::new(AtomicU64::new(2));
        let mut r = Registry::default();
        let (a, b) = (Arc::clone(&n), Arc::clone(&n));
        r.register_collector(Sampled::gauge("demo_jobs_active", "Jobs", move || {
            a.load(Ordering::SeqCst)
        }));
        r.register_collector(Sampled::counter("demo_retries", "Retries", move || {
            b.load(Ordering::SeqCst) * 10
        }));
        n.store(5, Ordering::SeqCst);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).expect("encode");
        assert!(
            out.contains("# TYPE demo_jobs_active gauge\ndemo_jobs_active 5\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE demo_retries counter\ndemo_retries_total 50\n"),
            "{out}"
        );
    }
}
