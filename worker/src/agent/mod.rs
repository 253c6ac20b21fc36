//! The worker agent: registers with a coordinator and runs one slot per
//! device, each an independent lease loop (see [`slot`]). Datasets are read
//! once per process and shared by the slots.
//!
//! Faults it rides out: a coordinator that is down or restarting (every
//! call retries with backoff), a lease taken away (the job is dropped at
//! once), a shutdown request (each busy slot finishes its epoch, uploads a
//! checkpoint and hands the job back without spending an attempt).

mod checkpoints;
mod command;
mod datasets;
mod job;
mod leave;
pub mod memory;
pub mod provenance;
mod quarantine;
mod rpc;
mod shutdown;
mod slot;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use widesweep_proto::client::{ClientOptions, ConnectError};
use widesweep_proto::v1 as pb;

pub use command::{EXIT_DO_NOT_RETRY, PROTOCOL};
pub use job::{JobPlan, JobPlanError};
pub use leave::{Deadline, LeavePolicy};
pub use quarantine::{EXIT_QUARANTINED, Quarantine};
pub use rpc::CallError;
pub use shutdown::{Shutdown, ShutdownSignal, channel as shutdown_channel};
pub use slot::{JobOutcome, SlotError, SlotEvent};

use crate::data::LoadOptions;
use crate::device::{DeviceError, DeviceSpec};
use crate::selfcheck::SelfCheckMode;

/// How many slots (lease loops) each device runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotsPerDevice {
    Fixed(usize),
    /// On a GPU, up to [`memory::AUTO_MAX_SLOTS`], each job admitted while
    /// its estimated memory fits in the device's free memory beside the
    /// jobs it already runs; on the CPU one (its kernels use every core).
    Auto,
}

impl std::str::FromStr for SlotsPerDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            n => match n.parse::<usize>() {
                Ok(n @ 1..=16) => Ok(Self::Fixed(n)),
                _ => Err(format!("invalid slots per device {s:?}: use a number from 1 to 16, or auto")),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub coordinator: ClientOptions,
    /// The devices to train on.
    pub devices: Vec<DeviceSpec>,
    /// Slots per device: each an independent lease loop.
    pub slots_per_device: SlotsPerDevice,
    /// The memory `auto` shares among a device's jobs, instead of the free
    /// memory nvidia-smi reports (a MIG slice, a GPU shared with others);
    /// given for the CPU, `auto` runs several slots there too.
    pub device_memory_bytes: Option<u64>,
    pub data_dir: PathBuf,
    /// Where checkpoints are written before upload and after download.
    pub scratch_dir: PathBuf,
    pub load: LoadOptions,
    pub hostname: String,
    /// When the slots stop leasing on their own (idle, allocation ending).
    pub leave: LeavePolicy,
    /// Whether each slot checks its kernels against the CPU reference
    /// before they train (see [`crate::selfcheck`]).
    pub self_check: SelfCheckMode,
    /// When a slot failing with its machine's errors stops leasing.
    pub quarantine: Quarantine,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("the coordinator at {url} refused this worker: {message}")]
    Refused { url: String, message: String },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("cannot create the scratch directory {path}: {source}")]
    Scratch { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Slot(#[from] SlotError),
    #[error(
        "a slot kept failing with this machine's errors and was quarantined; the worker leaves so that the \
         allocation can move (see its log for the errors)"
    )]
    Quarantined,
}

/// Runs the worker until `shutdown` is requested and every slot has
/// handed back or finished its job. Returns early only when the
/// coordinator refuses the worker (e.g. a wrong token).
pub async fn run(
    config: AgentConfig,
    shutdown: Shutdown,
    events: Option<UnboundedSender<SlotEvent>>,
) -> Result<(), AgentError> {
    let url = config.coordinator.url.clone();
    let client = config.coordinator.connect_lazy()?.workers;
    let devices = open_slots(&config.devices, config.slots_per_device, config.device_memory_bytes)?;
    std::fs::create_dir_all(&config.scratch_dir)
        .map_err(|source| AgentError::Scratch { path: config.scratch_dir.clone(), source })?;

    let request = pb::RegisterWorkerRequest {
        hostname: config.hostname.clone(),
        devices: config.devices.iter().map(ToString::to_string).collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let registered = rpc::call("register", &rpc::Patience::Idle(shutdown.clone()), || {
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.register_worker(request).await }
    })
    .await;
    let registered = match registered {
        Ok(registered) => registered,
        Err(CallError::GaveUp(_)) => return Ok(()),
        Err(CallError::Refused(status)) => {
            let message = match status.code() {
                tonic::Code::Unauthenticated => format!(
                    "{} (check WIDESWEEP_TOKEN or --token-file against the coordinator's worker token)",
                    status.message()
                ),
                tonic::Code::PermissionDenied => {
                    format!("{} (a worker needs the coordinator's worker token)", status.message())
                }
                _ => status.message().to_string(),
            };
            tracing::error!(%url, %message, "the coordinator refused this worker");
            return Err(AgentError::Refused { url, message });
        }
        Err(CallError::LeaseGone(message)) => return Err(AgentError::Refused { url, message }),
    };
    // A third of the lease: two heartbeats may be lost before it expires.
    let heartbeat_every = Duration::from_millis((registered.lease_seconds as u64 * 1000 / 3).max(200));
    tracing::info!(worker_id = registered.worker_id, %url, devices = ?request.devices, "registered with the coordinator");

    let datasets = Arc::new(datasets::DatasetCache::new(config.data_dir.clone(), config.load));
    let mut slots = JoinSet::new();
    let quarantined = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (index, (device_spec, device, budget)) in devices.into_iter().enumerate() {
        let slot = slot::Slot {
            index,
            device_spec,
            device,
            budget,
            worker_id: registered.worker_id,
            worker_secret: registered.worker_secret.clone(),
            client: client.clone(),
            datasets: Arc::clone(&datasets),
            scratch: config.scratch_dir.join(format!("slot-{index}")),
            heartbeat_every,
            shutdown: shutdown.clone(),
            events: events.clone(),
            leave: config.leave,
            last_epoch_ms: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            self_check: config.self_check,
            kernels: Default::default(),
            stop_leasing: Default::default(),
            refused: Default::default(),
            quarantine: config.quarantine,
            quarantined: Arc::clone(&quarantined),
            machine: Arc::new(provenance::Machine::of(&config.hostname, device_spec)),
        };
        std::fs::create_dir_all(&slot.scratch)
            .map_err(|source| AgentError::Scratch { path: slot.scratch.clone(), source })?;
        slots.spawn(slot.run());
    }
    while let Some(joined) = slots.join_next().await {
        if let Err(error) = joined.expect("a slot panicked") {
            slots.abort_all();
            return Err(error.into());
        }
    }
    if quarantined.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(AgentError::Quarantined);
    }
    Ok(())
}

/// Every slot's device, opened (a stream of its own for each extra slot
/// on a GPU), with its device's memory budget under `auto`.
type OpenedSlot = (DeviceSpec, candle_core::Device, Option<Arc<memory::DeviceBudget>>);

fn open_slots(
    devices: &[DeviceSpec],
    slots: SlotsPerDevice,
    memory: Option<u64>,
) -> Result<Vec<OpenedSlot>, DeviceError> {
    let mut opened = Vec::new();
    for &spec in devices {
        let (count, budget) = match (slots, spec) {
            (SlotsPerDevice::Fixed(n), _) => (n, None),
            (SlotsPerDevice::Auto, DeviceSpec::Cpu) if memory.is_none() => (1, None),
            (SlotsPerDevice::Auto, _) => match memory.or_else(|| spec.free_memory_bytes()) {
                Some(free) => {
                    let budget = memory::DeviceBudget::new(free);
                    tracing::info!(device = %spec, free_mib = free >> 20, budget_mib = budget.capacity() >> 20,
                        slots = memory::AUTO_MAX_SLOTS, "slots share the device's memory");
                    (memory::AUTO_MAX_SLOTS, Some(budget))
                }
                None => {
                    tracing::warn!(
                        device = %spec,
                        "nvidia-smi does not say how much memory is free (--device-memory-mib does): one slot"
                    );
                    (1, None)
                }
            },
        };
        for k in 0..count {
            opened.push((spec, spec.open_for_slot(k)?, budget.clone()));
        }
    }
    Ok(opened)
}

/// This machine's name, for the coordinator's worker table.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}
