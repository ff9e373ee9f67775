//! Saved connection profiles written by `leotest login`: named contexts (server, CA, user,
//! token) in one JSON file, `$XDG_CONFIG_HOME/leotest/config.json` (else
//! `~/.config/leotest/config.json`), mode 0600 in a 0700 directory. A context's CA
//! certificate is copied next to it, so commands work from any directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CliError;

/// Largest profile file read; a profile is a few hundred bytes per context.
const MAX_PROFILE: u64 = 256 * 1024;
/// Largest CA file copied into a profile.
const MAX_CA: u64 = 1024 * 1024;
/// Context used when none is named and none is current.
pub(super) const DEFAULT_CONTEXT: &str = "default";

/// One named context: where the orchestrator is and who to be there. Every field is optional:
/// what is missing comes from flags, the environment or the defaults.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_port: Option<u16>,
    /// Absolute path of the CA copy inside the profile directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_access_token: Option<String>,
}

// No Debug derive: a context holds tokens, and they must never reach a log or a panic message.
impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("grpc_host", &self.grpc_host)
            .field("grpc_port", &self.grpc_port)
            .field("userid", &self.userid)
            .finish_non_exhaustive()
    }
}

/// The whole profile file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Profile {
    /// Context used when `--context` / `LEOTEST_CONTEXT` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// Directory holding the profile: `$XDG_CONFIG_HOME/leotest`, else `$HOME/.config/leotest`.
pub(super) fn dir() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = non_empty("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(x).join("leotest"));
    }
    non_empty("HOME").map(|h| PathBuf::from(h).join(".config").join("leotest"))
}

/// Path of the profile file, if a home or config directory is known.
pub(super) fn path() -> Option<PathBuf> {
    dir().map(|d| d.join("config.json"))
}

/// Context names become file names (the CA copy): keep them plain.
pub(super) fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "invalid context name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, CliError> {
    let read_err = |source| CliError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > max {
        return Err(CliError::Other(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    std::fs::read(path).map_err(read_err)
}

impl Profile {
    /// Reads the profile; a missing file is an empty profile.
    pub(crate) fn load() -> Result<(Profile, Option<PathBuf>), CliError> {
        let Some(path) = path() else {
            return Ok((Profile::default(), None));
        };
        if !path.exists() {
            return Ok((Profile::default(), Some(path)));
        }
        let bytes = read_bounded(&path, MAX_PROFILE)?;
        // The file holds tokens: say so when others can read it (the token may have leaked).
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warn: {} is readable by other users; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
        let profile = serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Other(format!(
                "cannot parse the profile {}: {e} (fix it or remove it and `leotest login` again)",
                path.display()
            ))
        })?;
        Ok((profile, Some(path)))
    }

    /// Name of the context to use: `requested`, else the current one, else `default`.
    pub(crate) fn context_name(&self, requested: Option<&str>) -> String {
        requested
            .map(str::to_string)
            .or_else(|| self.current.clone())
            .unwrap_or_else(|| DEFAULT_CONTEXT.to_string())
    }

    /// Writes the profile with mode 0600 (via a temporary file and a rename: never half-written,
    /// never briefly readable by others).
    pub(crate) fn save(&self) -> Result<PathBuf, CliError> {
        let dir = dir().ok_or_else(|| {
            CliError::Other("cannot locate a config directory: set HOME or XDG_CONFIG_HOME".into())
        })?;
        ensure_dir(&dir)?;
        let path = dir.join("config.json");
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| CliError::Other(format!("cannot encode the profile: {e}")))?;
        write_private(&path, &text)?;
        Ok(path)
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Other(format!("cannot write {}: {e}", path.display()))
}

fn ensure_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` with mode 0600, atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

/// Copies the CA file `from` into the profile directory for context `name`, after checking
/// it holds usable certificates; returns the copy's absolute path.
pub(super) fn store_ca(name: &str, from: &Path) -> Result<PathBuf, CliError> {
    let pem = read_bounded(from, MAX_CA)?;
    leotest_client::tls::client_config(&pem)
        .map_err(|e| CliError::Usage(format!("--ca-cert {}: {e}", from.display())))?;
    let dir = dir().ok_or_else(|| {
        CliError::Other("cannot locate a config directory: set HOME or XDG_CONFIG_HOME".into())
    })?;
    ensure_dir(&dir)?;
    let to = dir.join(format!("ca-{name}.crt"));
    // Logging in again with the copy itself as --ca-cert: nothing to copy.
    if std::fs::canonicalize(from).ok() != std::fs::canonicalize(&to).ok() {
        write_private(&to, &pem)?;
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_are_plain() {
        for ok in ["default", "prod", "lab-2", "a.b_c"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "../x", "with space", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_tokens() {
        let c = Context {
            userid: Some("alice".into()),
            access_token: Some("s3cret-token".into()),
            jwt_access_token: Some("eyJ.x.y".into()),
            ..Context::default()
        };
        let text = format!("{c:?}");
        assert!(text.contains("alice") && !text.contains("s3cret") && !text.contains("eyJ"));
    }

    #[test]
    fn the_current_context_is_used_unless_one_is_named() {
        let mut p = Profile::default();
        assert_eq!(p.context_name(None), "default");
        p.current = Some("lab".into());
        assert_eq!(p.context_name(None), "lab");
        assert_eq!(p.context_name(Some("prod")), "prod");
    }
}
