//! Reading the model's types from result rows of either backend.
//!
//! [`Columns`] is the one place that knows how sqlx decodes a column; the
//! functions below turn rows into [`JobRow`], [`LeasedJob`] and the rest
//! without naming a backend, and every error names the column it came from.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{
    CheckpointRef, EpochMetrics, JobConfig, JobCounts, JobRow, JobStatus, LeaseDigest, LeasedJob, Result, ResultRow,
    SlotActivity, StoreError, SweepState, SweepSummary, WorkerActivity,
};
use crate::spec::Recipe;

/// A result row read by column name. Integers are stored as 64-bit and
/// narrowed with a range check, so a corrupt value is an error, never a
/// silently different number.
pub(super) trait Columns {
    fn big(&self, column: &str) -> Result<i64>;
    fn opt_big(&self, column: &str) -> Result<Option<i64>>;
    fn real(&self, column: &str) -> Result<f64>;
    fn opt_real(&self, column: &str) -> Result<Option<f64>>;
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;

    fn int<T: TryFrom<i64>>(&self, column: &str) -> Result<T> {
        let value = self.big(column)?;
        T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value} is out of range")))
    }

    /// A value stored as its text form (a block pattern, a dataset): the
    /// one place such a column is parsed back.
    fn parsed<T>(&self, column: &str) -> Result<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let text = self.text(column)?;
        text.parse().map_err(|e| StoreError::Corrupt(format!("{column} {text:?}: {e}")))
    }

    /// Booleans are stored as 0/1 integers in both dialects.
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.big(column)? != 0)
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    f64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    String: Type<R::Database> + for<'r> Decode<'r, R::Database>,
{
    fn big(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }

    fn opt_big(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn real(&self, column: &str) -> Result<f64> {
        Ok(self.try_get(column)?)
    }

    fn opt_real(&self, column: &str) -> Result<Option<f64>> {
        Ok(self.try_get(column)?)
    }

    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
}

pub(super) fn sweep_state(row: &impl Columns) -> Result<SweepState> {
    let state = row.text("state")?;
    SweepState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("sweep state {state:?}")))
}

pub(super) fn job_status(row: &impl Columns) -> Result<JobStatus> {
    let text = row.text("status")?;
    JobStatus::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("job status {text:?}")))
}

/// A row of [`SWEEP_SUMMARY`](super::statements::SWEEP_SUMMARY).
/// `timed` is the row of [`SWEEP_EPOCH_SECONDS`](super::statements::SWEEP_EPOCH_SECONDS).
pub(super) fn sweep_summary(row: &impl Columns, timed: &impl Columns) -> Result<SweepSummary> {
    let work_rate = match (timed.opt_real("work_timed")?, timed.opt_real("seconds_timed")?) {
        (Some(work), Some(seconds)) if work > 0.0 && seconds > 0.0 => Some(work / seconds),
        _ => None,
    };
    Ok(SweepSummary {
        id: row.big("id")?,
        name: row.text("name")?,
        state: sweep_state(row)?,
        priority: row.int("priority")?,
        dataset: row.parsed("dataset")?,
        counts: JobCounts {
            pending: row.int("pending")?,
            running: row.int("running")?,
            succeeded: row.int("succeeded")?,
            failed: row.int("failed")?,
            cancelled: row.int("cancelled")?,
        },
        epochs_done: row.int("epochs_done")?,
        epochs_total: row.int("epochs_total")?,
        mean_epoch_seconds: timed.opt_real("mean_epoch_seconds")?,
        work_remaining: row.real("work_remaining")?,
        work_rate,
        reserve: row.int("reserve")?,
        seeds_target_ci: row.opt_real("seeds_target_ci")?,
        pause_reason: row.opt_text("pause_reason")?,
        created_at_ms: row.big("created_at_ms")?,
    })
}

pub(super) fn job_row(row: &impl Columns) -> Result<JobRow> {
    Ok(JobRow {
        job_id: row.big("id")?,
        sweep_id: row.big("sweep_id")?,
        cell_hash: row.text("cell_hash")?,
        seed: row.int("seed")?,
        status: job_status(row)?,
        in_spec: row.flag("in_spec")?,
        attempt: row.int("attempt")?,
        attempts_spent: row.int("attempts_spent")?,
        max_attempts: row.int("max_attempts")?,
        lost_leases: row.int("lost_leases")?,
        worker_id: row.opt_big("worker_id")?,
        lease_expires_at_ms: row.opt_big("lease_expires_at_ms")?,
        epochs_done: row.int("epochs_done")?,
        final_test_error: row.opt_real("final_test_error")?,
        last_error: row.opt_text("last_error")?,
    })
}

/// A job's hyperparameters and recipe from its `jobs` row.
pub(super) fn job_config(row: &impl Columns) -> Result<JobConfig> {
    let milestones = row.text("lr_milestones")?;
    let lr_milestones: Vec<u32> = serde_json::from_str(&milestones)
        .map_err(|e| StoreError::Corrupt(format!("lr_milestones {milestones:?}: {e}")))?;
    let precision = row.text("precision")?;
    let params = row.text("params_json")?;
    let params =
        serde_json::from_str(&params).map_err(|e| StoreError::Corrupt(format!("params_json {params:?}: {e}")))?;
    Ok(JobConfig {
        engine: row.text("engine")?,
        params,
        block: row.parsed("block")?,
        deepening: row.int("deepening")?,
        blocks_per_group: row.int("blocks_per_group")?,
        depth: row.int("depth")?,
        width: row.int("width")?,
        dropout: row.real("dropout")?,
        dataset: row.parsed("dataset")?,
        seed: row.int("seed")?,
        recipe: Recipe {
            epochs: row.int("epochs")?,
            batch_size: row.int("batch_size")?,
            lr: row.real("lr")?,
            lr_milestones,
            lr_gamma: row.real("lr_gamma")?,
            momentum: row.real("momentum")?,
            nesterov: row.flag("nesterov")?,
            weight_decay: row.real("weight_decay")?,
            reset_momentum_on_drop: row.flag("reset_momentum_on_drop")?,
            train_subset: row.int("train_subset")?,
            test_subset: row.int("test_subset")?,
            augment: row.flag("augment")?,
            checkpoint_every: row.int("checkpoint_every")?,
            precision: precision.parse().map_err(|e| StoreError::Corrupt(format!("precision: {e}")))?,
            bn_recalibration_batches: row.int("bn_recalibration_batches")?,
        },
    })
}

/// A row of [`JOB_COLUMNS`](super::statements::JOB_COLUMNS): the leased job
/// and its latest checkpoint, handed out with the digest of its new token.
pub(super) fn leased_job(row: &impl Columns, lease_digest: LeaseDigest) -> Result<LeasedJob> {
    let checkpoint = match row.opt_big("ckpt_id")? {
        Some(checkpoint_id) => Some(CheckpointRef {
            checkpoint_id,
            job_id: row.big("id")?,
            attempt: row.int("ckpt_attempt")?,
            epoch: row.int("ckpt_epoch")?,
            size_bytes: row.int("ckpt_size")?,
            sha256: row.text("ckpt_sha256")?,
        }),
        None => None,
    };
    let config = job_config(row)?;
    // A command engine the sweep no longer defines leaves `command` empty:
    // the worker fails the attempt saying so, the queue goes on.
    let command = if config.is_candle() {
        None
    } else {
        let engines = row.text("sweep_engines_json")?;
        let mut engines: std::collections::BTreeMap<String, widesweep_arch::CommandEngine> =
            serde_json::from_str(&engines)
                .map_err(|e| StoreError::Corrupt(format!("engines_json {engines:?}: {e}")))?;
        engines.remove(&config.engine)
    };
    Ok(LeasedJob {
        job_id: row.big("id")?,
        attempt: row.int("attempt")?,
        max_attempts: row.int("max_attempts")?,
        sweep_name: row.text("sweep_name")?,
        cell_hash: row.text("cell_hash")?,
        config,
        lease_expires_at_ms: row.big("lease_expires_at_ms")?,
        checkpoint,
        lease_digest,
        command,
    })
}

/// A row of the `checkpoints` table.
pub(super) fn checkpoint(row: &impl Columns) -> Result<CheckpointRef> {
    Ok(CheckpointRef {
        checkpoint_id: row.big("id")?,
        job_id: row.big("job_id")?,
        attempt: row.int("attempt")?,
        epoch: row.int("epoch")?,
        size_bytes: row.int("size_bytes")?,
        sha256: row.text("sha256")?,
    })
}

/// A row of [`SWEEP_RESULTS`](super::statements::SWEEP_RESULTS).
pub(super) fn result_row(row: &impl Columns) -> Result<ResultRow> {
    Ok(ResultRow {
        job_id: row.big("id")?,
        sweep: row.text("sweep_name")?,
        cell_hash: row.text("cell_hash")?,
        config: job_config(row)?,
        depth_convention: row.text("depth_convention")?,
        params: row.int("params")?,
        forward_macs: row.int("forward_macs")?,
        work: row.real("work")?,
        in_spec: row.flag("in_spec")?,
        status: job_status(row)?,
        attempt: row.int("attempt")?,
        epochs_done: row.int("epochs_done")?,
        final_train_loss: row.opt_real("final_train_loss")?,
        final_train_error: row.opt_real("final_train_error")?,
        final_test_loss: row.opt_real("final_test_loss")?,
        final_test_error: row.opt_real("final_test_error")?,
        best_test_error: row.opt_real("best_test_error")?,
        train_seconds: row.opt_real("train_seconds")?,
        mean_epoch_seconds: row.opt_real("mean_epoch_seconds")?,
        recorded_seconds: row.opt_real("recorded_seconds")?.unwrap_or(0.0),
        created_at_ms: row.big("created_at_ms")?,
        started_at_ms: row.opt_big("started_at_ms")?,
        finished_at_ms: row.opt_big("finished_at_ms")?,
        last_error: row.opt_text("last_error")?,
        provenance: row.opt_text("provenance_json")?.as_deref().and_then(super::Provenance::from_json),
    })
}

/// A row of the `epochs` table.
pub(super) fn epoch_metrics(row: &impl Columns) -> Result<EpochMetrics> {
    Ok(EpochMetrics {
        epoch: row.int("epoch")?,
        train_loss: row.real("train_loss")?,
        train_error: row.real("train_error")?,
        test_loss: row.real("test_loss")?,
        test_error: row.real("test_error")?,
        lr: row.real("lr")?,
        epoch_seconds: row.real("epoch_seconds")?,
        images_per_second: row.real("images_per_second")?,
    })
}

/// A row of the `workers` table, its slots still to be filled.
pub(super) fn worker_activity(row: &impl Columns) -> Result<WorkerActivity> {
    let devices = row.text("devices")?;
    Ok(WorkerActivity {
        worker_id: row.big("id")?,
        hostname: row.text("hostname")?,
        devices: devices.split(',').filter(|d| !d.is_empty()).map(str::to_string).collect(),
        version: row.text("version")?,
        registered_at_ms: row.big("registered_at_ms")?,
        last_seen_at_ms: row.big("last_seen_at_ms")?,
        quarantine_reason: row.opt_text("quarantine_reason")?,
        quarantined_until_ms: row.opt_big("quarantined_until_ms")?,
        reported_quarantine: row.opt_text("reported_quarantine")?,
        reported_until_ms: row.opt_big("reported_until_ms")?,
        slots: Vec::new(),
    })
}

/// A row of [`RUNNING_SLOTS`](super::statements::RUNNING_SLOTS).
pub(super) fn slot_activity(row: &impl Columns) -> Result<SlotActivity> {
    Ok(SlotActivity {
        job_id: row.big("id")?,
        sweep: row.text("sweep_name")?,
        device: row.opt_text("device")?,
        epochs_done: row.int("epochs_done")?,
        epochs: row.int("epochs")?,
        images_per_second: row.opt_real("images_per_second")?,
        lease_expires_at_ms: row.opt_big("lease_expires_at_ms")?,
    })
}
