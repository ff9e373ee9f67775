//! The credentials a test request carries, attached as the original client attaches them.

use leotest_proto::{JWT_HEADER, TOKEN_HEADER, USERID_HEADER};
use tonic::metadata::MetadataValue;
use tonic::Request;

/// The admin token every harness-started orchestrator is given (`--admin-access-token`); not
/// the original's public default, which a listener off loopback refuses.
pub const ADMIN_TOKEN: &str = "test-admin-token-6b1f";

/// Credentials a request carries.
#[derive(Clone, Debug)]
pub enum Creds {
    /// No credentials at all.
    None,
    /// `userid` and static access token.
    Token(String, String),
    /// A JWT alone.
    Jwt(String),
    /// A JWT next to a static pair (the JWT wins on the server).
    JwtAndToken(String, String, String),
}

impl Creds {
    /// The admin user with the static admin token.
    pub fn admin() -> Creds {
        Creds::Token("admin".into(), ADMIN_TOKEN.into())
    }

    /// `userid` with a static access token.
    pub fn token(userid: &str, token: &str) -> Creds {
        Creds::Token(userid.into(), token.into())
    }

    /// The userid of static credentials, for messages (never the token: panics are logged).
    pub fn who(&self) -> &str {
        match self {
            Creds::None => "(no credentials)",
            Creds::Token(u, _) | Creds::JwtAndToken(_, u, _) => u,
            Creds::Jwt(_) => "(jwt)",
        }
    }

    /// The static token; panics for other credentials.
    pub fn secret(&self) -> &str {
        match self {
            Creds::Token(_, t) => t,
            _ => panic!("static token credentials expected"),
        }
    }
}

/// Wraps `msg` in a request with the metadata the original client sends.
pub fn req<T>(msg: T, creds: &Creds) -> Request<T> {
    let mut r = Request::new(msg);
    let md = r.metadata_mut();
    // Tests send hostile values too: one that is not valid metadata is left out, as a client
    // that cannot encode it would.
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = MetadataValue::try_from(v) {
            md.insert(k, v);
        }
    };
    match creds {
        Creds::None => {}
        Creds::Token(u, t) => {
            put(USERID_HEADER, u);
            put(TOKEN_HEADER, t);
        }
        Creds::Jwt(j) => put(JWT_HEADER, j),
        Creds::JwtAndToken(j, u, t) => {
            put(JWT_HEADER, j);
            put(USERID_HEADER, u);
            put(TOKEN_HEADER, t);
        }
    }
    r
}
