//! Who may cost a Docker lookup. A connection from an address the container map does not know
//! makes the service ask Docker (a container may have started before its event arrived); left
//! unbounded, every such connection cost a `GET /containers/json`, so a flood from one address
//! burned dockerd's CPU. Now an address outside the network's subnets is denied without asking,
//! and lookups are rate-limited per source address and in total (token buckets).

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

/// An IPv4 or IPv6 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("not CIDR: {s:?}"))?;
        let net: IpAddr = ip.parse().map_err(|_| format!("bad address in {s:?}"))?;
        let prefix: u8 = len.parse().map_err(|_| format!("bad prefix in {s:?}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix too long in {s:?}"));
        }
        Ok(Subnet { net, prefix })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Subnet {
    /// Whether `ip` (IPv4-mapped forms included) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u8) {
            match a.to_canonical() {
                IpAddr::V4(v) => (u32::from(v) as u128, 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((n, nw), (a, aw)) = (bits(self.net), bits(ip));
        if nw != aw {
            return false;
        }
        let host_bits = u32::from(nw - self.prefix.min(nw));
        let mask = if host_bits >= 128 {
            0
        } else {
            (!0u128) << host_bits
        };
        (n & mask) == (a & mask)
    }
}

/// A token bucket: `rate` tokens per second, at most `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Most source addresses tracked at once; beyond it the table starts over (each source then
/// gets a fresh burst, which the global bucket still bounds).
const MAX_SOURCES: usize = 4096;
/// Seconds' worth of tokens a bucket holds.
const BURST_SECONDS: f64 = 5.0;

/// Rate limits on Docker lookups for unknown addresses, per source and in total.
#[derive(Debug)]
pub struct MissLimiter {
    per_source: f64,
    global: f64,
    state: Mutex<(Bucket, HashMap<IpAddr, Bucket>)>,
}

impl MissLimiter {
    /// `per_source` and `global` lookups per second (0 = never look up).
    pub fn new(per_source: f64, global: f64) -> Self {
        let now = Instant::now();
        MissLimiter {
            per_source,
            global,
            state: Mutex::new((Bucket::full(global * BURST_SECONDS, now), HashMap::new())),
        }
    }

    /// Whether a lookup for `ip` may go to Docker now (takes a token from both buckets).
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        let (src_burst, all_burst) = (
            (self.per_source * BURST_SECONDS).max(1.0),
            (self.global * BURST_SECONDS).max(1.0),
        );
        if self.per_source <= 0.0 || self.global <= 0.0 {
            return false;
        }
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let (global, sources) = &mut *st;
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            sources.clear();
        }
        let src = sources
            .entry(ip.to_canonical())
            .or_insert_with(|| Bucket::full(src_burst, now));
        // Check the source first: a source over its limit must not drain the global bucket.
        let mut probe = *src;
        if !probe.take(self.per_source, src_burst, now) {
            *src = probe;
            return false;
        }
        if !global.take(self.global, all_burst, now) {
            return false;
        }
        *src = probe;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn subnets_contain_their_addresses_only() {
        let n: Subnet = "172.27.0.0/16".parse().unwrap();
        assert!(n.contains("172.27.3.4".parse().unwrap()));
        assert!(n.contains("::ffff:172.27.3.4".parse().unwrap()));
        assert!(!n.contains("172.28.0.1".parse().unwrap()));
        assert!(!n.contains("127.0.0.1".parse().unwrap()));
        assert!(!n.contains("fd00::1".parse().unwrap()));
        let v6: Subnet = "fd00:1::/64".parse().unwrap();
        assert!(v6.contains("fd00:1::5".parse().unwrap()));
        assert!(!v6.contains("fd00:2::5".parse().unwrap()));
        let all: Subnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("172.27.0.0".parse::<Subnet>().is_err());
        assert!("172.27.0.0/33".parse::<Subnet>().is_err());
    }

    #[test]
    fn one_source_cannot_spend_the_global_budget() {
        let l = MissLimiter::new(1.0, 4.0);
        let t0 = Instant::now();
        let a: IpAddr = "172.27.0.2".parse().unwrap();
        let b: IpAddr = "172.27.0.3".parse().unwrap();
        // A source gets its burst (5 s worth), then nothing until tokens refill.
        let granted = (0..100).filter(|_| l.allow_at(a, t0)).count();
        assert_eq!(granted, 5);
        // Another source still has the rest of the global burst (20).
        let granted_b = (0..100).filter(|_| l.allow_at(b, t0)).count();
        assert_eq!(granted_b, 5);
        // One second later, one more for a.
        assert!(l.allow_at(a, t0 + Duration::from_secs(1)));
        assert!(!l.allow_at(a, t0 + Duration::from_secs(1)));
        // The global bucket bounds many sources together.
        let many = (0..200u8)
            .filter(|i| l.allow_at(IpAddr::from([10, 0, 1, *i]), t0 + Duration::from_secs(1)))
            .count();
        assert!(many <= 20, "{many}");
        assert!(!MissLimiter::new(0.0, 10.0).allow(a));
    }
}
