//! A task's settings from the environment, read as the bash harness read `${VAR:-default}`:
//! unset and empty both mean the default.

use anyhow::{Context, Result};

/// `$key`, or `default` when it is unset or empty.
pub(crate) fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// `$key` as a number (a port, a count of seconds), or `default` when it is unset or empty; an
/// error naming the variable when it is not a number.
pub(crate) fn port_env<T>(key: &str, default: T) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(key).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .with_context(|| format!("{key}={v}: not a number")),
    }
}

/// `$key` as a port, or a free one (test-support's allocator, below the ephemeral range) when
/// it is unset, empty or 0: the e2e tests' host ports, so that a run can sit next to another
/// testbed.
pub(crate) fn port_or_free(key: &str) -> Result<u16> {
    match port_env::<u16>(key, 0)? {
        0 => crate::ports::free().with_context(|| format!("{key}: no free port")),
        p => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_empty_mean_the_default_and_garbage_is_named() {
        assert_eq!(env_or("LEOTEST_XTASK_SETTINGS_UNSET", "d"), "d");
        assert_eq!(port_env("LEOTEST_XTASK_SETTINGS_UNSET", 7u16).unwrap(), 7);
        std::env::set_var("LEOTEST_XTASK_SETTINGS_BAD", "x1");
        let e = port_env::<u16>("LEOTEST_XTASK_SETTINGS_BAD", 7).unwrap_err();
        assert!(
            e.to_string().contains("LEOTEST_XTASK_SETTINGS_BAD=x1"),
            "{e}"
        );
    }
}
