//! Conversions between prost types and the store's domain types. Prost
//! types stop here.

use tonic::Status;
use widesweep_proto::v1 as pb;

use super::error::missing;
use crate::spec::Recipe;
use crate::store::{
    CheckpointRef, EpochMetrics, JobConfig, JobEpoch, JobRow, JobStatus, LeaseToken, LeasedJob, ResultRow, SweepSummary,
};

pub(crate) fn sweep_status(s: &SweepSummary) -> pb::SweepStatus {
    pb::SweepStatus {
        sweep_id: s.id,
        name: s.name.clone(),
        state: s.state.name().to_string(),
        priority: s.priority,
        dataset: s.dataset.clone(),
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

/// A job's config as a worker receives it (in [`leased_job`]) and as
/// `ListResults` sends it.
pub fn cell_config(c: &JobConfig) -> pb::CellConfig {
    let r = &c.recipe;
    pb::CellConfig {
        block: c.block.clone(),
        deepening: c.deepening,
        blocks_per_group: c.blocks_per_group,
        depth: c.depth,
        width: c.width,
        dropout: c.dropout,
        dataset: c.dataset.clone(),
        seed: c.seed,
        recipe: Some(pb::Recipe::from(r)),
    }
}

pub(crate) fn result_row(row: &ResultRow) -> pb::JobResultRow {
    pb::JobResultRow {
        job_id: row.job_id,
        sweep: row.sweep.clone(),
        cell_hash: row.cell_hash.clone(),
        config: Some(cell_config(&row.config)),
        depth_convention: row.depth_convention.clone(),
        params: row.params,
        forward_macs: row.forward_macs,
        work: row.work,
        in_spec: row.in_spec,
        status: row.status.to_string(),
        attempt: row.attempt,
        epochs_done: row.epochs_done,
        final_train_loss: row.final_train_loss,
        final_train_error: row.final_train_error,
        final_test_loss: row.final_test_loss,
        final_test_error: row.final_test_error,
        best_test_error: row.best_test_error,
        train_seconds: row.train_seconds,
        mean_epoch_seconds: row.mean_epoch_seconds,
        recorded_seconds: row.recorded_seconds,
        created_at_ms: row.created_at_ms,
        started_at_ms: row.started_at_ms,
        finished_at_ms: row.finished_at_ms,
        last_error: row.last_error.clone(),
    }
}

pub(crate) fn job_epoch(e: &JobEpoch) -> pb::JobEpoch {
    pb::JobEpoch { job_id: e.job_id, metrics: Some(pb::EpochMetrics::from(&e.metrics)) }
}

/// A job of a `ListResults` page, as the report layer reads it (the
/// client side of [`result_row`]).
pub fn result_row_from_proto(row: pb::JobResultRow) -> Result<ResultRow, Status> {
    let config = row.config.ok_or_else(|| missing("jobs.config"))?;
    let recipe = config.recipe.ok_or_else(|| missing("jobs.config.recipe"))?;
    Ok(ResultRow {
        job_id: row.job_id,
        sweep: row.sweep,
        cell_hash: row.cell_hash,
        config: JobConfig {
            block: config.block,
            deepening: config.deepening,
            blocks_per_group: config.blocks_per_group,
            depth: config.depth,
            width: config.width,
            dropout: config.dropout,
            dataset: config.dataset,
            seed: config.seed,
            recipe: Recipe::try_from(&recipe)
                .map_err(|e| Status::invalid_argument(format!("jobs.config.recipe.precision: {e}")))?,
        },
        depth_convention: row.depth_convention,
        params: row.params,
        forward_macs: row.forward_macs,
        work: row.work,
        in_spec: row.in_spec,
        status: JobStatus::parse(&row.status).ok_or_else(|| {
            Status::invalid_argument(format!(
                "jobs.status = {:?} is not a job status: expected pending, running, succeeded, failed or cancelled",
                row.status
            ))
        })?,
        attempt: row.attempt,
        epochs_done: row.epochs_done,
        final_train_loss: row.final_train_loss,
        final_train_error: row.final_train_error,
        final_test_loss: row.final_test_loss,
        final_test_error: row.final_test_error,
        best_test_error: row.best_test_error,
        train_seconds: row.train_seconds,
        mean_epoch_seconds: row.mean_epoch_seconds,
        recorded_seconds: row.recorded_seconds,
        created_at_ms: row.created_at_ms,
        started_at_ms: row.started_at_ms,
        finished_at_ms: row.finished_at_ms,
        last_error: row.last_error,
    })
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
        config: Some(cell_config(&job.config)),
        lease_expires_at_ms: job.lease_expires_at_ms,
        checkpoint: job.checkpoint.as_ref().map(checkpoint_ref),
        lease_token: token.as_str().to_string(),
    }
}

/// Checks the ranges a worker could get wrong ([`EpochMetrics::check`]);
/// a bad report changes nothing.
pub(crate) fn epoch_metrics(m: Option<pb::EpochMetrics>, field: &str) -> Result<EpochMetrics, Status> {
    let m = m.ok_or_else(|| missing(field))?;
    EpochMetrics::try_from(&m).map_err(|e| Status::invalid_argument(format!("{field}.{e}")))
}
