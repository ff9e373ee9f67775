//! Bounds on request fields, checked before anything is stored.
//!
//! Ids are tightly bounded: they are keys, appear in messages and logs, and no client makes
//! long ones. A job's free text is bounded by what it costs later, since every calendar read
//! of its node repeats it per run: each `params_*` field at [`MAX_PARAM_BYTES`], `config` (the
//! web portal sends the whole experiment YAML, 30–60 KiB) at [`MAX_CONFIG_BYTES`]; `schedule`
//! (256 bytes) and `trigger` (4096) are bounded by their parsers. Other free text (names,
//! descriptions, run status messages, global config values) is accepted up to the
//! transport's `--max-message-bytes`, as the original stored whatever it received.

/// Longest id (user, node, job, run, task) accepted on writes.
pub const MAX_ID_LEN: usize = 256;
/// Longest `params_mode/deploy/execute/finish` of a job (command lines, image names).
pub const MAX_PARAM_BYTES: usize = 64 * 1024;
/// Longest `blob_url` of a run (a storage URL with its SAS token is well under 1 KiB).
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Longest `config` of a job (a whole experiment YAML).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Free text of at most `max` bytes.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("invalid {field}: longer than {max} bytes"));
    }
    Ok(())
}

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
        assert!(text("config", &"a".repeat(MAX_CONFIG_BYTES), MAX_CONFIG_BYTES).is_ok());
        assert_eq!(
            text("params_execute", &"a".repeat(65_537), MAX_PARAM_BYTES).unwrap_err(),
            "invalid params_execute: longer than 65536 bytes"
        );
    }
}
