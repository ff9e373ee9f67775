//! Caller-supplied text in log and audit lines: truncated and escaped, so a label or a command
//! cannot forge log lines (newlines), hide text (control and bidi characters) or flood the log.

use std::fmt;

/// Longest part of a caller-supplied value that reaches a log line, in bytes.
pub const MAX_LOGGED: usize = 64;

/// Displays a caller-supplied string: printable ASCII as is, everything else escaped
/// (`\n`, `\u{202e}`, ...), cut after [`MAX_LOGGED`] bytes with the number of bytes left out.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut used = 0;
        for c in self.0.chars() {
            if used + c.len_utf8() > MAX_LOGGED {
                return write!(f, "…[+{} bytes]", self.0.len() - used);
            }
            used += c.len_utf8();
            if (c.is_ascii_graphic() || c == ' ') && c != '\\' {
                f.write_fmt(format_args!("{c}"))?;
            } else {
                write!(f, "{}", c.escape_default())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_values_are_escaped_and_cut() {
        assert_eq!(Untrusted("alice").to_string(), "alice");
        assert_eq!(
            Untrusted("a\nb\u{202e}c\\").to_string(),
            "a\\nb\\u{202e}c\\\\"
        );
        let long = "x".repeat(8192);
        let shown = Untrusted(&long).to_string();
        assert!(shown.starts_with(&"x".repeat(MAX_LOGGED)));
        assert!(shown.ends_with(&format!("…[+{} bytes]", 8192 - MAX_LOGGED)));
        assert!(shown.len() < 100);
    }
}
