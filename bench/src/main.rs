//! `leotest-bench` binary: parses the subcommand and runs it (logic lives in the library).

fn main() -> std::process::ExitCode {
    leotest_bench::cli::main()
}
