//! Compiles widesweep/v1/*.proto with protox, a protobuf compiler written in
//! Rust, so that building widesweep needs no system `protoc`.

use sha2::{Digest, Sha256};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["widesweep/v1/sweep.proto", "widesweep/v1/worker.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    // The API's digest: a client generated from other files can tell.
    let mut digest = Sha256::new();
    for file in files {
        digest.update(std::fs::read(file)?);
    }
    println!("cargo:rustc-env=WIDESWEEP_PROTO_SHA256={}", hex::encode(digest.finalize()));
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
