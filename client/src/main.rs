//! `leotest`: command-line client of the LeoTest orchestrator and kernel service.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
