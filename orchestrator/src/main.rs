//! `leotest-orchestrator` binary: parse flags, set up logging, run the server or a subcommand.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use leotest_orchestrator::cli::{Cli, Command};
use leotest_orchestrator::config::LogFormat;
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.server.log_format);
    let result = match cli.command {
        Some(Command::GenCert(args)) => {
            leotest_orchestrator::tls::write_dev_pair(&args.cert, &args.key, &args.sans, args.force)
                .map(|_| {
                    println!(
                        "wrote {} and {} (key mode 0600)",
                        args.cert.display(),
                        args.key.display()
                    );
                })
                .map_err(|e| e.to_string())
        }
        Some(Command::Jwt(args)) => leotest_orchestrator::jwtcmd::make(&cli.server, &args)
            .map(|token| println!("{token}"))
            .map_err(|e| e.to_string()),
        Some(Command::Tokens(args)) => leotest_orchestrator::tokens::admin::run(&cli.server, args)
            .await
            .map_err(|e| e.to_string()),
        None => leotest_orchestrator::server::run(cli.server, shutdown_signal())
            .await
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "leotest-orchestrator failed");
            eprintln!("leotest-orchestrator: {e}");
            ExitCode::FAILURE
        }
    }
}
