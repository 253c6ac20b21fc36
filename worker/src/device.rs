//! The compute device a run trains on: `cpu` or `cuda:N`.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device {0:?}: use cpu or cuda:N (e.g. cuda:0)")]
    Parse(String),
    #[error("device {0} is listed twice: list each device once (--slots-per-gpu N runs several jobs on one)")]
    Duplicate(DeviceSpec),
    #[error("no devices given: use cpu, cuda:0,cuda:1 or all")]
    Empty,
    #[error("cannot open {spec}")]
    Open { spec: DeviceSpec, source: candle_core::Error },
}

impl DeviceSpec {
    /// Opens the device. On a build without the `cuda` feature, candle
    /// reports that CUDA support is not compiled in.
    pub fn open(self) -> Result<Device, DeviceError> {
        self.open_for_slot(0)
    }

    /// Opens the device for the `k`-th slot on it. On CUDA every slot after
    /// the first gets a stream of its own, so that the jobs sharing a GPU
    /// overlap instead of queueing on one stream.
    pub fn open_for_slot(self, k: usize) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => {
                let device = if k == 0 { Device::new_cuda(ordinal) } else { Device::new_cuda_with_stream(ordinal) };
                let device = device.map_err(|source| DeviceError::Open { spec: self, source })?;
                // TF32 tensor cores for f32 GEMMs, which candle's convolutions
                // without cuDNN are: PyTorch allows TF32 for its cuDNN
                // convolutions by default, and its throughput is the
                // benchmark. NVIDIA_TF32_OVERRIDE=0 still forbids it.
                candle_core::cuda::set_gemm_reduced_precision_f32(true);
                #[cfg(feature = "cuda")]
                keep_freed_memory(&device);
                Ok(device)
            }
        }
    }

    /// A CUDA device's free memory as nvidia-smi reports it (no CUDA build
    /// needed); `None` for the CPU or when nvidia-smi cannot tell.
    pub fn free_memory_bytes(self) -> Option<u64> {
        let DeviceSpec::Cuda(ordinal) = self else { return None };
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let id = smi_id(visible.as_deref(), ordinal);
        let out = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", &id])
            .output()
            .ok()
            .filter(|out| out.status.success())?;
        String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().ok().map(|mib| mib << 20)
    }

    /// What kind of device this is, as the coordinator learns rates by:
    /// the GPU's model, or the CPU's model and the threads it trains with.
    /// Best effort: `cpu` or `cuda` alone when the system does not say.
    pub fn kind(self) -> String {
        match self {
            DeviceSpec::Cpu => {
                let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| cpu_model(&info));
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                match model {
                    Some(model) => format!("cpu: {model}, {threads} threads"),
                    None => format!("cpu, {threads} threads"),
                }
            }
            // nvidia-smi rather than the CUDA driver: it needs no CUDA
            // build, and a node's GPUs are almost always of one model.
            DeviceSpec::Cuda(ordinal) => std::process::Command::new("nvidia-smi")
                .args(["--query-gpu=name", "--format=csv,noheader"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| gpu_model(&String::from_utf8_lossy(&out.stdout), ordinal))
                .unwrap_or_else(|| "cuda".to_string()),
        }
    }
}

/// Makes the device's memory pool keep what a training step frees for the
/// next step. candle allocates every tensor from the stream-ordered pool
/// (cuMemAllocAsync); by default the pool hands its free memory back to
/// the driver at every synchronisation (each loss read by the host), and
/// the next step allocates it all again. PyTorch's caching allocator keeps
/// it the same way. Best effort: a driver that refuses leaves the default.
#[cfg(feature = "cuda")]
fn keep_freed_memory(device: &Device) {
    use candle_core::cuda::cudarc::driver::{result, sys};
    let Device::Cuda(cuda) = device else { return };
    let stream = cuda.cuda_stream();
    let mut threshold = u64::MAX;
    // SAFETY: the device comes from an open context; the release threshold
    // attribute is a u64.
    let set = unsafe {
        result::device::get_default_mem_pool(stream.context().cu_device()).and_then(|pool| {
            result::mem_pool::set_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            )
        })
    };
    if let Err(e) = set {
        tracing::warn!("cannot make the CUDA memory pool keep freed memory ({e}): each step may allocate afresh");
    }
}

/// nvidia-smi's id (`-i`) of CUDA ordinal `ordinal`: nvidia-smi ignores
/// CUDA_VISIBLE_DEVICES (which Slurm and Kubernetes set), so the ordinal
/// is looked up in it; its entries are indices or UUIDs, both of which
/// `-i` takes.
fn smi_id(visible: Option<&str>, ordinal: usize) -> String {
    visible
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.split(',').nth(ordinal).map(|id| id.trim().to_string()))
        .unwrap_or_else(|| ordinal.to_string())
}

/// The `model name` of /proc/cpuinfo.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.trim_start().strip_prefix(':'))
        .map(|name| name.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|name| !name.is_empty())
}

/// The GPU of `ordinal` from nvidia-smi's list of names: the node's one
/// model when all agree (CUDA's ordinals need not follow nvidia-smi's
/// order), else the name at that position.
fn gpu_model(names: &str, ordinal: usize) -> Option<String> {
    let names: Vec<&str> = names.lines().map(str::trim).filter(|n| !n.is_empty()).collect();
    match names.first() {
        Some(first) if names.iter().all(|n| n == first) => Some(first.to_string()),
        _ => names.get(ordinal).map(|n| n.to_string()),
    }
}

/// Parses a device list: `cpu`, `cuda:0,cuda:1`, or `all` (every CUDA
/// device this build can open, or the CPU when there is none).
pub fn parse_list(text: &str) -> Result<Vec<DeviceSpec>, DeviceError> {
    if text.trim() == "all" {
        return Ok(all());
    }
    let mut devices = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let device: DeviceSpec = part.parse()?;
        if devices.contains(&device) {
            return Err(DeviceError::Duplicate(device));
        }
        devices.push(device);
    }
    if devices.is_empty() {
        return Err(DeviceError::Empty);
    }
    Ok(devices)
}

/// Every CUDA device that opens, in ordinal order; the CPU without any.
pub fn all() -> Vec<DeviceSpec> {
    let cuda: Vec<DeviceSpec> = if cfg!(feature = "cuda") {
        (0..64).map(DeviceSpec::Cuda).take_while(|d| d.open().is_ok()).collect()
    } else {
        Vec::new()
    };
    if cuda.is_empty() { vec![DeviceSpec::Cpu] } else { cuda }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_cuda_ordinals() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert!("gpu".parse::<DeviceSpec>().unwrap_err().to_string().contains("cuda:N"));
    }

    #[test]
    fn device_kinds_name_the_model() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC  7B13 64-Core Processor\nflags\t\t: fpu\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13 64-Core Processor"));
        assert_eq!(cpu_model("processor\t: 0\n"), None);
        let same = "NVIDIA H100 80GB HBM3\nNVIDIA H100 80GB HBM3\n";
        assert_eq!(gpu_model(same, 1).as_deref(), Some("NVIDIA H100 80GB HBM3"));
        let mixed = "NVIDIA H100 80GB HBM3\nNVIDIA A100-SXM4-40GB\n";
        assert_eq!(gpu_model(mixed, 1).as_deref(), Some("NVIDIA A100-SXM4-40GB"));
        assert_eq!(gpu_model("", 0), None);
        assert!(DeviceSpec::Cpu.kind().starts_with("cpu"));
    }

    #[test]
    fn nvidia_smi_ids_follow_cuda_visible_devices() {
        assert_eq!(smi_id(None, 1), "1");
        assert_eq!(smi_id(Some(""), 1), "1");
        assert_eq!(smi_id(Some("3,5"), 1), "5");
        assert_eq!(smi_id(Some("GPU-8f2e, GPU-11aa"), 0), "GPU-8f2e");
        assert_eq!(DeviceSpec::Cpu.free_memory_bytes(), None);
    }

    #[test]
    fn parses_device_lists() {
        assert_eq!(parse_list("cuda:0, cuda:1").unwrap(), vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]);
        assert!(parse_list("cuda:0,cuda:0").unwrap_err().to_string().contains("twice"));
        assert!(parse_list("").unwrap_err().to_string().contains("no devices"));
        assert!(!parse_list("all").unwrap().is_empty());
    }
}
