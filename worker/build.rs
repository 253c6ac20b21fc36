//! Builds with the `cudnn` feature compile the CUDA kernels of
//! `src/kernels/cuda/*.cu` to PTX with nvcc, so that a kernel that does
//! not compile fails the build rather than a GPU job (the driver loads the
//! PTX at run time, JIT-compiling it for the GPU it finds). The CPU build
//! needs no CUDA toolkit: this does nothing there.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &["batch_norm", "dropout", "sgd"];

fn main() {
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=CUDA_ROOT");
    if std::env::var_os("CARGO_FEATURE_CUDNN").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The lowest architecture asked for: PTX runs on that and every later GPU.
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "70".to_string());
    let nvcc = std::env::var_os("CUDA_ROOT")
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    // Included by the kernels: loads and stores of each element type.
    println!("cargo::rerun-if-changed=src/kernels/cuda/elements.cuh");
    for name in KERNELS {
        let source = format!("src/kernels/cuda/{name}.cu");
        println!("cargo::rerun-if-changed={source}");
        let ptx = out.join(format!("{name}.ptx"));
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "--std=c++17", &format!("-arch=compute_{cap}"), "-o"])
            .arg(&ptx)
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {} to compile {source} (set CUDA_ROOT): {e}", nvcc.display()));
        assert!(status.success(), "nvcc failed on {source} ({status})");
    }
}
