//! The kernel service's line protocol on TCP port 9000, in one place for both ends: the node
//! daemon parses a request line with [`parse`], the client renders one with
//! [`KernelCommand::line`], and both use the same port, limits and reply words. A crate of its
//! own so the daemon needs neither the CLI nor its dependencies to speak it.
//!
//! docs/kernel-protocol.md describes the exchange byte for byte.

#![forbid(unsafe_code)]

mod command;

pub use command::{parse, KernelCommand, LineError, ParseError, MAX_LINE};

/// Port the kernel service listens on.
pub const DEFAULT_PORT: u16 = 9000;

/// The whole reply to a refused caller (the original's, byte for byte: no newline).
pub const ACCESS_DENIED: &str = "access_denied";

/// A failure reply: `error: ` and the reason on one line.
pub fn error_reply(reason: impl std::fmt::Display) -> Vec<u8> {
    format!("error: {reason}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reply_is_one_line() {
        assert_eq!(error_reply(ParseError::Empty), b"error: empty command\n");
    }
}
