//! Checkpoints: the record of each stored checkpoint file, written fenced
//! by the worker that holds the job, and the pruning that keeps only the
//! latest.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::columns::{self, Columns};
use super::dialect::Dialect;
use super::generic::Sql;

use super::*;

/// A job's checkpoints, for the worker that holds its lease.
#[async_trait::async_trait]
pub trait Checkpoints: Send + Sync + 'static {
    /// Records a stored checkpoint; returns it and the digests of the
    /// job's older checkpoints that are no longer referenced.
    async fn add_checkpoint(
        &self,
        fence: Fence,
        checkpoint: &NewCheckpoint,
        now: Millis,
    ) -> Result<(CheckpointRef, Vec<String>)>;
    /// A checkpoint of a job the caller holds.
    async fn checkpoint(&self, fence: Fence, checkpoint_id: i64) -> Result<CheckpointRef>;
    /// Whether [`Checkpoints::add_checkpoint`] would take a checkpoint of
    /// `epoch` from this attempt now: asked before an upload's bytes are
    /// received, so that a refused call stores nothing.
    async fn check_checkpoint(&self, fence: Fence, epoch: u32) -> Result<()>;
    /// Whether any stored checkpoint has the file `sha256` (identical
    /// checkpoints of different jobs share one file).
    async fn checkpoint_file_used(&self, sha256: &str) -> Result<bool>;
}

#[async_trait::async_trait]
impl<D> Checkpoints for D
where
    D: Dialect,
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Row: Columns,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    for<'q> &'q str: Type<D::Db> + Encode<'q, D::Db>,
    i64: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    f64: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    String: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
{
    async fn add_checkpoint(
        &self,
        fence: Fence,
        checkpoint: &NewCheckpoint,
        now: Millis,
    ) -> Result<(CheckpointRef, Vec<String>)> {
        let size_bytes = i64::try_from(checkpoint.size_bytes).map_err(|_| StoreError::InvalidReport {
            job_id: fence.job_id,
            field: "size_bytes",
            message: format!("{} is too large", checkpoint.size_bytes),
        })?;
        let mut tx = self.begin_write().await?;
        // The fence locks the job's row until commit, so the reaper and a
        // new lease wait for this insert and its pruning: a stale attempt
        // cannot slip in between and prune the new attempt's checkpoint.
        let held = Sql::<D>::lock_fenced(&mut tx, fence).await?;
        epoch_reported(fence, checkpoint.epoch, held.epochs_done)?;
        let checkpoint_id: i64 = sqlx::query_scalar(
            "INSERT INTO checkpoints (job_id, attempt, epoch, sha256, size_bytes, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(fence.job_id)
        .bind(i64::from(fence.attempt))
        .bind(i64::from(checkpoint.epoch))
        .bind(checkpoint.sha256.as_str())
        .bind(size_bytes)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let orphans = Sql::<D>::prune_checkpoints(&mut tx, fence.job_id, Some(checkpoint_id)).await?;
        tx.commit().await?;
        let stored = CheckpointRef {
            checkpoint_id,
            job_id: fence.job_id,
            attempt: fence.attempt,
            epoch: checkpoint.epoch,
            size_bytes: checkpoint.size_bytes,
            sha256: checkpoint.sha256.clone(),
        };
        Ok((stored, orphans))
    }

    async fn check_checkpoint(&self, fence: Fence, epoch: u32) -> Result<()> {
        let held = Sql::<D>::read_fenced(self, fence).await?;
        epoch_reported(fence, epoch, held.epochs_done)
    }

    async fn checkpoint_file_used(&self, sha256: &str) -> Result<bool> {
        let used: Option<i64> = sqlx::query_scalar("SELECT id FROM checkpoints WHERE sha256 = $1 LIMIT 1")
            .bind(sha256)
            .fetch_optional(self.worker_reader())
            .await?;
        Ok(used.is_some())
    }

    async fn checkpoint(&self, fence: Fence, checkpoint_id: i64) -> Result<CheckpointRef> {
        Sql::<D>::read_fenced(self, fence).await?;
        let row = sqlx::query("SELECT * FROM checkpoints WHERE id = $1 AND job_id = $2")
            .bind(checkpoint_id)
            .bind(fence.job_id)
            .fetch_optional(self.worker_reader())
            .await?
            .ok_or(StoreError::CheckpointNotFound { job_id: fence.job_id, checkpoint_id })?;
        columns::checkpoint(&row)
    }
}

/// A checkpoint follows its epoch's report: of `epoch`, from an attempt
/// that has recorded `epochs_done`.
fn epoch_reported(fence: Fence, epoch: u32, epochs_done: u32) -> Result<()> {
    if epoch == 0 || epoch > epochs_done {
        return Err(StoreError::InvalidReport {
            job_id: fence.job_id,
            field: "checkpoint epoch",
            message: format!(
                "{epoch} is not among the epochs the job has reported (1..={epochs_done}): a checkpoint follows its \
                 epoch's report, so that a resumed attempt never runs ahead of the recorded curve"
            ),
        });
    }
    Ok(())
}
