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
    #[error("device {0} is listed twice: each device gets one slot")]
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
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => {
                let device = Device::new_cuda(ordinal).map_err(|source| DeviceError::Open { spec: self, source })?;
                // TF32 tensor cores for f32 GEMMs, which candle's convolutions
                // without cuDNN are: PyTorch allows TF32 for its cuDNN
                // convolutions by default, and its throughput is the
                // benchmark. NVIDIA_TF32_OVERRIDE=0 still forbids it.
                candle_core::cuda::set_gemm_reduced_precision_f32(true);
                Ok(device)
            }
        }
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
    fn parses_device_lists() {
        assert_eq!(parse_list("cuda:0, cuda:1").unwrap(), vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]);
        assert!(parse_list("cuda:0,cuda:0").unwrap_err().to_string().contains("twice"));
        assert!(parse_list("").unwrap_err().to_string().contains("no devices"));
        assert!(!parse_list("all").unwrap().is_empty());
    }
}
