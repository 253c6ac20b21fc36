//! Conversions between prost types and the store's domain types. Prost
//! types stop here.

use tonic::Status;
use widesweep_proto::v1 as pb;

use super::error::missing;
use crate::store::{
    CheckpointRef, EpochMetrics, ErrorGroup, JobConfig, JobEpoch, JobRow, JobStatus, LeaseToken, LeasedJob, Millis,
    Provenance, ResultRow, SweepSummary, WorkerActivity,
};

pub(crate) fn sweep_status(s: &SweepSummary) -> pb::SweepStatus {
    pb::SweepStatus {
        sweep_id: s.id,
        name: s.name.clone(),
        state: s.state.name().to_string(),
        priority: s.priority,
        dataset: s.dataset.to_string(),
        pending: s.counts.pending,
        running: s.counts.running,
        succeeded: s.counts.succeeded,
        failed: s.counts.failed,
        cancelled: s.counts.cancelled,
        total: s.counts.total(),
        epochs_done: s.epochs_done,
        epochs_total: s.epochs_total,
        mean_epoch_seconds: s.mean_epoch_seconds.unwrap_or(0.0),
        eta_seconds: s.eta_seconds(),
        created_at_ms: s.created_at_ms,
        errors: Vec::new(),
        reserve: s.reserve,
        seeds_target_ci: s.seeds_target_ci,
        error_groups: Vec::new(),
        pause_reason: s.pause_reason.clone().unwrap_or_default(),
    }
}

pub(crate) fn job_error(job: &JobRow) -> pb::JobError {
    pb::JobError {
        job_id: job.job_id,
        seed: job.seed,
        status: job.status.to_string(),
        attempts_spent: job.attempts_spent,
        max_attempts: job.max_attempts,
        error: job.last_error.clone().unwrap_or_default(),
        ..Default::default()
    }
}

pub(crate) fn worker_info(w: &WorkerActivity, now: Millis) -> pb::WorkerInfo {
    let (reason, until) = w.quarantine(now).unwrap_or_default();
    pb::WorkerInfo {
        worker_id: w.worker_id,
        hostname: w.hostname.clone(),
        devices: w.devices.clone(),
        version: w.version.clone(),
        last_seen_at_ms: w.last_seen_at_ms,
        running_jobs: w.slots.len() as u32,
        quarantine_reason: reason,
        quarantined_until_ms: until,
        now_ms: now,
    }
}

pub(crate) fn error_group(group: &ErrorGroup) -> pb::ErrorGroup {
    pb::ErrorGroup {
        error_class: group.error_class.clone(),
        error: group.error.clone(),
        attempts: group.attempts,
        jobs: group.jobs,
        workers: group.workers.clone(),
    }
}

pub(crate) fn checkpoint_ref(c: &CheckpointRef) -> pb::CheckpointRef {
    pb::CheckpointRef {
        checkpoint_id: c.checkpoint_id,
        job_id: c.job_id,
        attempt: c.attempt,
        epoch: c.epoch,
        size_bytes: c.size_bytes,
        sha256: c.sha256.clone(),
    }
}

/// Builds a result row of type `$target` from `$source`, copying the
/// fields both types hold under one name and type, and setting the rest as
/// written in `$converted`. The list below is the one place the copied
/// fields are named, for both directions of the conversion; a field that
/// either type lacks fails to compile here.
macro_rules! result_row_with {
    ($target:path, $source:expr, { $($converted:tt)* }) => {{
        let source = $source;
        $target {
            job_id: source.job_id,
            sweep: source.sweep.clone(),
            cell_hash: source.cell_hash.clone(),
            depth_convention: source.depth_convention.clone(),
            params: source.params,
            forward_macs: source.forward_macs,
            work: source.work,
            in_spec: source.in_spec,
            attempt: source.attempt,
            epochs_done: source.epochs_done,
            final_train_loss: source.final_train_loss,
            final_train_error: source.final_train_error,
            final_test_loss: source.final_test_loss,
            final_test_error: source.final_test_error,
            best_test_error: source.best_test_error,
            train_seconds: source.train_seconds,
            mean_epoch_seconds: source.mean_epoch_seconds,
            recorded_seconds: source.recorded_seconds,
            created_at_ms: source.created_at_ms,
            started_at_ms: source.started_at_ms,
            finished_at_ms: source.finished_at_ms,
            last_error: source.last_error.clone(),
            $($converted)*
        }
    }};
}

pub(crate) fn result_row(row: &ResultRow) -> pb::JobResultRow {
    result_row_with!(pb::JobResultRow, row, {
        config: Some(pb::CellConfig::from(&row.config)),
        status: row.status.to_string(),
        provenance: row.provenance.as_ref().map(provenance_to_proto),
    })
}

/// The most characters of one provenance field: a commit, a hash or a
/// device name is far shorter; a worker sending more is refused.
const MAX_PROVENANCE_CHARS: usize = 512;

/// The same fields, copied between the proto and the store's type.
macro_rules! copy_provenance {
    ($from:expr, $to:path) => {{
        let f = $from;
        $to {
            widesweep_version: f.widesweep_version.clone(),
            git_commit: f.git_commit.clone(),
            engine: f.engine.clone(),
            engine_version: f.engine_version.clone(),
            kernels: f.kernels.clone(),
            device: f.device.clone(),
            driver_version: f.driver_version.clone(),
            cuda_version: f.cuda_version.clone(),
            cudnn_version: f.cudnn_version.clone(),
            rng: f.rng.clone(),
            dataset_sha256: f.dataset_sha256.clone(),
            hostname: f.hostname.clone(),
        }
    }};
}

/// A worker's provenance, each field printable and bounded.
pub(crate) fn provenance_from_proto(p: &pb::Provenance) -> Result<Provenance, Status> {
    let provenance = copy_provenance!(p, Provenance);
    for (field, value) in provenance.fields() {
        let field = format!("provenance.{field}");
        if value.chars().count() > MAX_PROVENANCE_CHARS {
            return Err(Status::invalid_argument(format!("{field} is longer than {MAX_PROVENANCE_CHARS} characters")));
        }
        super::text::printable(&field, value)?;
    }
    Ok(provenance)
}

pub(crate) fn provenance_to_proto(p: &Provenance) -> pb::Provenance {
    copy_provenance!(p, pb::Provenance)
}

pub(crate) fn job_epoch(e: &JobEpoch) -> pb::JobEpoch {
    pb::JobEpoch { job_id: e.job_id, metrics: Some(pb::EpochMetrics::from(&e.metrics)) }
}

/// A job of a `ListResults` page, as the report layer reads it (the
/// client side of [`result_row`]).
pub fn result_row_from_proto(row: pb::JobResultRow) -> Result<ResultRow, Status> {
    let config = row.config.as_ref().ok_or_else(|| missing("jobs.config"))?;
    let config = JobConfig::try_from(config).map_err(|e| Status::invalid_argument(format!("jobs.{e}")))?;
    let status = JobStatus::parse(&row.status).ok_or_else(|| {
        Status::invalid_argument(format!(
            "jobs.status = {:?} is not a job status: expected pending, running, succeeded, failed or cancelled",
            row.status
        ))
    })?;
    let provenance = row.provenance.as_ref().map(provenance_from_proto).transpose()?;
    Ok(result_row_with!(ResultRow, &row, { config, status, provenance }))
}

/// An epoch of a `ListResults` page (the client side of [`job_epoch`]).
pub fn job_epoch_from_proto(e: pb::JobEpoch) -> Result<JobEpoch, Status> {
    let metrics = epoch_metrics(e.metrics, "epochs.metrics")?;
    Ok(JobEpoch { job_id: e.job_id, metrics })
}

/// The job a lease hands over, with the lease's secret (the only place
/// the token leaves the coordinator).
pub(crate) fn leased_job(job: &LeasedJob, token: &LeaseToken) -> pb::Job {
    pb::Job {
        job_id: job.job_id,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        sweep_name: job.sweep_name.clone(),
        cell_hash: job.cell_hash.clone(),
        config: Some(pb::CellConfig::from(&job.config)),
        lease_expires_at_ms: job.lease_expires_at_ms,
        checkpoint: job.checkpoint.as_ref().map(checkpoint_ref),
        lease_token: token.as_str().to_string(),
        command: job.command.as_ref().map(pb::CommandEngine::from),
    }
}

/// Checks the ranges a worker could get wrong ([`EpochMetrics::check`]);
/// a bad report changes nothing.
pub(crate) fn epoch_metrics(m: Option<pb::EpochMetrics>, field: &str) -> Result<EpochMetrics, Status> {
    let m = m.ok_or_else(|| missing(field))?;
    EpochMetrics::try_from(&m).map_err(|e| Status::invalid_argument(format!("{field}.{e}")))
}
