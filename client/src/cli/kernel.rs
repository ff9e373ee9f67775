//! `leotest kernel ...`: commands for the kernel service on TCP 9000.

use std::time::Duration;

use clap::{Args, Subcommand};
use leotest_client::kernel::{KernelClient, KernelCommand, DEFAULT_PORT};

use super::{CliError, CliResult, Global, Outcome, Output};

#[derive(Debug, Args)]
#[command(after_help = "\
Each command opens one connection, sends one line (cca.check, cca.change ALG,
bbr2.param.set NAME VALUE, job.start CMD ARGS..., job.status ID, job.stop ID,
job.watch ID, job.list) and prints the reply. A reply of `access_denied` exits 4.
`job watch` exits with the job's outcome: 0 COMPLETED, 1 FAILED or STOPPED (or an unknown
job); the final state is printed on stderr.")]
pub(crate) struct KernelArgs {
    /// Kernel service host
    #[arg(long, env = "LEOTEST_KERNEL_HOST", default_value = "kernel")]
    pub kernel_host: String,
    /// Kernel service port
    #[arg(long, env = "LEOTEST_KERNEL_PORT", default_value_t = DEFAULT_PORT)]
    pub kernel_port: u16,
    /// Use the kernel service's unix socket at this path instead of TCP (the caller is then
    /// identified by its process, not its address)
    #[arg(long, env = "LEOTEST_KERNEL_SOCKET")]
    pub kernel_socket: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: KernelCmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KernelCmd {
    /// Show the TCP congestion control algorithm in use
    Check,
    /// Congestion control algorithm
    Cca {
        #[command(subcommand)]
        command: CcaCmd,
    },
    /// BBRv2 module parameters
    Bbr2 {
        #[command(subcommand)]
        command: Bbr2Cmd,
    },
    /// Sandboxed jobs run by the kernel service
    Job {
        #[command(subcommand)]
        command: KernelJobCmd,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CcaCmd {
    /// Switch to algorithm ALG (one listed in tcp_available_congestion_control)
    Set { alg: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Bbr2Cmd {
    /// Set parameter NAME to VALUE
    Set { name: String, value: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KernelJobCmd {
    /// Start CMD with ARGS (arguments must not contain spaces)
    Start {
        /// Command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
    },
    /// Show a job's status
    Status { id: String },
    /// Stop a job
    Stop { id: String },
    /// Stream a job's output until it ends
    Watch { id: String },
    /// List your jobs
    List,
}

impl KernelCmd {
    pub(crate) fn to_command(&self) -> KernelCommand {
        match self {
            KernelCmd::Check => KernelCommand::CcaCheck,
            KernelCmd::Cca {
                command: CcaCmd::Set { alg },
            } => KernelCommand::CcaChange(alg.clone()),
            KernelCmd::Bbr2 {
                command: Bbr2Cmd::Set { name, value },
            } => KernelCommand::Bbr2Set {
                name: name.clone(),
                value: value.clone(),
            },
            KernelCmd::Job { command } => match command {
                KernelJobCmd::Start { argv } => KernelCommand::JobStart(argv.clone()),
                KernelJobCmd::Status { id } => KernelCommand::JobStatus(id.clone()),
                KernelJobCmd::Stop { id } => KernelCommand::JobStop(id.clone()),
                KernelJobCmd::Watch { id } => KernelCommand::JobWatch(id.clone()),
                KernelJobCmd::List => KernelCommand::JobList,
            },
        }
    }
}

pub(super) async fn run(global: &Global, out: &Output, args: KernelArgs) -> CliResult {
    let command = args.command.to_command();
    let timeout = Duration::from_secs(global.timeout);
    let client = match args.kernel_socket {
        Some(path) => KernelClient::unix(path, timeout),
        None => KernelClient::new(&args.kernel_host, args.kernel_port, timeout),
    };
    let reply = if command.is_streaming() && !out.structured() {
        // Bytes go to the terminal as they arrive.
        let mut stdout = tokio::io::stdout();
        client.send(&command, &mut stdout).await?
    } else {
        let (reply, text) = client.request(&command).await?;
        if !reply.access_denied {
            out.text("reply", &text);
        }
        reply
    };
    if reply.access_denied {
        return Err(CliError::AccessDenied);
    }
    if let KernelCommand::JobWatch(id) = &command {
        // The stream carries only the job's output: ask how it ended.
        let (_, status) = client
            .request(&KernelCommand::JobStatus(id.clone()))
            .await?;
        return watch_outcome(id, &status);
    }
    Ok(Outcome::Ok)
}

/// The exit outcome of a watched job from its `job.status` line (`id=… state=… exit_code=…`).
pub(super) fn watch_outcome(id: &str, status: &str) -> CliResult {
    let word = |key: &str| {
        status
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or("")
            .to_string()
    };
    let state = word("state=");
    let exit = word("exit_code=");
    match state.as_str() {
        "COMPLETED" => {
            eprintln!("kernel job {id}: COMPLETED exit_code={exit}");
            Ok(Outcome::Ok)
        }
        "FAILED" | "STOPPED" => Err(CliError::Refused(format!(
            "kernel job {id} ended {state} (exit_code={exit})"
        ))),
        "RUNNING" => Err(CliError::Other(format!(
            "the watch of kernel job {id} ended while the job is still RUNNING"
        ))),
        _ => Err(CliError::NotFound(format!(
            "kernel job {id}: {}",
            status.trim()
        ))),
    }
}
