//! `leotest-sites-probe` binary: steady kernel decisions for scripts/e2e-sites.sh.

fn main() -> std::process::ExitCode {
    leotest_bench::sites::main()
}
