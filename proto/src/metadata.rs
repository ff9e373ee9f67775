//! Request metadata of the wire contract: the credential header names the original client
//! sends, and the longest credential value either side handles.

/// Metadata key of the user id (static credentials).
pub const USERID_HEADER: &str = "x-leotest-userid";
/// Metadata key of the static (or per-user) access token.
pub const TOKEN_HEADER: &str = "x-leotest-access-token";
/// Metadata key of the JWT.
pub const JWT_HEADER: &str = "x-leotest-jwt-access-token";
/// Longest credential value (user id, token or JWT): clients refuse to send a longer one and
/// the orchestrator does not look at it (no valid credential is that long).
pub const MAX_CREDENTIAL_LEN: usize = 8 * 1024;
