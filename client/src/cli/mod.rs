//! Command-line parsing, dispatch and exit codes of `leotest`.

mod complete;
mod config;
mod cron;
mod global;
mod job;
mod kernel;
mod login;
mod node;
mod output;
mod profile;
mod render;
mod run;
mod services;
mod task;
mod times;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use leotest_client::kernel::KernelError;
use leotest_client::ClientError;

pub(crate) use global::{Global, GlobalArgs};
pub(crate) use output::Output;

/// Exit codes, documented in `--help`.
const EXIT_CODES: &str = "\
Exit codes (every command):
  0  done
  1  not found, or refused by a rule (state FAILED: conflict, duplicate id, no free slot;
     a kernel job that ended FAILED or STOPPED)
  2  usage error (bad or missing options, a schedule that cannot work)
  3  orchestrator or kernel service unreachable, TLS failure, or no reply in time
  4  authentication or permission failure (bad token, permission denied, access_denied)
  5  any other error (server error, unreadable local file, unsupported action)

Settings come from flags, else LEOTEST_* environment variables, else the saved profile
(`leotest login`), else the defaults.";

/// Command-line interface of the LeoTest testbed (orchestrator and kernel service).
#[derive(Debug, Parser)]
#[command(name = "leotest", version, after_help = EXIT_CODES, arg_required_else_help = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Save the server, CA, user and token as a named context (checked against the server)
    Login(login::LoginArgs),
    /// Show who the saved or given credentials authenticate as
    Whoami,
    /// Remove the token from a saved context
    Logout(login::LogoutArgs),
    /// Saved contexts: list, use, delete
    Context(login::ContextArgs),
    /// Global configuration (datastore, weather API)
    Config(config::ConfigArgs),
    /// Users: register, get, modify, delete
    User(user::UserArgs),
    /// Jobs: schedule, plan (dry run), get, delete, reschedule
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
    /// Print ids known to the orchestrator, one a line (used by the bash completion script)
    #[command(name = "__complete-ids", hide = true)]
    CompleteIds {
        #[arg(value_enum)]
        kind: complete::IdKind,
    },
    /// Print a shell completion script (bash also completes --jobid/--nodeid values from the
    /// orchestrator)
    Completions {
        /// Shell to generate for
        shell: clap_complete::Shell,
    },
}

/// Why a command did not succeed; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("kernel service: access_denied")]
    AccessDenied,
    /// The record asked for does not exist (or is not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The orchestrator refused the request for lack of permission (in its reply).
    #[error("{0}")]
    Denied(String),
    /// A rule refused the request (already reported), e.g. a kernel job that failed.
    #[error("{0}")]
    Refused(String),
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
pub(crate) enum Outcome {
    Ok,
    /// Refused by a rule or nothing found (exit 1); the reply was printed.
    Failed,
    /// Refused for lack of permission (exit 4).
    Denied,
}

pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_UNREACHABLE: u8 = 3;
pub(crate) const EXIT_AUTH: u8 = 4;
pub(crate) const EXIT_OTHER: u8 = 5;

impl CliError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Client(e) => match e {
                ClientError::Unavailable(_) | ClientError::Timeout(_) | ClientError::Tls(_) => {
                    EXIT_UNREACHABLE
                }
                ClientError::Unauthenticated(_)
                | ClientError::PermissionDenied(_)
                | ClientError::InvalidCredentials(_) => EXIT_AUTH,
                ClientError::InvalidEndpoint { .. } => EXIT_USAGE,
                _ => EXIT_OTHER,
            },
            CliError::Kernel(e) => match e {
                KernelError::Connect { .. } | KernelError::Timeout { .. } => EXIT_UNREACHABLE,
                KernelError::Line(_) => EXIT_USAGE,
                KernelError::Io(_) => EXIT_OTHER,
            },
            CliError::AccessDenied | CliError::Denied(_) => EXIT_AUTH,
            CliError::NotFound(_) | CliError::Refused(_) => EXIT_FAILED,
            CliError::ReadFile { .. } | CliError::Unsupported(_) | CliError::Other(_) => EXIT_OTHER,
        }
    }

    /// A hint for the errors users hit most, naming the options that fix them.
    fn hint(&self, global: Option<&Global>) -> Option<String> {
        let ca = global.map_or_else(
            || leotest_client::DEFAULT_CA_CERT.to_string(),
            |g| g.ca_cert.display().to_string(),
        );
        match self {
            CliError::Client(ClientError::Unavailable(_)) => Some(
                "is the orchestrator running there? Set --grpc-host/--grpc-port \
                 (or LEOTEST_GRPC_HOST/LEOTEST_GRPC_PORT, or `leotest login`)"
                    .into(),
            ),
            CliError::Client(ClientError::Tls(e)) => {
                let name = global.map_or("localhost", |g| g.tls_domain.as_str());
                Some(if e.detail.contains("not valid for name") {
                    format!(
                        "the certificate does not carry the name {name:?}: pass the name it \
                         carries with --tls-domain (or LEOTEST_TLS_DOMAIN)"
                    )
                } else if e.detail.contains("invalid peer certificate") {
                    format!(
                        "the server's certificate is not trusted by --ca-cert {ca}: pass the \
                         orchestrator's certificate or its CA with --ca-cert"
                    )
                } else {
                    "is that port the orchestrator's (TLS) port?".into()
                })
            }
            CliError::Client(ClientError::Unauthenticated(_)) => Some(
                "check --userid and the token (--access-token-file, LEOTEST_ACCESS_TOKEN, \
                 --jwt-access-token or `leotest login`)"
                    .into(),
            ),
            CliError::Client(ClientError::InvalidCredentials(_)) => Some(
                "log in with `leotest login`, or pass --access-token-file (or set \
                 LEOTEST_ACCESS_TOKEN), or --jwt-access-token"
                    .into(),
            ),
            CliError::Client(ClientError::CaCert { .. }) => Some(
                "pass the orchestrator's certificate with --ca-cert (or LEOTEST_CA_CERT), or \
                 `leotest login --ca-cert FILE` once"
                    .into(),
            ),
            _ => None,
        }
    }
}

pub(crate) type CliResult = Result<Outcome, CliError>;

/// A request filter (a proto3 `optional` field) from an option: set only when the user gave a
/// non-empty value, as the original client's `if nodeid: message.nodeid = nodeid`.
pub(crate) fn given(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// Reads a small local file (configs); bounded so a wrong path cannot eat memory.
pub(crate) fn read_small_file(path: &std::path::Path) -> Result<String, CliError> {
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

async fn dispatch(cli: Cli, resolved: &mut Option<Global>) -> CliResult {
    let out = cli.global.output();
    // Commands that manage the profile resolve the options themselves.
    let own_resolution = matches!(
        cli.command,
        Command::Login(_) | Command::Logout(_) | Command::Context(_) | Command::Completions { .. }
    );
    if !own_resolution {
        *resolved = Some(cli.global.resolve()?);
    }
    let Cli {
        global: args,
        command,
    } = cli;
    let resolved = &*resolved;
    let g = || {
        resolved
            .as_ref()
            .ok_or_else(|| CliError::Other("options were not resolved".into()))
    };
    match command {
        Command::Login(a) => login::login(&args, &out, a).await,
        Command::Logout(a) => login::logout(&args, &out, a),
        Command::Context(a) => login::context(&args, &out, a),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "leotest",
                &mut std::io::stdout(),
            );
            if shell == clap_complete::Shell::Bash {
                print!("{}", complete::BASH_IDS);
            }
            Ok(Outcome::Ok)
        }
        Command::CompleteIds { kind } => complete::ids(g()?, kind).await,
        Command::Whoami => login::whoami(g()?, &out).await,
        Command::Config(a) => config::run(g()?, &out, a).await,
        Command::User(a) => user::run(g()?, &out, a).await,
        Command::Job(a) => job::run(g()?, &out, a).await,
        Command::Run(a) => run::run(g()?, &out, a).await,
        Command::Node(a) => node::run(g()?, &out, a).await,
        Command::Services(a) => services::run(g()?, &out, a).await,
        Command::Task(a) => task::run(g()?, &out, a).await,
        Command::Kernel(a) => kernel::run(g()?, &out, a).await,
    }
}

/// Entry point of the binary.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEOTEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let out = cli.global.output();
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
    let mut resolved = None;
    match runtime.block_on(dispatch(cli, &mut resolved)) {
        Ok(Outcome::Ok) => ExitCode::from(EXIT_OK),
        Ok(Outcome::Failed) => ExitCode::from(EXIT_FAILED),
        Ok(Outcome::Denied) => ExitCode::from(EXIT_AUTH),
        Err(err) => {
            let code = err.exit_code();
            let hint = err.hint(resolved.as_ref());
            if out.structured() {
                let mut value = serde_json::json!({ "error": err.to_string(), "exit_code": code });
                if let Some(h) = &hint {
                    value["hint"] = serde_json::Value::String(h.clone());
                }
                // Errors ignore --fields: a script must always see them whole.
                let _ = Output::new(out.format, None, out.tz).value(&value);
            } else {
                eprintln!("error: {err}");
                if let Some(hint) = hint {
                    eprintln!("hint: {hint}");
                }
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests;
