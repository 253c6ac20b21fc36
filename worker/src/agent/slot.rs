//! One slot: a device and its lease loop. A slot leases a job, trains it on
//! a blocking thread, reports every epoch (which renews the lease),
//! heartbeats while an epoch is long, uploads checkpoints, and completes,
//! fails or hands back the job.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use candle_core::Device;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use tracing::Instrument;
use widesweep_arch::{JobConfig, Precision, widen};
use widesweep_proto::client::WorkerClient;
use widesweep_proto::v1 as pb;

use super::checkpoints::{self, TransferError};
use super::datasets::DatasetCache;
use super::job::JobPlan;
use super::leave::{Deadline, LeavePolicy};
use super::memory::{self, DeviceBudget, Refused};
use super::quarantine::{Quarantine, Streak, Verdict};
use super::rpc::{self, CallError, Patience};
use super::shutdown::Shutdown;
use crate::device::DeviceSpec;
use crate::selfcheck::{self, SelfCheckMode};
use crate::train::{EpochMetrics, EpochObserver, TrainError, Trainer};
use crate::wrn::ModelOptions;
use crate::wrn::layers::Layout;

/// What happened to one leased attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    Succeeded {
        test_error: f64,
        epochs: usize,
    },
    /// Training failed; `requeued` when the coordinator will retry it;
    /// `machine` when the error was this machine's.
    Failed {
        error: String,
        requeued: bool,
        machine: bool,
    },
    /// Handed back at shutdown after `epochs_done` epochs, without
    /// spending an attempt.
    Released {
        epochs_done: usize,
    },
    /// The coordinator took the lease away (expired, cancelled).
    Dropped {
        reason: String,
    },
}

/// Progress of the slots, for a live display.
#[derive(Clone, Debug)]
pub enum SlotEvent {
    Started { slot: usize, job_id: i64, label: String, epochs: usize, resumed_after: usize },
    Epoch { slot: usize, job_id: i64, metrics: EpochMetrics },
    Finished { slot: usize, job_id: i64, label: String, outcome: JobOutcome },
}

pub(super) struct Slot {
    pub index: usize,
    pub device_spec: DeviceSpec,
    pub device: Device,
    /// The device's memory, shared with its other slots (`--slots-per-gpu auto`).
    pub budget: Option<Arc<DeviceBudget>>,
    pub worker_id: i64,
    /// The secret RegisterWorker gave this worker, sent with every lease.
    pub worker_secret: String,
    pub client: WorkerClient,
    pub datasets: Arc<DatasetCache>,
    pub scratch: PathBuf,
    pub heartbeat_every: Duration,
    pub shutdown: Shutdown,
    pub events: Option<UnboundedSender<SlotEvent>>,
    pub leave: LeavePolicy,
    /// The duration of this slot's last epoch in milliseconds (0: none yet),
    /// what the deadline budgets the next one by.
    pub last_epoch_ms: Arc<AtomicU64>,
    pub self_check: SelfCheckMode,
    /// The kernels each precision trains with on this slot, decided by the
    /// self-check before the first job of that precision (an error: none
    /// agrees with the CPU reference).
    pub kernels: std::sync::Mutex<HashMap<Precision, Result<Layout, String>>>,
    /// Set when a job came whose precision no kernel here computes right.
    pub stop_leasing: AtomicBool,
    /// Set when a leased job did not fit beside the device's running jobs:
    /// the slot leases again once one of them ends.
    pub refused: std::sync::Mutex<Option<Refused>>,
    /// When this slot stops leasing after its machine's errors.
    pub quarantine: Quarantine,
    /// Set (for the whole worker) when a slot left in quarantine.
    pub quarantined: Arc<AtomicBool>,
    /// The host and device (its kind read once, for every lease and each
    /// result's provenance).
    pub machine: Arc<super::provenance::Machine>,
}

/// Why the lease loop of a slot ended with an error.
#[derive(Debug, thiserror::Error)]
#[error("slot {slot} ({device}): {source}")]
pub struct SlotError {
    pub slot: usize,
    pub device: DeviceSpec,
    pub source: CallError,
}

impl Slot {
    pub(super) fn emit(&self, event: SlotEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// Leases and trains jobs until a shutdown is requested.
    pub async fn run(self) -> Result<(), SlotError> {
        let request = pb::LeaseJobRequest {
            worker_id: self.worker_id,
            worker_secret: self.worker_secret.clone(),
            device: self.device_spec.to_string(),
            device_kind: self.machine.device.clone(),
        };
        let idle = Patience::Idle(self.shutdown.clone());
        // When the previous job ended: the device idles from then until
        // the next job's first step.
        let mut last_end: Option<Instant> = None;
        // Most jobs train in f32: its kernels are checked before the first
        // lease, so a slot with none that works leases nothing. bf16's are
        // checked when its first job comes.
        let Ok(layout) = self.kernels(Precision::F32).await else {
            return Ok(());
        };
        let kernels = ModelOptions { layout, precision: Precision::F32 }.kernels(&self.device);
        tracing::info!(slot = self.index, device = %self.device_spec, %kernels, "slot started");
        let mut idle_since: Option<Instant> = None;
        let mut streak = Streak::default();
        while !self.shutdown.is_requested() && !self.stop_leasing.load(Ordering::Relaxed) {
            if let Some(deadline) = self.leave.deadline
                && !deadline.allows(last_epoch(&self.last_epoch_ms), SystemTime::now())
            {
                tracing::info!(
                    slot = self.index,
                    "the allocation ends before another epoch could finish and checkpoint: leasing no more jobs"
                );
                break;
            }
            let leased = rpc::call("lease a job", &idle, || {
                let (mut client, request) = (self.client.clone(), request.clone());
                async move { client.lease_job(request).await }
            })
            .await;
            let response = match leased {
                Ok(response) => response,
                Err(CallError::GaveUp(_)) => break,
                Err(source) => return Err(SlotError { slot: self.index, device: self.device_spec, source }),
            };
            match response.job {
                Some(job) => {
                    idle_since = None;
                    let timing = Timing { idle_since: last_end, leased: Instant::now() };
                    let job_id = job.job_id;
                    let machine_error = self.run_job(job, timing).await;
                    last_end = Some(Instant::now());
                    let verdict = streak.note(&self.quarantine, job_id, machine_error.as_deref());
                    if let Verdict::Quarantine { jobs, error, wait } = verdict {
                        match self.sit_out(jobs, &error, wait).await {
                            ControlFlow::Break(()) => break,
                            ControlFlow::Continue(()) => continue,
                        }
                    }
                    let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let (Some(refused), Some(budget)) = (refused, &self.budget) {
                        tokio::select! {
                            () = budget.released_since(refused) => {}
                            () = self.shutdown.requested() => {}
                        }
                    }
                }
                None => {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if let Some(limit) = self.leave.when_idle
                        && since.elapsed() >= limit
                    {
                        tracing::info!(slot = self.index, idle_s = limit.as_secs_f64(), "no job to lease: leaving");
                        break;
                    }
                    let wait = Duration::from_millis(response.retry_after_ms.max(50) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.requested() => {}
                    }
                }
            }
        }
        tracing::info!(slot = self.index, device = %self.device_spec, "slot stopped");
        Ok(())
    }

    /// Runs one leased job; returns its error when it failed with this
    /// machine's error.
    async fn run_job(&self, job: pb::Job, timing: Timing) -> Option<String> {
        let label =
            job.config.as_ref().and_then(|c| JobConfig::try_from(c).ok()).map(|c| c.label()).unwrap_or_default();
        // Instrumented, not entered: a guard held across an await would
        // label other tasks' lines with this job, and this job's without.
        let span = tracing::info_span!("job", slot = self.index, job_id = job.job_id, attempt = job.attempt);
        let outcome = async {
            let outcome = self.attempt(&job, timing).await;
            match &outcome {
                JobOutcome::Succeeded { test_error, .. } => tracing::info!(%label, test_error, "job succeeded"),
                JobOutcome::Failed { error, requeued, .. } => tracing::warn!(%label, %error, requeued, "job failed"),
                JobOutcome::Released { epochs_done } => tracing::info!(%label, epochs_done, "job handed back"),
                JobOutcome::Dropped { reason } => tracing::warn!(%label, %reason, "job dropped: the lease is gone"),
            }
            outcome
        }
        .instrument(span)
        .await;
        let machine_error = match &outcome {
            JobOutcome::Failed { error, machine: true, .. } => Some(error.clone()),
            _ => None,
        };
        self.emit(SlotEvent::Finished { slot: self.index, job_id: job.job_id, label, outcome });
        machine_error
    }

    async fn attempt(&self, job: &pb::Job, timing: Timing) -> JobOutcome {
        let patience = Patience::Job(self.shutdown.clone());
        if let Some(config) = job.config.as_ref().and_then(|c| JobConfig::try_from(c).ok())
            && !config.is_candle()
        {
            return self.attempt_command(job, config).await;
        }
        let plan = match JobPlan::from_job(job) {
            Ok(plan) => plan,
            // A config this worker cannot train: another worker of the same
            // version could not either.
            Err(error) => return self.fail(job, error.to_string(), false, pb::ErrorClass::Job).await,
        };
        let layout = match self.kernels(plan.spec.recipe.precision).await {
            Ok(layout) => layout,
            Err(error) => {
                // Not the job's fault: another slot may train it.
                self.stop_leasing.store(true, Ordering::Relaxed);
                tracing::warn!(%error, "handing the job back untrained");
                return self.release(job, 0, &patience).await;
            }
        };
        let _reservation = match &self.budget {
            None => None,
            Some(budget) => {
                let recipe = &plan.spec.recipe;
                let bytes = memory::job_memory_bytes(&plan.spec.config, widen(recipe.batch_size), recipe.precision);
                match budget.reserve(bytes) {
                    Ok(reservation) => Some(reservation),
                    Err(refused) => {
                        let (reserved, jobs) = budget.reserved();
                        tracing::info!(
                            needs_mib = bytes >> 20,
                            reserved_mib = reserved >> 20,
                            running = jobs,
                            budget_mib = budget.capacity() >> 20,
                            "no room for the job beside the device's running jobs: handing it back until one ends"
                        );
                        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(refused);
                        return self.release(job, 0, &patience).await;
                    }
                }
            }
        };
        let splits = match self.datasets.get(plan.spec.dataset).await {
            Ok(splits) => splits,
            // Missing or corrupt data is this machine's: another may have it.
            Err(error) => return self.fail(job, error_chain(&error), true, pb::ErrorClass::Machine).await,
        };
        let provenance = self.machine.candle(
            plan.spec.recipe.precision,
            layout,
            self.device.is_cuda(),
            self.datasets.sha256(plan.spec.dataset).await,
        );
        let data_ready = Instant::now();
        let checkpoint_path = self.scratch.join(format!("job-{}.ckpt", job.job_id));
        let resume_from = match self.fetch_checkpoint(job, &checkpoint_path, &patience).await {
            Ok(epoch) => epoch.map(widen),
            Err(dropped) => return dropped,
        };
        let checkpoint_ready = Instant::now();
        self.emit(SlotEvent::Started {
            slot: self.index,
            job_id: job.job_id,
            label: plan.label.clone(),
            epochs: plan.epochs(),
            resumed_after: resume_from.unwrap_or(0),
        });

        let abort = Arc::new(AtomicBool::new(false));
        let lease_lost = Arc::new(AtomicBool::new(false));
        let keep_alive = tokio::spawn(keep_alive(
            self.client.clone(),
            pb::HeartbeatRequest { job_id: job.job_id, attempt: job.attempt, lease_token: job.lease_token.clone() },
            self.heartbeat_every,
            Arc::clone(&abort),
            Arc::clone(&lease_lost),
        ));
        let run = AttemptRun {
            handle: Handle::current(),
            client: self.client.clone(),
            patience: patience.clone(),
            shutdown: self.shutdown.clone(),
            plan,
            checkpoint_path: checkpoint_path.clone(),
            uploaded_epoch: resume_from.unwrap_or(0),
            lease_lost: Arc::clone(&lease_lost),
            slot: self.index,
            events: self.events.clone(),
            timing: StartTiming { timing, data_ready, checkpoint_ready },
            deadline: self.leave.deadline,
            last_epoch_ms: Arc::clone(&self.last_epoch_ms),
            layout,
        };
        let (device, resume) = (self.device.clone(), resume_from.is_some());
        let span = tracing::Span::current();
        let end = tokio::task::spawn_blocking(move || span.in_scope(|| run.train(splits, device, resume, abort)))
            .await
            .unwrap_or_else(|panic| {
                TrainEnd::Error(format!("training panicked: {panic}"), true, pb::ErrorClass::Unknown)
            });
        keep_alive.abort();
        let _ = tokio::fs::remove_file(&checkpoint_path).await;
        if lease_lost.load(Ordering::Relaxed) {
            return JobOutcome::Dropped { reason: "the coordinator gave the lease to another attempt".into() };
        }
        match end {
            TrainEnd::Finished(history) => self.complete(job, &history, provenance).await,
            TrainEnd::Stopped { epochs_done } => self.release(job, epochs_done, &patience).await,
            TrainEnd::LeaseLost(reason) => JobOutcome::Dropped { reason },
            TrainEnd::Error(error, retryable, class) => self.fail(job, error, retryable, class).await,
        }
    }

    /// Downloads the job's latest checkpoint to `path`: its epoch, or `None`
    /// when there is none or it cannot be fetched (the run starts from
    /// scratch); `Err` with the outcome when the lease is gone.
    pub(super) async fn fetch_checkpoint(
        &self,
        job: &pb::Job,
        path: &Path,
        patience: &Patience,
    ) -> Result<Option<u32>, JobOutcome> {
        let Some(checkpoint) = &job.checkpoint else { return Ok(None) };
        let downloaded =
            checkpoints::download(&self.client, job.job_id, job.attempt, &job.lease_token, checkpoint, path, patience)
                .await;
        match downloaded {
            Ok(()) => Ok(Some(checkpoint.epoch)),
            Err(TransferError::Call(CallError::LeaseGone(reason))) => Err(JobOutcome::Dropped { reason }),
            Err(error) => {
                tracing::warn!(%error, "cannot fetch the job's checkpoint; training from the start");
                Ok(None)
            }
        }
    }

    /// Hands the job back without spending an attempt (a shutdown, or
    /// kernels this slot cannot trust).
    pub(super) async fn release(&self, job: &pb::Job, epochs_done: usize, patience: &Patience) -> JobOutcome {
        let request =
            pb::ReleaseJobRequest { job_id: job.job_id, attempt: job.attempt, lease_token: job.lease_token.clone() };
        match rpc::call("hand a job back", patience, || {
            let (mut client, request) = (self.client.clone(), request.clone());
            async move { client.release_job(request).await }
        })
        .await
        {
            Ok(_) => JobOutcome::Released { epochs_done },
            Err(error) => JobOutcome::Dropped { reason: format!("could not hand the job back: {error}") },
        }
    }

    /// The layout `precision` trains with here: the self-check's choice,
    /// made the first time (see [`crate::selfcheck`]).
    async fn kernels(&self, precision: Precision) -> Result<Layout, String> {
        if let Some(known) = self.kernels.lock().unwrap_or_else(|p| p.into_inner()).get(&precision) {
            return known.clone();
        }
        let (device, mode) = (self.device.clone(), self.self_check);
        let started = Instant::now();
        let chosen = tokio::task::spawn_blocking(move || selfcheck::choose(&device, precision, mode))
            .await
            .map_err(|panic| format!("the self-check panicked: {panic}"))
            .and_then(|chosen| chosen.map_err(|error| error.to_string()));
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (slot, device) = (self.index, self.device_spec);
        let decided = match chosen {
            Ok((options, reports)) => {
                for report in &reports {
                    let path = report.options.kernels(&self.device);
                    if report.passed() {
                        tracing::info!(slot, %device, ?precision, %path, %report, took_ms, "self-check passed");
                    } else {
                        tracing::warn!(slot, %device, ?precision, %path, %report, "self-check FAILED: these kernels do not compute what the CPU reference does");
                    }
                }
                if reports.len() > 1 {
                    tracing::warn!(slot, %device, ?precision, kernels = %options.kernels(&self.device), "falling back to candle's generic operators");
                }
                Ok(options.layout)
            }
            Err(error) => {
                tracing::error!(slot, %device, ?precision, %error, "this slot leases no more jobs");
                Err(error)
            }
        };
        self.kernels.lock().unwrap_or_else(|p| p.into_inner()).insert(precision, decided.clone());
        decided
    }

    pub(super) async fn complete(
        &self,
        job: &pb::Job,
        history: &[EpochMetrics],
        provenance: pb::Provenance,
    ) -> JobOutcome {
        let last = history.last().expect("a finished run has at least one epoch");
        let best = history.iter().map(|m| m.test_error).fold(f64::INFINITY, f64::min);
        let request = pb::CompleteJobRequest {
            job_id: job.job_id,
            attempt: job.attempt,
            final_metrics: Some(pb::EpochMetrics::from(last)),
            best_test_error: best,
            train_seconds: history.iter().map(|m| m.epoch_seconds).sum(),
            lease_token: job.lease_token.clone(),
            provenance: Some(provenance),
        };
        let patience = Patience::Job(self.shutdown.clone());
        match rpc::call("complete a job", &patience, || {
            let (mut client, request) = (self.client.clone(), request.clone());
            async move { client.complete_job(request).await }
        })
        .await
        {
            Ok(_) => JobOutcome::Succeeded { test_error: last.test_error, epochs: widen(last.epoch) },
            Err(error) => JobOutcome::Dropped { reason: error.to_string() },
        }
    }

    /// Reports the attempt failed: `retryable` false when no attempt can
    /// succeed; `class` says whose fault it is (the coordinator retries a
    /// machine's error elsewhere without spending the job's attempts).
    pub(super) async fn fail(
        &self,
        job: &pb::Job,
        error: String,
        retryable: bool,
        class: pb::ErrorClass,
    ) -> JobOutcome {
        let request = pb::FailJobRequest {
            job_id: job.job_id,
            attempt: job.attempt,
            error: error.clone(),
            retryable,
            lease_token: job.lease_token.clone(),
            error_class: class.into(),
        };
        let patience = Patience::Job(self.shutdown.clone());
        match rpc::call("report a failed job", &patience, || {
            let (mut client, request) = (self.client.clone(), request.clone());
            async move { client.fail_job(request).await }
        })
        .await
        {
            Ok(response) => {
                JobOutcome::Failed { error, requeued: response.requeued, machine: class == pb::ErrorClass::Machine }
            }
            Err(call) => JobOutcome::Dropped { reason: format!("{call} (while reporting: {error})") },
        }
    }
}

/// Heartbeats between epoch reports, so that an epoch longer than the
/// lease does not lose it. When the coordinator says the lease is gone,
/// training stops at the next step.
pub(super) async fn keep_alive(
    mut client: WorkerClient,
    request: pb::HeartbeatRequest,
    every: Duration,
    abort: Arc<AtomicBool>,
    lease_lost: Arc<AtomicBool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match client.heartbeat(request.clone()).await {
            Ok(_) => {}
            Err(status) if rpc::lease_gone(&status) => {
                tracing::warn!(message = status.message(), "heartbeat refused: the lease is gone; stopping the job");
                lease_lost.store(true, Ordering::Relaxed);
                abort.store(true, Ordering::Relaxed);
                return;
            }
            // The next tick tries again; epoch reports retry on their own.
            Err(status) => tracing::debug!(code = ?status.code(), message = status.message(), "heartbeat failed"),
        }
    }
}

/// When the slot's previous job ended and this one was leased.
#[derive(Clone, Copy, Debug)]
struct Timing {
    idle_since: Option<Instant>,
    leased: Instant,
}

/// The steps between leasing a job and its first training step.
#[derive(Clone, Copy, Debug)]
struct StartTiming {
    timing: Timing,
    data_ready: Instant,
    checkpoint_ready: Instant,
}

impl StartTiming {
    /// Logs where the time between two jobs of this slot went: the device
    /// does no work from the previous job's end to this job's first step.
    fn log(&self, built: Instant) {
        let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1000.0;
        let t = self.timing;
        tracing::info!(
            idle_ms = t.idle_since.map(|since| ms(since, built)),
            lease_ms = t.idle_since.map(|since| ms(since, t.leased)),
            dataset_ms = ms(t.leased, self.data_ready),
            checkpoint_ms = ms(self.data_ready, self.checkpoint_ready),
            build_ms = ms(self.checkpoint_ready, built),
            "first step of the job"
        );
    }
}

/// How the blocking part of an attempt ended.
enum TrainEnd {
    Finished(Vec<EpochMetrics>),
    /// Stopped early for a shutdown, after a checkpoint of `epochs_done`.
    Stopped {
        epochs_done: usize,
    },
    LeaseLost(String),
    /// The error text, whether another attempt could succeed, and whose
    /// fault it is.
    Error(String, bool, pb::ErrorClass),
}

/// The part of an attempt that runs on the training thread: the trainer
/// and the observer that talks to the coordinator after each epoch.
struct AttemptRun {
    handle: Handle,
    client: WorkerClient,
    patience: Patience,
    shutdown: Shutdown,
    plan: JobPlan,
    checkpoint_path: PathBuf,
    /// The newest epoch whose checkpoint the coordinator holds.
    uploaded_epoch: usize,
    lease_lost: Arc<AtomicBool>,
    slot: usize,
    events: Option<UnboundedSender<SlotEvent>>,
    timing: StartTiming,
    deadline: Option<Deadline>,
    last_epoch_ms: Arc<AtomicU64>,
    /// The kernels the self-check chose for the job's precision.
    layout: Layout,
}

impl AttemptRun {
    fn train(
        mut self,
        splits: Arc<crate::data::Splits>,
        device: Device,
        resume: bool,
        abort: Arc<AtomicBool>,
    ) -> TrainEnd {
        let (spec, layout) = (self.plan.spec.clone(), self.layout);
        let built = if resume {
            Trainer::resume_with_layout(spec.clone(), Arc::clone(&splits), &device, layout, &self.checkpoint_path)
                .or_else(|error| {
                    tracing::warn!(error = %error_chain(&error), "the job's checkpoint does not fit this cell; training from the start");
                    self.uploaded_epoch = 0;
                    Trainer::with_layout(spec, splits, &device, layout)
                })
        } else {
            Trainer::with_layout(spec, splits, &device, layout)
        };
        let mut trainer = match built {
            Ok(trainer) => trainer,
            Err(error) => return TrainEnd::Error(error_chain(&error), retryable(&error), class_of(&error)),
        };
        trainer.set_abort_flag(abort);
        self.timing.log(Instant::now());
        let epochs = self.plan.epochs();
        match trainer.run(&mut self) {
            Ok(()) if trainer.epochs_done() >= epochs => TrainEnd::Finished(trainer.history().to_vec()),
            Ok(()) if self.lease_lost.load(Ordering::Relaxed) => TrainEnd::LeaseLost("the lease is gone".into()),
            Ok(()) => TrainEnd::Stopped { epochs_done: trainer.epochs_done() },
            Err(TrainError::Aborted { .. }) => TrainEnd::LeaseLost("the lease is gone".into()),
            Err(error) => TrainEnd::Error(error_chain(&error), retryable(&error), class_of(&error)),
        }
    }

    fn call<T>(&self, future: impl Future<Output = Result<T, CallError>>) -> Result<T, CallError> {
        self.handle.block_on(future)
    }

    /// Saves and uploads a checkpoint of the run as it is now.
    fn checkpoint(&mut self, trainer: &Trainer) -> Result<ControlFlow<()>, TrainError> {
        let started = Instant::now();
        let epoch = trainer.epochs_done();
        trainer.save_checkpoint(&self.checkpoint_path)?;
        let (job_id, attempt) = (self.plan.job_id, self.plan.attempt);
        let uploaded = self.handle.block_on(checkpoints::upload(
            &self.client,
            job_id,
            attempt,
            &self.plan.lease_token,
            epoch as u32,
            &self.checkpoint_path,
            &self.patience,
        ));
        match uploaded {
            Ok(stored) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(epoch, bytes = stored.size_bytes, ms, "checkpoint saved and uploaded");
                self.uploaded_epoch = epoch;
            }
            Err(TransferError::Call(CallError::LeaseGone(reason))) => {
                tracing::warn!(%reason, "checkpoint refused");
                self.lease_lost.store(true, Ordering::Relaxed);
                return Ok(ControlFlow::Break(()));
            }
            // A lost checkpoint costs time if the job is interrupted, nothing else.
            Err(error) => tracing::warn!(%error, epoch, "checkpoint upload failed; training goes on"),
        }
        Ok(ControlFlow::Continue(()))
    }
}

impl EpochObserver for AttemptRun {
    fn epoch_finished(&mut self, metrics: &EpochMetrics, trainer: &Trainer) -> Result<ControlFlow<()>, TrainError> {
        let request = pb::ReportEpochRequest {
            job_id: self.plan.job_id,
            attempt: self.plan.attempt,
            metrics: Some(pb::EpochMetrics::from(metrics)),
            lease_token: self.plan.lease_token.clone(),
        };
        let reported = self.call(rpc::call("report an epoch", &self.patience, || {
            let (mut client, request) = (self.client.clone(), request.clone());
            async move { client.report_epoch(request).await }
        }));
        match reported {
            Ok(_) => {}
            Err(CallError::LeaseGone(reason)) => {
                tracing::warn!(%reason, epoch = metrics.epoch, "epoch report refused");
                self.lease_lost.store(true, Ordering::Relaxed);
                return Ok(ControlFlow::Break(()));
            }
            // Keep training: the next report or the completion says whether
            // the attempt still holds the lease.
            Err(error) => tracing::warn!(%error, epoch = metrics.epoch, "epoch report failed"),
        }
        if let Some(events) = &self.events {
            let _ = events.send(SlotEvent::Epoch { slot: self.slot, job_id: self.plan.job_id, metrics: *metrics });
        }
        let epoch = widen(metrics.epoch);
        let last = epoch >= self.plan.epochs();
        let every = self.plan.checkpoint_every;
        let took = Duration::from_secs_f64(metrics.epoch_seconds.max(0.0));
        self.last_epoch_ms.store(took.as_millis() as u64, Ordering::Relaxed);
        // The allocation ends before the next epoch could finish and be
        // checkpointed: checkpoint this one and hand the job back now.
        let out_of_time = self.deadline.is_some_and(|d| !d.allows(Some(took), SystemTime::now()));
        if out_of_time && !last {
            tracing::info!(epoch, "the allocation ends before the next epoch could finish: handing the job back");
        }
        let stopping = self.shutdown.is_requested() || out_of_time;
        let due = every > 0 && epoch.is_multiple_of(every);
        if !last && (due || stopping) && epoch > self.uploaded_epoch && self.checkpoint(trainer)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        if stopping && !last {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// The slot's last epoch duration, if it has trained one.
fn last_epoch(ms: &AtomicU64) -> Option<Duration> {
    match ms.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// Whether another attempt (perhaps on another worker) could succeed.
/// A run that diverged, or a cell the trainer refuses, fails the same way
/// every time: retrying only wastes GPU hours.
fn retryable(error: &TrainError) -> bool {
    !matches!(
        error,
        TrainError::Diverged { .. }
            | TrainError::Recipe(_)
            | TrainError::TooFewImages { .. }
            | TrainError::Channels { .. }
    )
}

/// Whose fault a training error is. The job's own fails the same way on
/// any machine; data that cannot be read, a checkpoint that cannot be
/// written and tensor errors (CUDA, out of memory) are the machine's.
fn class_of(error: &TrainError) -> pb::ErrorClass {
    match error {
        TrainError::Diverged { .. }
        | TrainError::Recipe(_)
        | TrainError::TooFewImages { .. }
        | TrainError::Channels { .. } => pb::ErrorClass::Job,
        TrainError::Data(_) | TrainError::Checkpoint(_) | TrainError::Candle(_) => pb::ErrorClass::Machine,
        TrainError::Aborted { .. } => pb::ErrorClass::Unknown,
    }
}

/// The error and all its causes on one line, for the database and `status`.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
