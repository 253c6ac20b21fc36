//! Compiles widesweep/v1/*.proto with protox, a protobuf compiler written in
//! Rust, so that building widesweep needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["widesweep/v1/sweep.proto", "widesweep/v1/worker.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
