//! `leotest-link` binary: the emulated uplink of a testbed site (logic in the library).

fn main() -> std::process::ExitCode {
    leotest_bench::link::main()
}
