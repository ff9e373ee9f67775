//! The port-9000 command grammar, from the `leotest-wire` crate the client renders with, so the
//! two ends cannot drift apart.

pub use leotest_wire::{error_reply, parse, KernelCommand as Command, ParseError, MAX_LINE};
