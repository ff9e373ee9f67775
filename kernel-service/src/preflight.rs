//! What this service can do where it was started, decided once at start and said out loud.
//!
//! The 4-tuple check and per-container `cca.*` need to enter callers' network namespaces:
//! the host's PID namespace (to see `/proc/<pid>/ns/net` of other containers; compose
//! `pid: host`) and CAP_SYS_ADMIN (setns). The original's own `docker-compose-node.yaml` gives
//! the kernel container `privileged: true` but not `pid: host`, so with it none of that is
//! possible. Instead of failing, the service falls back to the original's model — identity by
//! source IP, `cca.*` in its own namespace — and says so, with the security consequence, at
//! start; `--identity-fallback deny` refuses every connection instead.

use bollard::Docker;

use crate::caps::CapSet;
use crate::config::{CcaScope, IdentityFallback};
use crate::identity::IdentityMode;

/// What was found about the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Our own container id, when running in a Docker container.
    pub container_id: Option<String>,
    /// Whether we share the host's PID namespace (`None`: could not tell).
    pub host_pid_ns: Option<bool>,
    /// Our effective capabilities (`None`: unreadable).
    pub caps: Option<CapSet>,
    /// Whether `/proc/sys` is writable here (it is read-only in unprivileged containers).
    pub proc_sys_writable: bool,
}

/// What the service will do, and what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// How callers will be identified.
    pub mode: IdentityMode,
    /// Which namespace `cca.*` commands will act on.
    pub cca_scope: CcaScope,
    /// One line per missing piece: what is missing, what the service does instead, and why
    /// that matters.
    pub warnings: Vec<String>,
}

/// A 64-hex-digit Docker container id following `marker` in `text`.
fn id_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.match_indices(marker).find_map(|(i, _)| {
        let rest = text.get(i + marker.len()..)?;
        let id = rest.get(..64)?;
        id.bytes().all(|b| b.is_ascii_hexdigit()).then_some(id)
    })
}

/// Our container id from `/proc/self/mountinfo` (Docker bind-mounts `/etc/hostname` from
/// `.../containers/<id>/hostname`) or `/proc/self/cgroup` (`/docker/<id>`, `docker-<id>.scope`).
pub fn own_container_id(mountinfo: &str, cgroup: &str) -> Option<String> {
    id_after(mountinfo, "/containers/")
        .or_else(|| id_after(cgroup, "/docker/"))
        .or_else(|| id_after(cgroup, "docker-"))
        .map(str::to_string)
}

/// Looks at `/proc/self` and, when we are in a container, asks Docker about ourselves.
pub async fn inspect(docker: Option<&Docker>) -> Environment {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let container_id = own_container_id(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"));
    let host_pid_ns = match (&container_id, docker) {
        // Not in a Docker container: a process on the host, in its PID namespace.
        (None, _) => Some(true),
        (Some(id), Some(d)) => d
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|c| c.host_config)
            .map(|h| h.pid_mode.as_deref() == Some("host")),
        (Some(_), None) => None,
    };
    let proc_sys_writable = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/net/ipv4/tcp_congestion_control")
        .is_ok();
    Environment {
        container_id,
        host_pid_ns,
        caps: CapSet::effective_of_self(),
        proc_sys_writable,
    }
}

fn cap(name: &str) -> CapSet {
    CapSet::bit(name).unwrap_or(CapSet::EMPTY)
}

/// Decides the identity mode and `cca.*` scope for `env`.
pub fn plan(env: &Environment, fallback: IdentityFallback, scope: CcaScope) -> Plan {
    let mut missing = Vec::new();
    match env.host_pid_ns {
        Some(true) => {}
        Some(false) => missing.push(
            "the host's PID namespace (compose `pid: host`): without it the container PIDs \
             Docker reports do not exist here",
        ),
        None => missing.push("a way to tell whether this is the host's PID namespace"),
    }
    let has = |c: &str| env.caps.is_some_and(|s| s.contains(cap(c)));
    if !has("SYS_ADMIN") {
        missing.push("CAP_SYS_ADMIN (setns into a container's network namespace)");
    }
    let mut warnings = Vec::new();
    let mode = if missing.is_empty() {
        IdentityMode::Netns
    } else {
        let what = missing.join("; ");
        match fallback {
            IdentityFallback::SourceIp => {
                warnings.push(format!(
                    "cannot enter callers' network namespaces: missing {what}. FALLING BACK to \
                     identity by source IP only, as the original did: the connection's 4-tuple is \
                     not checked inside the caller's namespace, so a container on the network \
                     that can forge its source address (CAP_NET_RAW, which Docker gives every \
                     container by default, or CAP_NET_ADMIN) can act as any other container. \
                     Add `pid: host` and `cap_add: [SYS_ADMIN, SYS_PTRACE, NET_ADMIN]` to get \
                     the check, or pass --identity-fallback=deny to refuse every connection instead"
                ));
                IdentityMode::SourceIp
            }
            IdentityFallback::Deny => {
                warnings.push(format!(
                    "cannot enter callers' network namespaces: missing {what}. \
                     --identity-fallback=deny: EVERY connection is answered access_denied. Add \
                     `pid: host` and `cap_add: [SYS_ADMIN, SYS_PTRACE, NET_ADMIN]`, or pass \
                     --identity-fallback=source-ip to accept identity by source IP (the original's \
                     model, forgeable by any container with CAP_NET_RAW)"
                ));
                IdentityMode::DenyAll
            }
        }
    };
    let cca_scope = if mode != IdentityMode::Netns && scope == CcaScope::Container {
        warnings.push(
            "cca.check / cca.change act on this service's own network namespace (the original's \
             behaviour, --cca-scope node), not the caller's: entering the caller's namespace is \
             not possible here"
                .to_string(),
        );
        CcaScope::Node
    } else {
        scope
    };
    if !has("NET_ADMIN") {
        warnings.push(
            "missing CAP_NET_ADMIN: cca.change will answer an error (it writes a network sysctl)"
                .to_string(),
        );
    } else if !env.proc_sys_writable && !has("SYS_ADMIN") {
        warnings.push(
            "/proc/sys is read-only and CAP_SYS_ADMIN is missing (no private procfs): \
             cca.change will answer an error"
                .to_string(),
        );
    }
    if mode == IdentityMode::Netns && !has("SYS_PTRACE") {
        warnings.push(
            "missing CAP_SYS_PTRACE: callers whose container runs as another uid cannot be \
             checked and are denied"
                .to_string(),
        );
    }
    Plan {
        mode,
        cca_scope,
        warnings,
    }
}

/// Logs the plan: one line for the mode, a WARN line per missing piece.
pub fn report(plan: &Plan, env: &Environment, subnets: &[String], forging: &[(String, String)]) {
    let mode = match plan.mode {
        IdentityMode::Netns => "source IP + live 4-tuple in the caller's network namespace",
        IdentityMode::SourceIp => "source IP only (fallback)",
        IdentityMode::DenyAll => "none: every connection is denied (--identity-fallback=deny)",
    };
    tracing::info!(
        identity = mode,
        cca_scope = ?plan.cca_scope,
        container = env.container_id.as_deref().map(|c| c.get(..12).unwrap_or(c)).unwrap_or("-"),
        caps = %env.caps.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into()),
        subnets = %subnets.join(","),
        "kernel service capabilities"
    );
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    if plan.mode == IdentityMode::SourceIp && !forging.is_empty() {
        tracing::warn!(
            count = forging.len(),
            "containers on the network can forge their source address while identity is by \
             source IP only (CAP_NET_RAW or more): {}",
            forging
                .iter()
                .map(|(c, caps)| format!("{c} ({caps})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

    fn env(host_pid: Option<bool>, caps: &str) -> Environment {
        Environment {
            container_id: Some(ID.into()),
            host_pid_ns: host_pid,
            caps: Some(CapSet::parse_list(caps).unwrap()),
            proc_sys_writable: false,
        }
    }

    #[test]
    fn container_ids_come_from_mountinfo_or_cgroup() {
        let mi = format!(
            "612 600 8:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(own_container_id(&mi, "").as_deref(), Some(ID));
        let cg = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(own_container_id("", &cg).as_deref(), Some(ID));
        let cg1 = format!("12:pids:/docker/{ID}\n");
        assert_eq!(own_container_id("", &cg1).as_deref(), Some(ID));
        assert_eq!(
            own_container_id("1 2 0:1 / / rw - ext4 x\n", "0::/\n"),
            None
        );
    }

    #[test]
    fn the_original_node_compose_falls_back_loudly() {
        // `privileged` (all caps) but no `pid: host`: the original's node compose.
        let p = plan(
            &env(Some(false), "ALL"),
            IdentityFallback::SourceIp,
            CcaScope::Container,
        );
        assert_eq!(p.mode, IdentityMode::SourceIp);
        assert_eq!(p.cca_scope, CcaScope::Node);
        assert!(p.warnings[0].contains("pid: host"), "{:?}", p.warnings);
        assert!(p.warnings[0].contains("CAP_NET_RAW"), "{:?}", p.warnings);
        let deny = plan(
            &env(Some(false), "ALL"),
            IdentityFallback::Deny,
            CcaScope::Container,
        );
        assert_eq!(deny.mode, IdentityMode::DenyAll);
    }

    #[test]
    fn without_privileged_more_is_missing() {
        // The same compose file without `privileged` (what these machines can start).
        let p = plan(
            &env(Some(false), &CapSet::docker_default().to_string()),
            IdentityFallback::SourceIp,
            CcaScope::Container,
        );
        assert_eq!(p.mode, IdentityMode::SourceIp);
        assert!(p.warnings[0].contains("CAP_SYS_ADMIN"), "{:?}", p.warnings);
        assert!(p.warnings.iter().any(|w| w.contains("CAP_NET_ADMIN")));
    }

    #[test]
    fn the_testbed_compose_and_the_host_get_the_check() {
        let p = plan(
            &env(Some(true), "SYS_ADMIN,SYS_PTRACE,NET_ADMIN"),
            IdentityFallback::SourceIp,
            CcaScope::Container,
        );
        assert_eq!(p.mode, IdentityMode::Netns);
        assert_eq!(p.cca_scope, CcaScope::Container);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }
}
