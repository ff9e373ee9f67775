//! `leotest-orchestrator jwt`: prints a JWT this server accepts, signed with the configured
//! secret (HS*) or a private key matching `--jwt-public-key` (RS*/PS*/ES*/EdDSA).
//!
//! The token carries exactly what the server requires: `userid` (a registered user) and
//! `exp`, plus `iat`. Before printing, it is checked with the same verifier the server uses,
//! so a key that does not match the server's public key, or a weak secret, fails here
//! instead of at the first request.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::auth::{AuthConfigError, JwtVerifier};
use crate::config::ServerConfig;

/// Longest lifetime a token may be given (a year): a JWT cannot be revoked before its `exp`
/// other than by deleting its user or changing the key.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Options of `jwt`.
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// The user the token authenticates as (must be registered for the server to accept it).
    #[arg(long)]
    pub userid: String,
    /// Lifetime: seconds, or a number with s, m, h or d (`90s`, `30m`, `12h`, `7d`); at most
    /// 366d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// PEM private key for RS*/PS*/ES*/EdDSA (the pair of --jwt-public-key). Not needed for
    /// HS256/HS384/HS512, which sign with --jwt-secret / LEOTEST_JWT_SECRET.
    #[arg(long, env = "LEOTEST_JWT_PRIVATE_KEY")]
    pub private_key: Option<PathBuf>,
}

/// Why no token was made.
#[derive(Debug, thiserror::Error)]
pub enum JwtCmdError {
    /// The server's JWT settings have JWT authentication off.
    #[error(
        "JWT authentication is off (--jwt-algo {0}): start the server and this command with \
         --jwt-algo HS256 (and --jwt-secret) or another algorithm"
    )]
    Disabled(String),
    /// The JWT settings are inconsistent.
    #[error("{0}")]
    Config(#[from] AuthConfigError),
    /// The algorithm signs with a private key and none was given.
    #[error("--jwt-algo {0} signs with a private key: give --private-key")]
    NeedPrivateKey(String),
    /// A key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path of the file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Signing failed (e.g. the key does not suit the algorithm).
    #[error("cannot sign: {0}")]
    Sign(String),
    /// `--userid` is empty.
    #[error("--userid must not be empty")]
    NoUserid,
    /// The token made would be rejected by the server with these settings.
    #[error(
        "the token made does not verify with this server's settings ({0}): does --private-key \
         belong to --jwt-public-key?"
    )]
    SelfCheck(&'static str),
}

/// Parses `90`, `90s`, `30m`, `12h`, `7d` (bounded by [`MAX_TTL`], at least a second).
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m, h or d (e.g. 12h)"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ))
        }
    };
    let secs = n.saturating_mul(unit_secs);
    if secs == 0 || secs > MAX_TTL.as_secs() {
        return Err(format!(
            "{text:?}: the lifetime must be between 1s and 366d"
        ));
    }
    Ok(Duration::from_secs(secs))
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, JwtCmdError> {
    std::fs::read(path).map_err(|source| JwtCmdError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The token for `args` under the server settings `cfg`.
pub fn make(cfg: &ServerConfig, args: &JwtArgs) -> Result<String, JwtCmdError> {
    if args.userid.is_empty() {
        return Err(JwtCmdError::NoUserid);
    }
    // The verifier applies the server's own refusals (weak secret, missing public key).
    let verifier = JwtVerifier::from_settings(
        &cfg.jwt_algo,
        &cfg.jwt_secret,
        cfg.jwt_public_key.as_deref(),
    )?
    .ok_or_else(|| JwtCmdError::Disabled(cfg.jwt_algo.clone()))?;
    let alg = Algorithm::from_str(&cfg.jwt_algo)
        .map_err(|_| JwtCmdError::Disabled(cfg.jwt_algo.clone()))?;
    let sign = |e: jsonwebtoken::errors::Error| JwtCmdError::Sign(e.to_string());
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(cfg.jwt_secret.as_bytes())
        }
        other => {
            let path = args
                .private_key
                .as_deref()
                .ok_or_else(|| JwtCmdError::NeedPrivateKey(cfg.jwt_algo.clone()))?;
            let pem = read(path)?;
            match other {
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            }
            .map_err(sign)?
        }
    };
    // The system clock, not `crate::clock`: the token's `iat`/`exp` are checked against the
    // real time of whichever orchestrator receives it.
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(args.ttl.as_secs()).unwrap_or(i64::MAX);
    let claims = serde_json::json!({
        "userid": args.userid,
        "iat": now,
        "exp": now.saturating_add(ttl),
    });
    let token = jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(sign)?;
    verifier
        .verify(&token)
        .map_err(|r| JwtCmdError::SelfCheck(r.text()))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> ServerConfig {
        crate::config::parse_flags(args).expect("flags")
    }

    fn jwt_args(userid: &str) -> JwtArgs {
        JwtArgs {
            userid: userid.into(),
            ttl: Duration::from_secs(60),
            private_key: None,
        }
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "0", "1y", "h", "367d", "99999999999999999999d", "-5s"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hs256_token_verifies_with_the_servers_settings() {
        let c = cfg(&[
            "--jwt-algo",
            "HS256",
            "--jwt-secret",
            "a-long-enough-secret",
        ]);
        let token = make(&c, &jwt_args("alice")).expect("token");
        let v = JwtVerifier::from_settings("HS256", "a-long-enough-secret", None)
            .expect("settings")
            .expect("on");
        assert_eq!(v.verify(&token), Ok("alice".to_string()));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let off = make(&cfg(&[]), &jwt_args("alice")).expect_err("off");
        assert!(off.to_string().contains("--jwt-algo"), "{off}");
        let weak = make(&cfg(&["--jwt-algo", "HS256"]), &jwt_args("a")).expect_err("weak");
        assert!(weak.to_string().contains("--jwt-secret"), "{weak}");
        let c = cfg(&[
            "--jwt-algo",
            "HS256",
            "--jwt-secret",
            "a-long-enough-secret",
        ]);
        assert!(matches!(
            make(&c, &jwt_args("")),
            Err(JwtCmdError::NoUserid)
        ));
    }
}
