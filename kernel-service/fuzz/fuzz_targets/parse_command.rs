//! Fuzzes the kernel service's command-line parser with arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = leotest_kernel_service::protocol::parse(data);
});
