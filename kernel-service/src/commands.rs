//! The whitelisted kernel commands: congestion control (per netns) and bbr2 module parameters.

use std::path::{Path, PathBuf};

use sysctl::Sysctl;
use thiserror::Error;

use crate::config::CcaScope;
use crate::netns::NetnsHandles;
use crate::procsys;
use crate::sys::ns;

const CCA: &str = "net.ipv4.tcp_congestion_control";
const CCA_AVAILABLE: &str = "net.ipv4.tcp_available_congestion_control";
const CCA_ALLOWED: &str = "net.ipv4.tcp_allowed_congestion_control";

/// The answer to `help` on port 9000 (only the exact word: anything else not listed runs as
/// a sandboxed program, as the protocol requires). Lines of the reply, then the end.
pub const HELP: &str = "\
commands (one line per connection; the reply, then the connection closes):
  cca.check                  show net.ipv4.tcp_congestion_control
  cca.change ALG             set it (ALG from tcp_available_congestion_control)
  bbr2.param.set NAME VALUE  set a bbr2 module parameter (integer VALUE)
  job.start CMD ARGS...      start CMD in the sandbox; replies the job id
  job.status ID              state of a job of yours
  job.stop ID                stop a job of yours
  job.watch ID               stream a job's output until it ends
  job.list                   your jobs
  help                       this list
  anything else              runs once in the sandbox; replies its output
";

/// A command that was parsed but could not be carried out.
#[derive(Debug, Error)]
pub enum CommandError {
    /// A sysctl could not be read or written.
    #[error("sysctl: {0}")]
    Sysctl(String),
    /// The algorithm is not in the kernel's available list.
    #[error("algorithm {0} is not available (see {CCA_AVAILABLE})")]
    Unavailable(String),
    /// The algorithm is not in the namespace's allowed list.
    #[error(
        "algorithm {alg} is not in {CCA_ALLOWED} ({allowed}): the node operator can add it on \
         the host with `sysctl -w {CCA_ALLOWED}=\"{allowed} {alg}\"` (or run the kernel \
         service with CAP_NET_ADMIN over the namespace)"
    )]
    NotAllowed {
        /// The algorithm asked for.
        alg: String,
        /// The namespace's allowed list, as read.
        allowed: String,
    },
    /// Entering the caller's network namespace failed.
    #[error("cannot enter the container's network namespace: {0}")]
    Netns(String),
    /// No bbr2 module parameter of that name.
    #[error("unknown bbr2 parameter")]
    UnknownParam,
    /// Writing the bbr2 parameter failed.
    #[error("write failed: {0}")]
    Write(String),
}

fn read(name: &str) -> Result<String, CommandError> {
    let ctl = sysctl::Ctl::new(name).map_err(|e| CommandError::Sysctl(e.to_string()))?;
    ctl.value_string()
        .map(|v| v.trim().to_string())
        .map_err(|e| CommandError::Sysctl(e.to_string()))
}

fn check() -> Result<Vec<u8>, CommandError> {
    Ok(format!("{CCA} = {}\n", read(CCA)?).into_bytes())
}

fn change(alg: &str) -> Result<Vec<u8>, CommandError> {
    let avail = read(CCA_AVAILABLE)?;
    if !avail.split_whitespace().any(|a| a == alg) {
        return Err(CommandError::Unavailable(alg.to_string()));
    }
    let ctl = sysctl::Ctl::new(CCA).map_err(|e| CommandError::Sysctl(e.to_string()))?;
    let set = match ctl.set_value_string(alg) {
        Ok(_) => Ok(()),
        // Inside a container /proc/sys is read-only: write through a private procfs instead.
        Err(sysctl::SysctlError::IoError(e)) if e.raw_os_error() == Some(libc::EROFS) => {
            procsys::write_private(CCA, alg).map_err(|e| (e.raw_os_error(), e.to_string()))
        }
        Err(sysctl::SysctlError::IoError(e)) => Err((e.raw_os_error(), e.to_string())),
        Err(e) => Err((None, e.to_string())),
    };
    if let Err((errno, text)) = set {
        return Err(explain_refusal(alg, errno, text));
    }
    Ok(format!("{CCA} = {}\n", read(CCA)?).into_bytes())
}

/// The kernel lets a namespace without CAP_NET_ADMIN over the initial one pick only the
/// algorithms of tcp_allowed_congestion_control, and answers EPERM otherwise: say that, and
/// what the operator can change, instead of a bare "Operation not permitted".
fn explain_refusal(alg: &str, errno: Option<i32>, text: String) -> CommandError {
    if errno == Some(libc::EPERM) {
        if let Ok(allowed) = read(CCA_ALLOWED) {
            if !allowed.split_whitespace().any(|a| a == alg) {
                return CommandError::NotAllowed {
                    alg: alg.to_string(),
                    allowed,
                };
            }
        }
    }
    CommandError::Sysctl(text)
}

/// Runs `f` in the network namespace of `pid` (on a thread of its own, see [`ns::run_in`]).
async fn in_netns<T, F>(pid: u32, f: F) -> Result<T, CommandError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, CommandError> + Send + 'static,
{
    ns::run_in_pid_async(pid, f)
        .await
        .map_err(|e| CommandError::Netns(e.to_string()))?
}

/// `cca.check`, in the scope's namespace.
///
/// With `netns` (the caller's namespace handles, validated when the caller was resolved) the
/// value is read through a file opened in that namespace, with no thread hop; otherwise on a
/// thread that enters the namespace of `pid`.
pub async fn cca_check(
    scope: CcaScope,
    pid: u32,
    netns: Option<&NetnsHandles>,
) -> Result<Vec<u8>, CommandError> {
    match scope {
        CcaScope::Container => {
            if let Some(v) = netns.and_then(|h| h.read_cca().ok()) {
                return Ok(format!("{CCA} = {v}\n").into_bytes());
            }
            in_netns(pid, check).await
        }
        CcaScope::Node => tokio::task::spawn_blocking(check)
            .await
            .map_err(|e| CommandError::Sysctl(e.to_string()))?,
    }
}

/// `cca.change ALG`, in the scope's namespace: entered through `netns` (the handle checked
/// when the caller was resolved) when there is one, by `pid` otherwise.
pub async fn cca_change(
    scope: CcaScope,
    pid: u32,
    netns: Option<&NetnsHandles>,
    alg: String,
) -> Result<Vec<u8>, CommandError> {
    match scope {
        CcaScope::Container => match netns {
            Some(h) => {
                let ns = h
                    .ns_file()
                    .map_err(|e| CommandError::Netns(e.to_string()))?;
                ns::run_in_async(ns, move || change(&alg))
                    .await
                    .map_err(|e| CommandError::Netns(e.to_string()))?
            }
            None => in_netns(pid, move || change(&alg)).await,
        },
        CcaScope::Node => tokio::task::spawn_blocking(move || change(&alg))
            .await
            .map_err(|e| CommandError::Sysctl(e.to_string()))?,
    }
}

/// Maps a user-given NAME (or old-style path) to a regular file directly inside `dir`.
pub fn resolve_param(dir: &Path, name: &str) -> Result<PathBuf, CommandError> {
    let dir = dir.canonicalize().map_err(|_| CommandError::UnknownParam)?;
    let candidate = if name.contains('/') {
        // The original took a path: accept it only if it really lands inside the directory.
        PathBuf::from(name)
    } else {
        if name.is_empty() || name == "." || name == ".." {
            return Err(CommandError::UnknownParam);
        }
        dir.join(name)
    };
    let real = candidate
        .canonicalize()
        .map_err(|_| CommandError::UnknownParam)?;
    if real.parent() != Some(dir.as_path()) || !real.is_file() {
        return Err(CommandError::UnknownParam);
    }
    Ok(real)
}

/// `bbr2.param.set NAME VALUE` (VALUE already checked numeric by the parser).
pub async fn bbr2_set(dir: PathBuf, name: String, value: String) -> Result<Vec<u8>, CommandError> {
    tokio::task::spawn_blocking(move || {
        let path = resolve_param(&dir, &name)?;
        std::fs::write(&path, value.as_bytes()).map_err(|e| CommandError::Write(e.to_string()))?;
        Ok(format!("BBR2 parameter {name} set to {value}").into_bytes())
    })
    .await
    .map_err(|e| CommandError::Write(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbr2_names_stay_inside_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("parameters");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("loss_thresh"), "0").unwrap();
        std::fs::write(root.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), dir.join("link")).unwrap();

        assert!(resolve_param(&dir, "loss_thresh").is_ok());
        let old_form = dir.join("loss_thresh");
        assert!(resolve_param(&dir, old_form.to_str().unwrap()).is_ok());
        for bad in ["../secret", "/etc/passwd", "link", "..", "missing", ""] {
            assert!(resolve_param(&dir, bad).is_err(), "{bad} accepted");
        }
        let trav = format!("{}/../secret", dir.display());
        assert!(resolve_param(&dir, &trav).is_err());
    }

    #[tokio::test]
    async fn bbr2_set_writes_the_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loss_thresh"), "0").unwrap();
        let out = bbr2_set(dir.path().into(), "loss_thresh".into(), "10".into())
            .await
            .unwrap();
        assert_eq!(out, b"BBR2 parameter loss_thresh set to 10");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("loss_thresh")).unwrap(),
            "10"
        );
    }

    #[tokio::test]
    async fn node_scope_check_reads_the_sysctl() {
        let out = String::from_utf8(cca_check(CcaScope::Node, 0, None).await.unwrap()).unwrap();
        assert!(
            out.starts_with("net.ipv4.tcp_congestion_control = "),
            "{out}"
        );
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn a_refusal_outside_the_allowed_list_says_what_to_change() {
        let allowed = read(CCA_ALLOWED).expect("allowed list");
        let e = explain_refusal("nosuchalg", Some(libc::EPERM), "raw".into());
        let text = e.to_string();
        assert!(text.contains(CCA_ALLOWED), "{text}");
        assert!(
            text.contains(&format!("sysctl -w {CCA_ALLOWED}=\"{allowed} nosuchalg\"")),
            "{text}"
        );
        // Other failures keep the kernel's words.
        let e = explain_refusal("nosuchalg", Some(libc::EIO), "raw".into());
        assert_eq!(e.to_string(), "sysctl: raw");
    }

    #[test]
    fn help_lists_every_command() {
        for c in [
            "cca.check",
            "cca.change",
            "bbr2.param.set",
            "job.start",
            "job.status",
            "job.stop",
            "job.watch",
            "job.list",
        ] {
            assert!(HELP.lines().any(|l| l.trim_start().starts_with(c)), "{c}");
        }
    }

    #[tokio::test]
    async fn unlisted_algorithm_is_refused() {
        let err = cca_change(CcaScope::Node, 0, None, "nosuchalg".into())
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Unavailable(_)), "{err}");
    }

    /// Issue 23: `cca.change` entered the caller's namespace by its PID at command time, not
    /// through the handle checked at decision time. With a handle, the PID is not used at all
    /// (here: one no process has); the change re-sets the current value, so nothing changes.
    #[tokio::test]
    async fn security_cca_change_enters_the_checked_namespace_handle() {
        let h = NetnsHandles::open(std::process::id()).unwrap();
        let current = h.read_cca().unwrap();
        let out = cca_change(CcaScope::Container, u32::MAX, Some(&h), current.clone())
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{CCA} = {current}\n")
        );
        let err = cca_change(CcaScope::Container, u32::MAX, None, current)
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Netns(_)), "{err}");
    }
}
