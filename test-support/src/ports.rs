//! Ports for servers that tests and benchmarks start: outside the range the kernel hands to
//! outgoing connections, so that a client socket of another test cannot take one between the
//! pick and the server's bind.

use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the search starts when the ephemeral range cannot be read (Linux's default low bound).
const DEFAULT_EPHEMERAL_LOW: u16 = 32768;
/// How many ports below the ephemeral range are used; below it sit well-known services.
const SPAN: u16 = 12000;

/// The lowest port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

/// Whether nothing is bound to `port` on any address (a dual-stack `[::]` bind conflicts with
/// every IPv4 and IPv6 binding of the port; without IPv6, the IPv4 wildcard).
fn is_free(port: u16) -> bool {
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => false,
        Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok(),
    }
}

/// The next free port of this process's walk through `[low - SPAN, low)`; `None` when every
/// one was taken. Each process starts at an offset of its own (from its pid), so that processes
/// running at once rarely meet, and the check catches it when they do.
pub fn free() -> Option<u16> {
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = std::process::id().wrapping_mul(7919) % u32::from(SPAN);
    let _ = CURSOR.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    next_free(&CURSOR, ephemeral_low().max(SPAN + 1024) - SPAN)
}

/// The first port from `cursor` on (wrapping within `[base, base + SPAN)`) that [`is_free`].
fn next_free(cursor: &AtomicU32, base: u16) -> Option<u16> {
    (0..SPAN).find_map(|_| {
        let step = cursor.fetch_add(1, Ordering::Relaxed) % u32::from(SPAN);
        let port = base + u16::try_from(step).ok()?;
        is_free(port).then_some(port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_distinct_and_bindable() {
        let low = ephemeral_low();
        let ports: Vec<u16> = (0..50).map(|_| free().expect("a port")).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        for p in ports {
            assert!(p < low, "{p} is in the ephemeral range from {low}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("bindable");
        }
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let base = ephemeral_low().max(SPAN + 1024) - SPAN;
        let held = (0..SPAN)
            .find_map(|i| TcpListener::bind((Ipv4Addr::UNSPECIFIED, base + i)).ok())
            .expect("a port to hold");
        let taken = held.local_addr().expect("addr").port();
        let cursor = AtomicU32::new(u32::from(taken - base));
        let next = next_free(&cursor, base).expect("a port");
        assert_ne!(next, taken);
    }
}
