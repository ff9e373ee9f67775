//! `leotest`: command-line client of the LeoTest orchestrator and kernel service.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
