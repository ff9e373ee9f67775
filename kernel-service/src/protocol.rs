//! The port-9000 command grammar. It lives in the client crate, which renders exactly what this
//! service parses, so the two ends cannot drift apart.

pub use leotest_client::kernel::{parse, KernelCommand as Command, ParseError, MAX_LINE};
