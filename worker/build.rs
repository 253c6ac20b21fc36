//! Builds with the `cudnn` feature compile the CUDA kernels of
//! `src/kernels/cuda/*.cu` to PTX with nvcc, so that a kernel that does
//! not compile fails the build rather than a GPU job (the driver loads the
//! PTX at run time, JIT-compiling it for the GPU it finds). The CPU build
//! needs no CUDA toolkit: this does nothing there.

use std::path::{Path, PathBuf};
use std::process::Command;

const KERNELS: &[&str] = &["batch_norm", "dropout", "sgd"];

/// What each result's provenance names of this build: the git commit
/// ("-dirty" with uncommitted changes to tracked files, "unknown" outside
/// a git checkout) and the candle-core version in Cargo.lock. The script
/// reruns when HEAD moves or the index changes (a commit, a checkout, a
/// `git add`); an edit that touches neither keeps the last build's mark
/// until the next build that reruns it.
fn provenance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_none_or(|s| !s.is_empty());
            if dirty { format!("{commit}-dirty") } else { commit }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo::rustc-env=WIDESWEEP_GIT_COMMIT={commit}");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "index"] {
            println!("cargo::rerun-if-changed={dir}/{file}");
        }
    }
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let candle = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"candle-core\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo::rustc-env=WIDESWEEP_CANDLE_VERSION={candle}");
    println!("cargo::rerun-if-changed=../Cargo.lock");
}

fn main() {
    provenance();
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
