//! Bounds on request fields, checked before anything is stored.
//!
//! Ids are tightly bounded: they are keys, appear in messages and logs, and no client makes
//! long ones. Free text (names, descriptions, a job's `config` — the web portal sends the
//! whole experiment YAML —, params, run status messages, global config values) is accepted up
//! to the transport's `--max-message-bytes`, as the original stored whatever it received.

/// Longest id (user, node, job, run, task) accepted on writes.
pub const MAX_ID_LEN: usize = 256;

fn bounded(field: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_ID_LEN {
        return Err(format!("invalid {field}: longer than {MAX_ID_LEN} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("invalid {field}: contains control characters"));
    }
    Ok(())
}

/// The id of a record being created: non-empty, at most [`MAX_ID_LEN`] bytes, no control
/// characters.
pub fn id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("invalid {field}: must not be empty"));
    }
    bounded(field, value)
}

/// An id that refers to another record (a run's `jobid`, a task's `nodeid`): like [`id`]
/// but may be empty, as the original never required them.
pub fn id_ref(field: &str, value: &str) -> Result<(), String> {
    bounded(field, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(id("id", "alice").is_ok());
        assert_eq!(id("id", "").unwrap_err(), "invalid id: must not be empty");
        assert!(id("id", &"a".repeat(MAX_ID_LEN)).is_ok());
        assert_eq!(
            id("id", &"a".repeat(MAX_ID_LEN + 1)).unwrap_err(),
            "invalid id: longer than 256 bytes"
        );
        assert!(id("id", "a\nb").is_err());
        assert!(id_ref("jobid", "").is_ok());
        assert!(id_ref("jobid", &"a".repeat(MAX_ID_LEN + 1)).is_err());
    }
}
