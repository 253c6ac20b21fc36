//! What the worker records of each result's making (the coordinator keeps
//! it with the attempt and the job): the build, the engine and its
//! version, the kernels the self-check chose, the device and its driver,
//! the random number scheme, the dataset files' hash and the host.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use widesweep_arch::{CommandEngine, Precision};
use widesweep_proto::v1 as pb;

use crate::device::DeviceSpec;
use crate::wrn::layers::Layout;

/// The commit this binary was built from (build.rs): "-dirty" when the
/// tree had uncommitted changes, "unknown" when built outside git.
pub const GIT_COMMIT: &str = env!("WIDESWEEP_GIT_COMMIT");

/// The candle-core version in Cargo.lock when this binary was built.
pub const CANDLE_VERSION: &str = env!("WIDESWEEP_CANDLE_VERSION");

/// What a slot's machine and device are, read once per slot.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub hostname: String,
    pub device: String,
    pub driver_version: String,
    pub cuda_version: String,
}

impl Machine {
    pub fn of(hostname: &str, device: DeviceSpec) -> Self {
        let (driver_version, cuda_version) = match device {
            DeviceSpec::Cpu => (String::new(), String::new()),
            DeviceSpec::Cuda(_) => nvidia_versions(),
        };
        Self { hostname: hostname.to_string(), device: device.kind(), driver_version, cuda_version }
    }

    /// The record of a job the built-in WRN trains with `layout` kernels.
    pub fn candle(
        &self,
        precision: Precision,
        layout: Layout,
        on_cuda: bool,
        dataset_sha256: String,
    ) -> pb::Provenance {
        pb::Provenance {
            engine: "candle".into(),
            engine_version: CANDLE_VERSION.into(),
            kernels: kernel_path(precision, layout, on_cuda),
            rng: crate::rng::SCHEME.into(),
            dataset_sha256,
            ..self.base()
        }
    }

    /// The record of a job a command engine trains: its version is its
    /// script's hash (the first argument naming a file), its kernels and
    /// random numbers are its own.
    pub fn command(&self, name: &str, engine: &CommandEngine, dataset_sha256: String) -> pb::Provenance {
        let cwd = engine.cwd.as_deref().map(PathBuf::from).unwrap_or_default();
        let script = engine.command.iter().skip(1).map(|arg| cwd.join(arg)).find(|path| path.is_file());
        let engine_version = match script.as_deref().map(|path| (path, file_sha256(path))) {
            Some((path, Ok(hash))) => format!("{} sha256:{hash}", path.display()),
            _ => engine.command.join(" "),
        };
        pb::Provenance {
            engine: name.into(),
            engine_version,
            kernels: "command (its own)".into(),
            rng: "command (its own)".into(),
            dataset_sha256,
            ..self.base()
        }
    }

    fn base(&self) -> pb::Provenance {
        pb::Provenance {
            widesweep_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: GIT_COMMIT.into(),
            device: self.device.clone(),
            driver_version: self.driver_version.clone(),
            cuda_version: self.cuda_version.clone(),
            hostname: self.hostname.clone(),
            ..pb::Provenance::default()
        }
    }
}

/// The kernel path's class first (what tables compare), then its detail.
fn kernel_path(precision: Precision, layout: Layout, on_cuda: bool) -> String {
    let precision = match precision {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16",
    };
    match (layout, on_cuda) {
        (Layout::Nhwc, true) => format!("cudnn (nhwc, {precision}, fused batch norm)"),
        (Layout::Nhwc, false) => {
            let mut detail = vec!["nhwc", precision];
            if crate::kernels::winograd::enabled() {
                detail.push("winograd");
            }
            if crate::wrn::layers::avx512() {
                detail.push("avx-512");
            }
            format!("cpu ({})", detail.join(", "))
        }
        (Layout::Nchw, true) => format!("generic (candle, cuda, nchw, {precision})"),
        (Layout::Nchw, false) => format!("generic (candle, cpu, nchw, {precision})"),
    }
}

/// The driver and CUDA versions as `nvidia-smi` reports them; empty when
/// it cannot say.
fn nvidia_versions() -> (String, String) {
    let run = |args: &[&str]| {
        std::process::Command::new("nvidia-smi")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let driver = run(&["--query-gpu=driver_version", "--format=csv,noheader"])
        .and_then(|text| text.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_default();
    // The banner's "CUDA Version: 12.4": the highest the driver supports.
    let cuda = run(&[])
        .and_then(|text| {
            let rest = text.split("CUDA Version:").nth(1)?;
            rest.split_whitespace().next().map(|v| v.trim_end_matches('|').to_string())
        })
        .unwrap_or_default();
    (driver, cuda)
}

/// SHA-256 of a file's bytes, hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 over the dataset's files in their fixed order (name, then
/// bytes, of each), hex: two machines whose copies differ in one byte
/// record different hashes.
pub fn files_sha256(dir: &Path, files: &[&str]) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    for name in files {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        let mut file = std::fs::File::open(dir.join(name))?;
        std::io::copy(&mut file, &mut hasher)?;
    }
    Ok(hex::encode(hasher.finalize()))
}
