//! Command-line parsing, dispatch and exit codes of `leotest`.

mod config;
mod job;
mod kernel;
mod node;
mod output;
mod run;
mod services;
mod task;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use leotest_client::kernel::KernelError;
use leotest_client::{ClientConfig, ClientError, Credentials, LeotestClient, RetryPolicy};

pub use output::Output;

/// Exit codes, documented in `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the orchestrator answered FAILED / not found
  2  usage error (bad or missing options)
  3  orchestrator or kernel service unreachable, or no reply in time
  4  authentication or permission failure (bad token, access_denied)
  5  any other error (server error, unreadable local file, unsupported action)";

/// Command-line interface of the LeoTest testbed (orchestrator and kernel service).
#[derive(Debug, Parser)]
#[command(name = "leotest", version, after_help = EXIT_CODES, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every subcommand (the original's top-level options plus a few new ones).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Orchestrator host
    #[arg(
        long,
        global = true,
        env = "LEOTEST_GRPC_HOST",
        default_value = "0.0.0.0"
    )]
    pub grpc_host: String,
    /// Orchestrator port
    #[arg(
        long,
        global = true,
        env = "LEOTEST_GRPC_PORT",
        default_value_t = 50051
    )]
    pub grpc_port: u16,
    /// LeoTest user id to authenticate as
    #[arg(long, global = true, env = "LEOTEST_USERID", default_value = "admin")]
    pub userid: String,
    /// Access token of --userid (prefer the environment variable over the command line)
    #[arg(
        long,
        global = true,
        env = "LEOTEST_ACCESS_TOKEN",
        hide_env_values = true,
        hide_default_value = true,
        default_value = ""
    )]
    pub access_token: String,
    /// JWT access token; used instead of --userid/--access-token when given
    #[arg(
        long,
        global = true,
        env = "LEOTEST_JWT_ACCESS_TOKEN",
        hide_env_values = true,
        hide_default_value = true,
        default_value = ""
    )]
    pub jwt_access_token: String,
    /// Certificates (PEM) trusted for the orchestrator: its own certificate (pinned, like the
    /// original's certs/server.crt) or the CA that issued it
    #[arg(long, global = true, env = "LEOTEST_CA_CERT", default_value = leotest_client::DEFAULT_CA_CERT)]
    pub ca_cert: PathBuf,
    /// Name the orchestrator's certificate must carry
    #[arg(long, global = true, env = "LEOTEST_TLS_DOMAIN", default_value = leotest_client::DEFAULT_DOMAIN)]
    pub tls_domain: String,
    /// Seconds to wait for each request (orchestrator call, or kernel-service reply)
    #[arg(long, global = true, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Extra attempts after a transient failure (unreachable, timeout); never after auth errors
    #[arg(long, global = true, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,
    /// Print machine-readable JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Global configuration (datastore, weather API)
    Config(config::ConfigArgs),
    /// Users: register, get, modify, delete
    User(user::UserArgs),
    /// Jobs: schedule, get, delete, reschedule
    Job(job::JobArgs),
    /// Runs of jobs: get, get-scheduled
    Run(run::RunArgs),
    /// Nodes: register, get, update, delete, heartbeat, scavenger mode
    Node(node::NodeArgs),
    /// Node services; `services --name kernel --action verify` checks kernel access
    Services(services::ServicesArgs),
    /// Tasks for nodes: schedule, get, update
    Task(task::TaskArgs),
    /// Talk to the kernel service on TCP 9000 (from inside an experiment container)
    Kernel(kernel::KernelArgs),
    /// Print a shell completion script
    Completions {
        /// Shell to generate for
        shell: clap_complete::Shell,
    },
}

/// Why a command did not succeed; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("kernel service: access_denied")]
    AccessDenied,
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Other(String),
}

/// Exit code of a run that reached the server and got an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
}

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_AUTH: u8 = 4;
pub const EXIT_OTHER: u8 = 5;

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Client(e) => match e {
                ClientError::Unavailable(_) | ClientError::Timeout(_) => EXIT_UNREACHABLE,
                ClientError::Unauthenticated(_)
                | ClientError::PermissionDenied(_)
                | ClientError::InvalidCredentials(_) => EXIT_AUTH,
                ClientError::InvalidEndpoint { .. } => EXIT_USAGE,
                _ => EXIT_OTHER,
            },
            CliError::Kernel(e) => match e {
                KernelError::Connect { .. } | KernelError::Timeout { .. } => EXIT_UNREACHABLE,
                KernelError::InvalidArgument(_)
                | KernelError::MissingCommand
                | KernelError::Refused(_)
                | KernelError::TooLong => EXIT_USAGE,
                KernelError::Io(_) => EXIT_OTHER,
            },
            CliError::AccessDenied => EXIT_AUTH,
            CliError::ReadFile { .. } | CliError::Unsupported(_) | CliError::Other(_) => EXIT_OTHER,
        }
    }

    /// A hint for the errors users hit most.
    fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::Client(ClientError::Unavailable(_)) => Some(
                "is the orchestrator running at --grpc-host/--grpc-port, and does --ca-cert match its certificate?",
            ),
            CliError::Client(ClientError::Unauthenticated(_)) => {
                Some("check --userid and --access-token (or LEOTEST_ACCESS_TOKEN / --jwt-access-token)")
            }
            CliError::Client(ClientError::InvalidCredentials(_)) => {
                Some("pass --access-token (or set LEOTEST_ACCESS_TOKEN), or --jwt-access-token")
            }
            _ => None,
        }
    }
}

pub type CliResult = Result<Outcome, CliError>;

/// A request filter (a proto3 `optional` field) from an option: set only when the user gave a
/// non-empty value, as the original client's `if nodeid: message.nodeid = nodeid`.
pub fn given(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// Reads a small local file (configs); bounded so a wrong path cannot eat memory.
pub fn read_small_file(path: &std::path::Path) -> Result<String, CliError> {
    const MAX: u64 = 4 * 1024 * 1024;
    let read_err = |source| CliError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX {
        return Err(CliError::Other(format!(
            "{} is larger than {MAX} bytes",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(read_err)
}

impl Global {
    /// The client configuration these options describe.
    pub fn client_config(&self) -> Result<ClientConfig, CliError> {
        let credentials = if !self.jwt_access_token.is_empty() {
            Credentials::Jwt(self.jwt_access_token.clone())
        } else if !self.access_token.is_empty() {
            Credentials::Static {
                userid: self.userid.clone(),
                access_token: self.access_token.clone(),
            }
        } else {
            return Err(CliError::Client(ClientError::InvalidCredentials(
                "no access token given",
            )));
        };
        Ok(ClientConfig {
            endpoint: format!("{}:{}", self.grpc_host, self.grpc_port),
            ca_cert: Some(self.ca_cert.clone()),
            domain: self.tls_domain.clone(),
            credentials,
            timeout: Duration::from_secs(self.timeout),
            retry: RetryPolicy {
                max_attempts: self.retries.saturating_add(1),
                max_elapsed: Duration::from_secs(self.timeout.saturating_mul(4).max(10)),
                initial_backoff: Duration::from_millis(200),
            },
        })
    }

    pub async fn connect(&self) -> Result<LeotestClient, CliError> {
        Ok(LeotestClient::connect(self.client_config()?).await?)
    }
}

async fn dispatch(cli: Cli) -> CliResult {
    let out = Output::new(cli.global.json);
    match cli.command {
        Command::Config(args) => config::run(&cli.global, &out, args).await,
        Command::User(args) => user::run(&cli.global, &out, args).await,
        Command::Job(args) => job::run(&cli.global, &out, args).await,
        Command::Run(args) => run::run(&cli.global, &out, args).await,
        Command::Node(args) => node::run(&cli.global, &out, args).await,
        Command::Services(args) => services::run(&cli.global, &out, args).await,
        Command::Task(args) => task::run(&cli.global, &out, args).await,
        Command::Kernel(args) => kernel::run(&cli.global, &out, args).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "leotest",
                &mut std::io::stdout(),
            );
            Ok(Outcome::Ok)
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEOTEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(Outcome::Ok) => ExitCode::from(EXIT_OK),
        Ok(Outcome::Failed) => ExitCode::from(EXIT_FAILED),
        Err(err) => {
            let code = err.exit_code();
            if json {
                let value = serde_json::json!({ "error": err.to_string(), "exit_code": code });
                println!("{value}");
            } else {
                eprintln!("error: {err}");
                if let Some(hint) = err.hint() {
                    eprintln!("hint: {hint}");
                }
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests;
