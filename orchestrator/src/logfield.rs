//! The one way caller-supplied text goes into a log line: escaped and bounded.
//!
//! A value a client sent (a userid in failed-authentication lines, ids in requests) could
//! otherwise be 8 KiB long, carry newlines that forge log lines, or terminal escapes. Wrap
//! it: `tracing::info!(userid = %untrusted(&id), ...)`.

use std::fmt;

/// Characters of a value that are logged; the rest is replaced by a byte count. Large
/// enough for any valid id (256 bytes), small enough that a hostile value cannot flood.
pub const MAX_LOGGED_CHARS: usize = 256;

/// Display wrapper produced by [`untrusted`].
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(&'a str);

/// Wraps caller-supplied text for a log line.
pub fn untrusted(value: &str) -> Untrusted<'_> {
    Untrusted(value)
}

/// Characters that would change how a log line reads: controls (newline, ESC), and
/// invisible format characters such as bidirectional overrides.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (at, c)) in self.0.char_indices().enumerate() {
            if n == MAX_LOGGED_CHARS {
                return write!(f, "…[+{} bytes]", self.0.len() - at);
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                c if needs_escape(c) => write!(f, "{}", c.escape_unicode())?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_unchanged() {
        assert_eq!(untrusted("alice-1").to_string(), "alice-1");
        assert_eq!(untrusted("").to_string(), "");
        assert_eq!(untrusted("ünïcode").to_string(), "ünïcode");
    }

    #[test]
    fn security_controls_and_format_characters_are_escaped() {
        assert_eq!(
            untrusted("a\nINFO forged\r\x1b[31m").to_string(),
            "a\\u{a}INFO forged\\u{d}\\u{1b}[31m"
        );
        assert_eq!(untrusted("x\u{202e}y").to_string(), "x\\u{202e}y");
        assert_eq!(untrusted("back\\slash").to_string(), "back\\\\slash");
    }

    #[test]
    fn security_long_values_are_cut_with_a_byte_count() {
        let long = "u".repeat(8 * 1024);
        let shown = untrusted(&long).to_string();
        assert!(shown.starts_with(&"u".repeat(MAX_LOGGED_CHARS)));
        assert!(shown.ends_with(&format!("…[+{} bytes]", 8 * 1024 - MAX_LOGGED_CHARS)));
        assert!(shown.len() < MAX_LOGGED_CHARS + 32);
        let exact = "v".repeat(MAX_LOGGED_CHARS);
        assert_eq!(untrusted(&exact).to_string(), exact);
    }
}
