//! Callers on the unix socket: process → container, from the process's cgroup.
//!
//! Docker puts every process of a container in cgroups named after the container's id
//! (`/docker/<id>` with the cgroupfs driver, `/system.slice/docker-<id>.scope` with systemd; v1
//! or v2). A process cannot leave them without privileges a container does not have, so the
//! cgroup read through `/proc/<pid>/cgroup` names the container the process runs in — whatever
//! the socket file it connected to, or its network address. The pid comes from `SO_PEERCRED`
//! and is re-checked through the caller's `SO_PEERPIDFD` after the read (see
//! [`crate::server::unix`]).

/// Length of a full container id (hex).
const ID_LEN: usize = 64;

/// The container id in one cgroup path component, if it is one.
fn id_in(component: &str) -> Option<&str> {
    let c = component.strip_prefix("docker-").unwrap_or(component);
    let c = c.strip_suffix(".scope").unwrap_or(c);
    (c.len() == ID_LEN
        && c.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(c)
}

/// The container a process runs in, from its `/proc/<pid>/cgroup`; `None` when no hierarchy
/// names one, or two name different ones (fail closed).
pub fn container_id(cgroup: &str) -> Option<String> {
    let mut found: Option<&str> = None;
    for line in cgroup.lines() {
        // `hierarchy-id:controllers:path`; the path may itself contain ':'.
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        // The innermost id: a nested container (docker in docker) is named last.
        if let Some(id) = path.split('/').rev().find_map(id_in) {
            match found {
                Some(f) if f != id => return None,
                _ => found = Some(id),
            }
        }
    }
    found.map(str::to_string)
}

/// Reads the cgroup file of `pid` and returns its container id.
pub fn container_of(pid: u32) -> std::io::Result<Option<String>> {
    Ok(container_id(&std::fs::read_to_string(format!(
        "/proc/{pid}/cgroup"
    ))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
    const ID2: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn docker_cgroup_paths_name_the_container() {
        let v1 =
            format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
        assert_eq!(container_id(&v1).as_deref(), Some(ID));
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_id(&v2).as_deref(), Some(ID));
        let nested = format!("0::/docker/{ID2}/docker/{ID}\n");
        assert_eq!(container_id(&nested).as_deref(), Some(ID));
    }

    #[test]
    fn host_processes_and_inconsistent_files_name_none() {
        assert_eq!(
            container_id("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        assert_eq!(container_id("12:pids:/\n"), None);
        assert_eq!(container_id(""), None);
        let mixed = format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID2}\n");
        assert_eq!(container_id(&mixed), None);
        let short = format!("0::/docker/{}\n", &ID[..63]);
        assert_eq!(container_id(&short), None);
        let upper = format!("0::/docker/{}\n", ID.to_uppercase());
        assert_eq!(container_id(&upper), None);
        // This very test process is not in a Docker container's cgroup (or is, when the suite
        // runs in one): either way reading works.
        assert!(container_of(std::process::id()).is_ok());
    }
}
