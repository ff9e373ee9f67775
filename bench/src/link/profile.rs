//! Link profiles (`lan`, `wan`, `leo`) and the scripted outage schedule of `leo`.
//!
//! `leo` follows what a Starlink node sees (issue 22): 25–60 ms RTT with jitter, about 1 % loss,
//! and a handover gap at every satellite reconfiguration, every 15 s, from tens of milliseconds
//! to about 2 s. The gaps follow a fixed cycle, so every run sees the same schedule.

use std::time::Duration;

/// One emulated link, the same in both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Name on the command line: `lan`, `wan` or `leo`.
    pub name: &'static str,
    /// Smallest one-way delay.
    pub base: Duration,
    /// Extra one-way delay, uniform in [0, jitter).
    pub jitter: Duration,
    /// Share of chunks that are "lost": delivered only after `loss_penalty` (a TCP
    /// retransmission: the minimum RTO plus a round trip), delaying everything behind them.
    pub loss: f64,
    /// How late a lost chunk is delivered.
    pub loss_penalty: Duration,
    /// Handover period and the gap lengths cycled through, one per period.
    pub handover_every: Option<Duration>,
    /// Gap lengths, cycled one per handover period; empty without handovers.
    pub gaps: &'static [Duration],
}

const LEO_GAPS: &[Duration] = &[
    Duration::from_millis(40),
    Duration::from_millis(120),
    Duration::from_millis(60),
    Duration::from_millis(500),
    Duration::from_millis(30),
    Duration::from_millis(2000),
    Duration::from_millis(80),
    Duration::from_millis(1000),
];

impl Profile {
    /// The profile called `name`; `None` for an unknown name.
    pub fn by_name(name: &str) -> Option<Profile> {
        Some(match name {
            "lan" => Profile {
                name: "lan",
                base: Duration::from_micros(250),
                jitter: Duration::ZERO,
                loss: 0.0,
                loss_penalty: Duration::ZERO,
                handover_every: None,
                gaps: &[],
            },
            "wan" => Profile {
                name: "wan",
                base: Duration::from_millis(20),
                jitter: Duration::from_millis(2),
                loss: 0.0,
                loss_penalty: Duration::ZERO,
                handover_every: None,
                gaps: &[],
            },
            // RTT 25–60 ms: one way 12.5 ms + up to 17.5 ms of jitter.
            "leo" => Profile {
                name: "leo",
                base: Duration::from_micros(12_500),
                jitter: Duration::from_micros(17_500),
                loss: 0.01,
                loss_penalty: Duration::from_millis(260),
                handover_every: Some(Duration::from_secs(15)),
                gaps: LEO_GAPS,
            },
            _ => return None,
        })
    }

    /// When the link is in a handover gap at `elapsed` since the link came up: the time left
    /// in it. The gap of period k starts at k × period (k ≥ 1) and lasts `gaps[k mod len]`.
    pub fn gap_left(&self, elapsed: Duration) -> Option<Duration> {
        let every = self.handover_every?;
        if self.gaps.is_empty() || every.is_zero() {
            return None;
        }
        let k = elapsed.as_nanos() / every.as_nanos();
        if k == 0 {
            return None;
        }
        let into = elapsed.saturating_sub(every.saturating_mul(k as u32));
        let gap = self.gaps[(k as usize) % self.gaps.len()];
        (into < gap).then(|| gap - into)
    }

    /// One-way delay of a chunk, and whether it stands for a lost segment.
    pub fn delay(&self, rng: &mut SplitMix) -> (Duration, bool) {
        let jitter = self.jitter.mul_f64(rng.unit());
        let lost = self.loss > 0.0 && rng.unit() < self.loss;
        let penalty = if lost {
            self.loss_penalty
        } else {
            Duration::ZERO
        };
        (self.base + jitter + penalty, lost)
    }
}

/// SplitMix64: a small deterministic generator for delays and losses (not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator that starts from `seed` (the same seed gives the same draws).
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leo_has_a_gap_every_15_s_and_none_before() {
        let leo = Profile::by_name("leo").unwrap();
        assert_eq!(leo.gap_left(Duration::from_secs(14)), None);
        let s = |ms: u64| Duration::from_millis(ms);
        // period 1: gaps[1] = 120 ms
        assert_eq!(leo.gap_left(s(15_000)), Some(s(120)));
        assert_eq!(leo.gap_left(s(15_100)), Some(s(20)));
        assert_eq!(leo.gap_left(s(15_120)), None);
        // period 5: gaps[5] = 2 s
        assert_eq!(leo.gap_left(s(75_500)), Some(s(1_500)));
        assert_eq!(leo.gap_left(s(77_000)), None);
        assert!(LEO_GAPS.iter().all(|g| *g >= s(30) && *g <= s(2_000)));
    }

    #[test]
    fn leo_rtt_and_loss_are_in_range() {
        let leo = Profile::by_name("leo").unwrap();
        let mut rng = SplitMix::new(7);
        let (mut lost, n) = (0, 100_000);
        for _ in 0..n {
            let (d, l) = leo.delay(&mut rng);
            if l {
                lost += 1;
            } else {
                let rtt = d * 2;
                assert!(rtt >= Duration::from_millis(25) && rtt < Duration::from_millis(60));
            }
        }
        assert!((500..1_500).contains(&lost), "about 1 %: {lost}");
    }

    #[test]
    fn lan_and_wan_have_no_gaps_and_unknown_names_are_refused() {
        for p in ["lan", "wan"] {
            let p = Profile::by_name(p).unwrap();
            assert_eq!(p.gap_left(Duration::from_secs(15)), None);
            assert!(!p.delay(&mut SplitMix::new(1)).1);
        }
        assert!(Profile::by_name("5g").is_none());
    }
}
