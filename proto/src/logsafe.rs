//! The one way caller-supplied text goes into a log or audit line: escaped and bounded.
//!
//! A value a caller sent (a userid in a failed authentication, a container label, ids in
//! requests) could otherwise be kilobytes long, carry newlines that forge log lines, or hide
//! text with terminal escapes and bidirectional overrides. Both daemons wrap such values:
//! `tracing::info!(userid = %untrusted(&id, MAX), ...)`; each picks its own bound.

use std::fmt;

/// Display wrapper produced by [`untrusted`].
#[derive(Clone, Copy)]
pub struct Untrusted<'a> {
    value: &'a str,
    max_bytes: usize,
}

/// Wraps caller-supplied text for a log line: at most `max_bytes` bytes of it are shown (cut at
/// a character boundary, the rest replaced by `…[+N bytes]`), with `\`, control characters and
/// invisible format characters (zero-width, line/paragraph separators, bidi overrides and
/// isolates, BOM) escaped as `\\` and `\u{..}`. Other printable text, Unicode included, is
/// shown as is.
pub fn untrusted(value: &str, max_bytes: usize) -> Untrusted<'_> {
    Untrusted { value, max_bytes }
}

/// Characters that would change how a log line reads: controls (newline, ESC), and invisible
/// format characters such as bidirectional overrides.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, c) in self.value.char_indices() {
            // The bound counts input bytes: a character that would cross it is left out whole.
            if at + c.len_utf8() > self.max_bytes {
                return write!(f, "…[+{} bytes]", self.value.len() - at);
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

    fn shown(value: &str, max: usize) -> String {
        untrusted(value, max).to_string()
    }

    #[test]
    fn plain_values_are_unchanged() {
        assert_eq!(shown("alice-1", 64), "alice-1");
        assert_eq!(shown("", 64), "");
        assert_eq!(shown("ünïcode", 64), "ünïcode");
        assert_eq!(format!("{:?}", untrusted("a b", 64)), "\"a b\"");
    }

    #[test]
    fn security_control_characters_are_escaped() {
        assert_eq!(
            shown("a\nINFO forged\r\x1b[31m\t\0\u{7f}\u{85}", 256),
            "a\\u{a}INFO forged\\u{d}\\u{1b}[31m\\u{9}\\u{0}\\u{7f}\\u{85}"
        );
        assert_eq!(shown("back\\slash", 256), "back\\\\slash");
        // An escaped backslash cannot be confused with an escape the function wrote.
        assert_eq!(shown("\\u{a}", 256), "\\\\u{a}");
    }

    #[test]
    fn security_bidi_and_invisible_format_characters_are_escaped() {
        assert_eq!(shown("x\u{202e}y", 64), "x\\u{202e}y");
        assert_eq!(
            shown(
                "\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}",
                256
            ),
            "\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{2066}\\u{2067}\\u{2068}\\u{2069}"
        );
        assert_eq!(
            shown("\u{200b}\u{200e}\u{200f}\u{2028}\u{2029}\u{feff}", 256),
            "\\u{200b}\\u{200e}\\u{200f}\\u{2028}\\u{2029}\\u{feff}"
        );
    }

    #[test]
    fn security_long_values_are_cut_with_a_byte_count() {
        for max in [64, 256] {
            let long = "u".repeat(8 * 1024);
            let out = shown(&long, max);
            assert_eq!(
                out,
                format!("{}…[+{} bytes]", "u".repeat(max), 8 * 1024 - max)
            );
            let exact = "v".repeat(max);
            assert_eq!(
                shown(&exact, max),
                exact,
                "a value of exactly the bound is whole"
            );
        }
    }

    #[test]
    fn security_a_cut_never_splits_a_character() {
        // "é" is two bytes: with a bound of 4 the third one (bytes 4..6) does not fit whole.
        assert_eq!(shown("ééé", 4), "éé…[+2 bytes]");
        assert_eq!(shown("aééé", 4), "aé…[+4 bytes]");
        // A four-byte character that straddles the bound is left out entirely.
        assert_eq!(shown("ab😀", 5), "ab…[+4 bytes]");
        assert_eq!(shown("😀", 0), "…[+4 bytes]");
    }
}
