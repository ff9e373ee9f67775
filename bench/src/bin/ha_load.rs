//! `leotest-ha-load` binary: load and failover check for the `ha` testbed (logic in the library).

fn main() -> std::process::ExitCode {
    leotest_bench::ha::main()
}
