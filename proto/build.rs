//! Compiles `leotest.proto` with protox (a pure-Rust protobuf compiler), so that
//! building needs no `protoc` on the machine, and keeps the encoded descriptor
//! for gRPC reflection and the contract test.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=leotest.proto");
    let fds = protox::compile(["leotest.proto"], ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("leotest_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
