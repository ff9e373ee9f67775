//! Why a request was refused, in one place that both the auth layer and the metrics name (the
//! metrics label every refusal by its reason; keeping the reasons out of the layer's file keeps
//! the metrics from importing the layer that imports them).

/// The original's status details for every authentication failure.
pub const INVALID_TOKEN: &str = "Invalid token";

/// Why a request was refused (the `reason` label of `leotest_orchestrator_auth_failures`).
/// When a request carries both a JWT and a static token and neither passes, the static
/// token's reason is given (it was tried last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No usable credentials: none, empty or oversized, or only a JWT while JWTs are off.
    NoCredentials,
    /// A JWT while this server verifies none (`--jwt-algo` names no algorithm).
    JwtDisabled,
    /// A JWT that does not verify (signature, expiry, algorithm, claims).
    JwtInvalid(JwtReject),
    /// A valid JWT naming a user that does not exist.
    JwtUnknownUser,
    /// A static token for a user id that does not exist.
    UnknownUser,
    /// A static token that is not the user's.
    BadToken,
    /// The store could not be asked.
    StoreError,
}

impl AuthFailure {
    /// Every label value (zero series from the start).
    pub const LABELS: [&'static str; 6] = [
        "no_credentials",
        "jwt_invalid",
        "jwt_unknown_user",
        "unknown_user",
        "bad_token",
        "store_error",
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::NoCredentials | AuthFailure::JwtDisabled => "no_credentials",
            AuthFailure::JwtInvalid(_) => "jwt_invalid",
            AuthFailure::JwtUnknownUser => "jwt_unknown_user",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::BadToken => "bad_token",
            AuthFailure::StoreError => "store_error",
        }
    }

    /// The status message the client gets: the original's `Invalid token`, plus the reason
    /// when a JWT was refused (the holder of a JWT needs to know whether to renew it; the
    /// reasons are fixed texts and reveal no key). A static token gets no reason: whether
    /// the user id or the token was wrong would tell an attacker which user ids exist.
    pub fn message(self) -> String {
        let why = match self {
            AuthFailure::JwtDisabled => "JWT authentication is off on this server (--jwt-algo)",
            AuthFailure::JwtInvalid(r) => r.text(),
            AuthFailure::JwtUnknownUser => "the JWT's userid is not a registered user",
            _ => return INVALID_TOKEN.to_string(),
        };
        format!("{INVALID_TOKEN}: {why}")
    }
}

/// Why a JWT did not verify, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtReject {
    /// `exp` is in the past.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// No `exp` claim (every accepted JWT must expire).
    NoExp,
    /// No `userid` claim, or not a string.
    NoUserid,
    /// A claim of the wrong type (`exp` not a number, say).
    BadClaim,
    /// Signed with another key.
    BadSignature,
    /// Another algorithm than the configured one (`alg: none` included).
    WrongAlgorithm,
    /// Not a JWT at all (shape, base64, JSON).
    Malformed,
}

impl JwtReject {
    /// The text after `Invalid token: `.
    pub fn text(self) -> &'static str {
        match self {
            JwtReject::Expired => "JWT expired (exp is in the past)",
            JwtReject::NotYetValid => "JWT not valid yet (nbf is in the future)",
            JwtReject::NoExp => "JWT has no exp claim (required)",
            JwtReject::NoUserid => "JWT has no userid claim (required, a string)",
            JwtReject::BadClaim => "JWT claim of the wrong type (exp and nbf are numbers)",
            JwtReject::BadSignature => "JWT signature does not verify with this server's key",
            JwtReject::WrongAlgorithm => "JWT algorithm is not the one this server accepts",
            JwtReject::Malformed => "not a well-formed JWT",
        }
    }

    pub(super) fn of(e: &jsonwebtoken::errors::Error) -> JwtReject {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => JwtReject::Expired,
            K::ImmatureSignature => JwtReject::NotYetValid,
            K::MissingRequiredClaim(c) if c == "exp" => JwtReject::NoExp,
            K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) => JwtReject::BadClaim,
            K::InvalidSignature => JwtReject::BadSignature,
            K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
                JwtReject::WrongAlgorithm
            }
            _ => JwtReject::Malformed,
        }
    }
}
