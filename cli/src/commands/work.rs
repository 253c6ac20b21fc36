//! `widesweep work`: a worker process, one slot per device, against a
//! coordinator anywhere on the network.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use clap::Args;
use widesweep_worker::agent::{
    self, AgentConfig, AgentError, Deadline, EXIT_QUARANTINED, LeavePolicy, Quarantine, SlotsPerDevice,
};
use widesweep_worker::data::LoadOptions;
use widesweep_worker::device::{self, DeviceError, DeviceSpec};
use widesweep_worker::selfcheck::SelfCheckMode;

use crate::connection::CoordinatorArgs;
use crate::signals;

/// A comma-separated device list: `cpu`, `cuda:0,cuda:1` or `all`.
#[derive(Clone, Debug)]
pub struct DeviceList(pub Vec<DeviceSpec>);

impl FromStr for DeviceList {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        device::parse_list(s).map(DeviceList)
    }
}

/// How a worker trains: shared by `work` and `run`.
#[derive(Args, Clone, Debug)]
pub struct SlotArgs {
    /// Devices to train on: cpu, cuda:0,cuda:1, or all (every GPU, or the
    /// CPU on a machine without one).
    #[arg(long, default_value = "all")]
    pub devices: DeviceList,
    /// Jobs each device trains at once, each in a lease loop of its own (on
    /// a GPU, on a CUDA stream of its own): small WRNs leave most of an
    /// H100 idle. `auto`: up to 8 per GPU, each job admitted while its
    /// estimated memory fits in the GPU's free memory (nvidia-smi) beside
    /// the jobs it runs; one on the CPU, whose kernels use every core.
    #[arg(long, default_value = "1", value_name = "N|auto")]
    pub slots_per_gpu: SlotsPerDevice,
    /// With --slots-per-gpu auto: the memory (MiB) each device's jobs share,
    /// instead of the free memory nvidia-smi reports (a MIG slice, a GPU
    /// shared with others). Given for the CPU, auto runs several slots there.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub device_memory_mib: Option<u64>,
    /// Where `widesweep data fetch` put the datasets.
    #[arg(long, env = "WIDESWEEP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Directory for checkpoints on their way to and from the coordinator
    /// (default: a folder in the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Accept dataset files whose record counts differ from the official
    /// release (synthetic or trimmed datasets).
    #[arg(long)]
    pub unofficial_dataset_sizes: bool,
    /// Before a slot first trains, its kernels compute a tiny network's
    /// forward and backward pass and are compared with the CPU reference
    /// kernels in f64; on a mismatch the slot falls back to candle's
    /// generic operators (checked the same way). `off` trusts the kernels.
    #[arg(long, value_enum, default_value = "on")]
    pub self_check: SelfCheck,
    /// Quarantine a slot after this machine's errors (data missing or
    /// corrupt, out of memory, CUDA, a full disk) on this many different
    /// jobs in a row: it stops leasing and waits before trying again, or,
    /// with --exit-when-idle or under Slurm, the worker exits with status 75
    /// so the allocation moves. 0: never.
    #[arg(long, value_name = "JOBS", default_value_t = 3)]
    pub quarantine_after: u32,
    /// A quarantined slot's first wait; each next one doubles, up to 15 min.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub quarantine_seconds: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SelfCheck {
    On,
    Off,
    /// The fallback's test: the fastest kernels' result is perturbed, as a
    /// broken kernel's would be.
    #[value(hide = true)]
    FailFastest,
}

impl SlotArgs {
    pub fn agent_config(&self, coordinator: widesweep_proto::client::ClientOptions) -> AgentConfig {
        let scratch_dir = self
            .scratch_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("widesweep-worker-{}", std::process::id())));
        AgentConfig {
            coordinator,
            devices: self.devices.0.clone(),
            slots_per_device: self.slots_per_gpu,
            device_memory_bytes: self.device_memory_mib.map(|mib| mib << 20),
            data_dir: self.data_dir.clone(),
            scratch_dir,
            load: LoadOptions { official_sizes: !self.unofficial_dataset_sizes },
            hostname: agent::hostname(),
            leave: LeavePolicy::default(),
            self_check: match self.self_check {
                SelfCheck::On => SelfCheckMode::On,
                SelfCheck::Off => SelfCheckMode::Off,
                SelfCheck::FailFastest => SelfCheckMode::FailFastest,
            },
            quarantine: Quarantine {
                after: self.quarantine_after,
                first: Duration::from_secs(self.quarantine_seconds),
                longest: Duration::from_secs(15 * 60).max(Duration::from_secs(self.quarantine_seconds)),
            },
        }
    }
}

#[derive(Args, Debug)]
pub struct WorkArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Exit 0 once a slot has found no job to lease for this many seconds
    /// (every slot, for the process): a cluster allocation ends with the work.
    #[arg(long, value_name = "SECONDS")]
    pub exit_when_idle: Option<u64>,
    /// When the allocation ends: seconds since the Unix epoch, or a time from
    /// now (90m, 2h). Before it, slots lease no job whose next epoch could
    /// not finish and checkpoint, and hand back the ones they hold. Inside a
    /// Slurm job the job's time limit is used when this is not given.
    #[arg(long, value_name = "TIME")]
    pub deadline: Option<String>,
}

pub async fn run(args: WorkArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.slots.agent_config(args.coordinator.options()?);
    let now = SystemTime::now();
    let deadline = match &args.deadline {
        Some(text) => Some(Deadline::parse(text, now).map_err(|e| anyhow::anyhow!("--deadline: {e}"))?),
        None => Deadline::from_slurm(now),
    };
    if let Some(Deadline(at)) = deadline {
        let left = at.duration_since(now).unwrap_or_default().as_secs();
        tracing::info!(seconds_left = left, "the allocation has a deadline: jobs are handed back before it");
    }
    config.leave = LeavePolicy { when_idle: args.exit_when_idle.map(Duration::from_secs), deadline };
    let scratch = config.scratch_dir.clone();
    let (signal, shutdown) = agent::shutdown_channel();
    tokio::spawn(signals::graceful_then_immediate(signal, "busy slots checkpoint and hand their jobs back"));
    tracing::info!(coordinator = %config.coordinator.url, devices = ?config.devices, "worker starting");
    let result = agent::run(config, shutdown, None).await;
    if args.slots.scratch_dir.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    match result {
        Err(error @ AgentError::Quarantined) => {
            eprintln!("widesweep work: {error}");
            Ok(ExitCode::from(EXIT_QUARANTINED))
        }
        other => {
            other?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
