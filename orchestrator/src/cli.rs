//! The orchestrator's command line: serving (the default, with the flags of
//! [`ServerConfig`]) and the subcommands beside it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ServerConfig, DEFAULT_TLS_CERT, DEFAULT_TLS_KEY};
use crate::jwtcmd::JwtArgs;
use crate::tokens::admin::TokensArgs;

/// LeoTest orchestrator: the gRPC control plane of the LEOScope testbed.
#[derive(Debug, Clone, Parser)]
#[command(name = "leotest-orchestrator", version, about, long_about = None)]
pub struct Cli {
    /// An administration subcommand; `None` runs the server.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The server's options.
    #[command(flatten)]
    pub server: ServerConfig,
}

/// Subcommands besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Write a fresh self-signed development certificate and key (SAN localhost) and exit.
    GenCert(GenCertArgs),
    /// Audit stored access tokens or rotate them, on the configured store (embedded store:
    /// with the server stopped).
    Tokens(TokensArgs),
    /// Print a JWT this server accepts (claims userid, exp, iat), signed with the configured
    /// --jwt-secret (HS*) or --private-key (other algorithms). Server flags such as --jwt-algo
    /// go before `jwt` (or in their LEOTEST_* environment variables).
    Jwt(JwtArgs),
}

/// Options of `gen-cert`.
#[derive(Debug, Clone, Args)]
pub struct GenCertArgs {
    /// Certificate output path.
    #[arg(long, default_value = DEFAULT_TLS_CERT)]
    pub cert: PathBuf,
    /// Private key output path (written with mode 0600).
    #[arg(long, default_value = DEFAULT_TLS_KEY)]
    pub key: PathBuf,
    /// Subject alternative names (DNS names or IP addresses); CN is the first one.
    #[arg(long = "san", default_values_t = vec!["localhost".to_string(), "127.0.0.1".to_string()])]
    pub sans: Vec<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut v = vec!["leotest-orchestrator"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("valid flags")
    }

    #[test]
    fn gen_cert_subcommand_parses() {
        let c = parse(&["gen-cert", "--cert", "a.crt", "--key", "a.key", "--force"]);
        match c.command {
            Some(Command::GenCert(g)) => {
                assert_eq!(g.cert, PathBuf::from("a.crt"));
                assert!(g.force);
                assert_eq!(g.sans, vec!["localhost", "127.0.0.1"]);
            }
            _ => panic!("expected gen-cert"),
        }
    }
}
