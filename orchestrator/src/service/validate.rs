//! Bounds on request fields, checked before anything is stored.

/// Longest id (user, node, job, run, task) accepted on writes.
pub const MAX_ID_LEN: usize = 256;
/// Longest free-text field (names, teams, descriptions, locations) accepted on writes.
pub const MAX_TEXT_LEN: usize = 4096;

/// A non-empty id of at most [`MAX_ID_LEN`] bytes without control characters.
pub fn id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("invalid {field}: must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(format!("invalid {field}: longer than {MAX_ID_LEN} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("invalid {field}: contains control characters"));
    }
    Ok(())
}

/// Free text of at most [`MAX_TEXT_LEN`] bytes (may be empty).
pub fn text(field: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_TEXT_LEN {
        return Err(format!("invalid {field}: longer than {MAX_TEXT_LEN} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(id("id", "alice").is_ok());
        assert_eq!(id("id", "").unwrap_err(), "invalid id: must not be empty");
        assert!(id("id", &"a".repeat(MAX_ID_LEN)).is_ok());
        assert!(id("id", &"a".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(id("id", "a\nb").is_err());
        assert!(text("name", "").is_ok());
        assert!(text("name", &"x".repeat(MAX_TEXT_LEN + 1)).is_err());
    }
}
