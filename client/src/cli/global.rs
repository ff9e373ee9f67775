//! Global options and how they are resolved: flags override environment variables, which
//! override the saved profile (`leotest login`), which overrides the original's defaults.

use std::path::PathBuf;
use std::time::Duration;

use leotest_client::{ClientConfig, ClientError, Credentials, LeotestClient, RetryPolicy};

use super::output::{Format, Output, TimeZone};
use super::profile::{self, Context, Profile};
use super::CliError;

/// Host used when neither a flag, the environment nor a profile names one (the original's).
pub(super) const DEFAULT_HOST: &str = "0.0.0.0";
pub(super) const DEFAULT_PORT: u16 = 50051;
pub(super) const DEFAULT_USERID: &str = "admin";
pub(super) const DEFAULT_TIMEOUT: u64 = 5;
pub(super) const DEFAULT_RETRIES: u32 = 2;
/// Longest access token file read.
const MAX_TOKEN_FILE: u64 = 16 * 1024;

/// Options shared by every subcommand: the original's top-level options plus new ones. Each
/// reads `LEOTEST_<FLAG>` from the environment (`--grpc-host` → `LEOTEST_GRPC_HOST`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// Orchestrator host [default: from the profile, else 0.0.0.0]
    #[arg(long, global = true, env = "LEOTEST_GRPC_HOST")]
    pub grpc_host: Option<String>,
    /// Orchestrator port [default: from the profile, else 50051]
    #[arg(long, global = true, env = "LEOTEST_GRPC_PORT")]
    pub grpc_port: Option<u16>,
    /// LeoTest user id to authenticate as [default: from the profile, else admin]
    #[arg(long, global = true, env = "LEOTEST_USERID")]
    pub userid: Option<String>,
    /// Access token of --userid; prefer --access-token-file or LEOTEST_ACCESS_TOKEN, which
    /// other users cannot see in the process list [env: LEOTEST_ACCESS_TOKEN]
    #[arg(long, global = true, conflicts_with = "access_token_file")]
    pub access_token: Option<String>,
    /// File holding the access token (first line) [env: LEOTEST_ACCESS_TOKEN_FILE]
    #[arg(long, global = true)]
    pub access_token_file: Option<PathBuf>,
    /// JWT access token; used instead of --userid/--access-token when given
    #[arg(
        long,
        global = true,
        env = "LEOTEST_JWT_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub jwt_access_token: Option<String>,
    /// Certificates (PEM) trusted for the orchestrator: its own certificate (pinned, like the
    /// original's certs/server.crt) or the CA that issued it [default: the profile's copy, else
    /// certs/server.crt]
    #[arg(long, global = true, env = "LEOTEST_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Name the orchestrator's certificate must carry [default: the profile's, else the host
    /// given, with the original's `localhost` accepted as well]
    #[arg(long, global = true, env = "LEOTEST_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// Seconds to wait for each request (orchestrator call, or kernel-service reply) [default: 5]
    #[arg(long, global = true, env = "LEOTEST_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
    /// Extra attempts after a transient failure (unreachable, timeout); never after auth
    /// errors [default: 2]
    #[arg(long, global = true, env = "LEOTEST_RETRIES", value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: Option<u32>,
    /// Saved context to use (see `leotest login`) [default: the current one]
    #[arg(long, global = true, env = "LEOTEST_CONTEXT")]
    pub context: Option<String>,
    /// Output format
    #[arg(long, short = 'o', global = true, env = "LEOTEST_OUTPUT", value_enum)]
    pub output: Option<Format>,
    /// Same as --output=json
    #[arg(long, global = true)]
    pub json: bool,
    /// Only these fields, comma-separated (`id,nodeid,start_date`; nested as `params.deploy`);
    /// for lists, the fields of each item
    #[arg(long, global = true, env = "LEOTEST_FIELDS", value_delimiter = ',')]
    pub fields: Option<Vec<String>>,
    /// Time zone for printed times: UTC (default), local, or an offset such as +05:30
    #[arg(long, global = true, env = "LEOTEST_TZ", value_parser = TimeZone::parse)]
    pub tz: Option<TimeZone>,
}

/// The options in effect after flags, environment, profile and defaults are combined.
#[derive(Debug)]
pub(crate) struct Global {
    pub grpc_host: String,
    pub grpc_port: u16,
    pub userid: String,
    credentials: Option<Credentials>,
    pub ca_cert: PathBuf,
    pub tls_domain: String,
    /// Accepted as well when the certificate lacks `tls_domain` (no --tls-domain given).
    pub fallback_domain: Option<String>,
    pub timeout: u64,
    pub retries: u32,
    /// Name of the context in effect, when a profile has it.
    pub context: Option<String>,
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The first line of a token file, bounded, without surrounding whitespace.
pub(super) fn read_token_file(path: &std::path::Path) -> Result<String, CliError> {
    let read_err = |source| CliError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_TOKEN_FILE {
        return Err(CliError::Usage(format!(
            "{} is larger than {MAX_TOKEN_FILE} bytes: not a token file",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no token (empty first line)",
            path.display()
        )));
    }
    Ok(token)
}

impl GlobalArgs {
    /// The output settings alone (for errors printed before anything else is resolved).
    pub(crate) fn output(&self) -> Output {
        let format = if self.json {
            Format::Json
        } else {
            self.output.unwrap_or(Format::Table)
        };
        Output::new(format, self.fields.clone(), self.tz.unwrap_or_default())
    }

    /// The saved context these options select, and its name, if any profile exists.
    pub(crate) fn profile_context(&self) -> Result<(Profile, String, Option<Context>), CliError> {
        if let Some(name) = &self.context {
            profile::check_name(name)?;
        }
        let (profile, _) = Profile::load()?;
        let name = profile.context_name(self.context.as_deref());
        let ctx = profile.contexts.get(&name).cloned();
        if ctx.is_none() && self.context.is_some() {
            return Err(CliError::Usage(format!(
                "no saved context {name:?}: `leotest login --context {name}` first \
                 (`leotest context list` shows the saved ones)"
            )));
        }
        Ok((profile, name, ctx))
    }

    /// Combines flags and environment (already merged by clap), the profile and the defaults.
    pub(crate) fn resolve(&self) -> Result<Global, CliError> {
        let (_, name, ctx) = self.profile_context()?;
        self.resolve_with(ctx.as_ref(), ctx.as_ref().map(|_| name))
    }

    /// [`GlobalArgs::resolve`] with the given saved context (`login` passes the one it writes).
    pub(crate) fn resolve_with(
        &self,
        ctx: Option<&Context>,
        context: Option<String>,
    ) -> Result<Global, CliError> {
        let empty = Context::default();
        let ctx = ctx.unwrap_or(&empty);
        let grpc_host = self
            .grpc_host
            .clone()
            .or_else(|| ctx.grpc_host.clone())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let grpc_port = self.grpc_port.or(ctx.grpc_port).unwrap_or(DEFAULT_PORT);
        let userid = self
            .userid
            .clone()
            .or_else(|| ctx.userid.clone())
            .unwrap_or_else(|| DEFAULT_USERID.to_string());
        // Token sources, strongest first: flags, environment, profile. A JWT at some level
        // beats a static token at a weaker one.
        let flag_token = match (&self.access_token, &self.access_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(read_token_file(path)?),
            (None, None) => None,
        };
        let env_token = match env_nonempty("LEOTEST_ACCESS_TOKEN") {
            Some(t) => Some(t),
            None => match env_nonempty("LEOTEST_ACCESS_TOKEN_FILE") {
                Some(p) => Some(read_token_file(std::path::Path::new(&p))?),
                None => None,
            },
        };
        let jwt = self.jwt_access_token.clone().filter(|j| !j.is_empty());
        let static_token = |t: String| Credentials::Static {
            userid: userid.clone(),
            access_token: t,
        };
        let credentials = if let Some(t) = flag_token.filter(|t| !t.is_empty()) {
            Some(static_token(t))
        } else if let Some(j) = jwt {
            Some(Credentials::Jwt(j))
        } else if let Some(t) = env_token {
            Some(static_token(t))
        } else if let Some(j) = ctx.jwt_access_token.clone() {
            Some(Credentials::Jwt(j))
        } else {
            ctx.access_token.clone().map(static_token)
        };
        let ca_cert = self
            .ca_cert
            .clone()
            .or_else(|| ctx.ca_cert.clone())
            .unwrap_or_else(|| PathBuf::from(leotest_client::DEFAULT_CA_CERT));
        // The name checked: the one asked for, else the profile's, else the host itself with
        // the original's fixed `localhost` as a fallback (so every certificate the original
        // accepted still is). An unspecified address (0.0.0.0) names nothing: `localhost`.
        let (tls_domain, fallback_domain) = match (&self.tls_domain, &ctx.tls_domain) {
            (Some(d), _) | (None, Some(d)) => (d.clone(), None),
            (None, None) => {
                let host = grpc_host.trim_start_matches('[').trim_end_matches(']');
                let unspecified = host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_unspecified());
                if unspecified || host.eq_ignore_ascii_case(leotest_client::DEFAULT_DOMAIN) {
                    (leotest_client::DEFAULT_DOMAIN.to_string(), None)
                } else {
                    (
                        host.to_string(),
                        Some(leotest_client::DEFAULT_DOMAIN.to_string()),
                    )
                }
            }
        };
        Ok(Global {
            grpc_host,
            grpc_port,
            userid,
            credentials,
            ca_cert,
            tls_domain,
            fallback_domain,
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
            retries: self.retries.unwrap_or(DEFAULT_RETRIES),
            context,
        })
    }
}

impl Global {
    /// `host:port` as dialled (IPv6 literals bracketed).
    pub(crate) fn address(&self) -> String {
        if self.grpc_host.contains(':') && !self.grpc_host.starts_with('[') {
            format!("[{}]:{}", self.grpc_host, self.grpc_port)
        } else {
            format!("{}:{}", self.grpc_host, self.grpc_port)
        }
    }

    /// The credentials in effect (`None`: no token anywhere).
    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Uses `token` as the static access token of `userid`.
    pub(crate) fn set_token(&mut self, token: String) {
        self.credentials = Some(Credentials::Static {
            userid: self.userid.clone(),
            access_token: token,
        });
    }

    /// The client configuration these options describe.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, CliError> {
        let credentials =
            self.credentials
                .clone()
                .ok_or(CliError::Client(ClientError::InvalidCredentials(
                    "no access token given",
                )))?;
        Ok(ClientConfig {
            endpoint: self.address(),
            ca_cert: Some(self.ca_cert.clone()),
            domain: self.tls_domain.clone(),
            fallback_domain: self.fallback_domain.clone(),
            credentials,
            timeout: Duration::from_secs(self.timeout),
            retry: RetryPolicy {
                max_attempts: self.retries.saturating_add(1),
                max_elapsed: Duration::from_secs(self.timeout.saturating_mul(4).max(10)),
                initial_backoff: Duration::from_millis(200),
            },
        })
    }

    pub(crate) async fn connect(&self) -> Result<LeotestClient, CliError> {
        Ok(LeotestClient::connect(self.client_config()?).await?)
    }
}
