//! LeoTest kernel service: the node daemon on TCP 9000.

pub mod sandbox;
