//! Linux capability sets: what a container may hold (from Docker's view of it) and what this
//! service itself holds (from `/proc/self/status`).
//!
//! The identity model assumes experiment containers cannot forge their network identity on the
//! shared bridge. CAP_NET_ADMIN (add a neighbour's address, rewrite routes and ARP) and
//! CAP_SYS_ADMIN (enter other namespaces), and `privileged`, which holds everything, break that
//! assumption, so the service refuses callers that hold them (`--refuse-caps`).

use std::fmt;

/// Capability names in bit order (`include/uapi/linux/capability.h`).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// What Docker gives a container that neither adds nor drops any (moby `oci/caps/defaults.go`).
const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A set of capabilities, one bit per capability number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapSet(u64);

impl CapSet {
    /// No capability.
    pub const EMPTY: CapSet = CapSet(0);
    /// Every capability this crate knows by name.
    pub const ALL: CapSet = CapSet((1 << NAMES.len()) - 1);

    /// Parses `NET_ADMIN`, `cap_net_admin` or `CAP_NET_ADMIN`; `None` if unknown.
    pub fn bit(name: &str) -> Option<CapSet> {
        let up = name.trim().to_ascii_uppercase();
        let bare = up.strip_prefix("CAP_").unwrap_or(&up);
        NAMES
            .iter()
            .position(|n| *n == bare)
            .map(|i| CapSet(1 << i))
    }

    /// A comma-separated list of names (`ALL` allowed; empty string = no capability).
    pub fn parse_list(list: &str) -> Result<CapSet, String> {
        let mut set = CapSet::EMPTY;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.eq_ignore_ascii_case("ALL") {
                set = CapSet::ALL;
                continue;
            }
            set =
                set.union(CapSet::bit(name).ok_or_else(|| format!("unknown capability {name:?}"))?);
        }
        Ok(set)
    }

    /// Capabilities in either set.
    pub fn union(self, o: CapSet) -> CapSet {
        CapSet(self.0 | o.0)
    }

    /// Capabilities in both sets.
    pub fn intersect(self, o: CapSet) -> CapSet {
        CapSet(self.0 & o.0)
    }

    /// Capabilities of `self` that are not in `o`.
    pub fn without(self, o: CapSet) -> CapSet {
        CapSet(self.0 & !o.0)
    }

    /// True when no capability is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every capability of `o` is in `self`.
    pub fn contains(self, o: CapSet) -> bool {
        self.0 & o.0 == o.0
    }

    /// Docker's default set.
    pub fn docker_default() -> CapSet {
        DOCKER_DEFAULT
            .iter()
            .filter_map(|n| CapSet::bit(n))
            .fold(CapSet::EMPTY, CapSet::union)
    }

    /// What a container may hold, from its `HostConfig`: everything when privileged, else
    /// Docker's default set with `CapDrop` removed and `CapAdd` added (Docker applies the drop
    /// first, so `--cap-drop ALL --cap-add X` is just `X`). Unknown names count as held when
    /// added and are ignored when dropped: the conservative direction for a refusal check.
    pub fn of_container(privileged: bool, add: &[String], drop: &[String]) -> CapSet {
        if privileged {
            return CapSet::ALL;
        }
        let mut set = CapSet::docker_default();
        for d in drop {
            if d.eq_ignore_ascii_case("ALL") {
                set = CapSet::EMPTY;
            } else if let Some(b) = CapSet::bit(d) {
                set = set.without(b);
            }
        }
        for a in add {
            if a.eq_ignore_ascii_case("ALL") {
                set = CapSet::ALL;
            } else {
                // An unknown name is as good as anything: treat it as everything we refuse.
                set = set.union(CapSet::bit(a).unwrap_or(CapSet::ALL));
            }
        }
        set
    }

    /// The `CapEff:` (or another `Cap*:`) line of a `/proc/PID/status` text.
    pub fn from_status(status: &str, field: &str) -> Option<CapSet> {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
            .trim();
        u64::from_str_radix(hex, 16)
            .ok()
            .map(|v| CapSet(v & CapSet::ALL.0))
    }

    /// This process's effective set, if `/proc/self/status` is readable.
    pub fn effective_of_self() -> Option<CapSet> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        CapSet::from_status(&status, "CapEff")
    }
}

impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == CapSet::ALL {
            return f.write_str("ALL");
        }
        // A nearly full set (root on the host) reads better by what it lacks.
        let (set, prefix) = if self.0.count_ones() > NAMES.len() as u32 / 2 {
            (CapSet::ALL.without(*self), "ALL except ")
        } else {
            (*self, "")
        };
        f.write_str(prefix)?;
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if set.0 & (1 << i) != 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "CAP_{n}")?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn container_sets_follow_docker() {
        let net_admin = CapSet::bit("NET_ADMIN").unwrap();
        let net_raw = CapSet::bit("cap_net_raw").unwrap();
        let default = CapSet::of_container(false, &[], &[]);
        assert!(default.contains(net_raw) && !default.contains(net_admin));
        let added = CapSet::of_container(false, &s(&["CAP_NET_ADMIN"]), &[]);
        assert!(added.contains(net_admin));
        let dropped = CapSet::of_container(false, &s(&["NET_ADMIN"]), &s(&["ALL"]));
        assert_eq!(dropped, net_admin);
        assert_eq!(CapSet::of_container(true, &[], &s(&["ALL"])), CapSet::ALL);
        assert_eq!(CapSet::of_container(false, &s(&["ALL"]), &[]), CapSet::ALL);
        assert!(!CapSet::of_container(false, &[], &s(&["NET_RAW"])).contains(net_raw));
    }

    #[test]
    fn lists_and_status_lines_parse() {
        let set = CapSet::parse_list("NET_ADMIN, SYS_ADMIN").unwrap();
        assert_eq!(set.to_string(), "CAP_NET_ADMIN,CAP_SYS_ADMIN");
        assert!(CapSet::parse_list("NET_WIZARD").is_err());
        assert_eq!(CapSet::parse_list("").unwrap(), CapSet::EMPTY);
        let status = "Name:\tx\nCapEff:\t0000000000003000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(
            CapSet::from_status(status, "CapEff").unwrap().to_string(),
            "CAP_NET_ADMIN,CAP_NET_RAW"
        );
        assert_eq!(CapSet::from_status(status, "CapBnd").unwrap(), CapSet::ALL);
        let most = CapSet::ALL.without(CapSet::bit("SYS_RESOURCE").unwrap());
        assert_eq!(most.to_string(), "ALL except CAP_SYS_RESOURCE");
        assert!(CapSet::effective_of_self().is_some());
    }
}
