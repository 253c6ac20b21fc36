//! The generic half of every [`Dialect`]: fenced-write helpers, sweep
//! lookups and the adaptive seeds' bookkeeping that the concern modules
//! (submission, leases, checkpoints, reads) and the dialects' own
//! statements share. The bounds below say what sqlx must offer for a
//! backend (executing on a pool or transaction, binding and decoding
//! 64-bit integers, doubles and text); SQLite and PostgreSQL meet them,
//! and every concern module repeats them on its blanket impl (Rust does
//! not carry such bounds from one trait to another).

use std::marker::PhantomData;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use super::columns::{self, Columns};
use super::dialect::Dialect;
use super::seeds::{SeedRow, reserve_jobs_to_add};
use super::statements::*;
use super::*;

/// The fenced-write helpers, generic over the dialect; the dialects'
/// own statements call them too.
pub(super) struct Sql<D>(PhantomData<D>);

/// A query with the backend's own arguments.
type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// What a fenced row lock found: the job's length and progress.
pub(super) struct HeldJob {
    pub(super) epochs: u32,
    pub(super) epochs_done: u32,
}

impl HeldJob {
    fn of(row: &impl Columns) -> Result<Self> {
        Ok(Self { epochs: row.int("epochs")?, epochs_done: row.int("epochs_done")? })
    }
}

/// The job row a fence ($1 job, $2 attempt, $3 token digest) still holds.
const FENCED_JOB: &str = "SELECT epochs, epochs_done FROM jobs \
     WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $3";

impl<D> Sql<D>
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
    /// Explains why a fenced write matched no row: unknown job, cancelled
    /// job, an attempt that no longer holds the lease, a token that is not
    /// the lease's, or (for `epoch`) an epoch outside the job's 1..=epochs
    /// or past the next one due.
    pub(super) async fn fence_error<'e, E>(executor: E, fence: Fence, epoch: Option<u32>) -> StoreError
    where
        E: Executor<'e, Database = D::Db>,
    {
        let row = sqlx::query(
            "SELECT j.status, j.attempt, j.lease_token_sha256, j.epochs, j.epochs_done, s.state, s.name \
             FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE j.id = $1",
        )
        .bind(fence.job_id)
        .fetch_optional(executor)
        .await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return StoreError::JobNotFound(fence.job_id),
            Err(e) => return e.into(),
        };
        let status = match columns::job_status(&row) {
            Ok(status) => status,
            Err(e) => return e,
        };
        if status == JobStatus::Cancelled || columns::sweep_state(&row).ok() == Some(SweepState::Cancelled) {
            return StoreError::Cancelled { job_id: fence.job_id, sweep: row.text("name").unwrap_or_default() };
        }
        let current: u32 = row.int("attempt").unwrap_or_default();
        if status != JobStatus::Running || current != fence.attempt {
            return StoreError::StaleAttempt { job_id: fence.job_id, attempt: fence.attempt, current, status };
        }
        let digest = row.opt_text("lease_token_sha256").unwrap_or_default();
        if digest.as_deref() != Some(fence.token.hex().as_str()) {
            return StoreError::WrongLeaseToken { job_id: fence.job_id, attempt: fence.attempt };
        }
        match epoch {
            Some(epoch) => StoreError::EpochOutOfRange {
                job_id: fence.job_id,
                epoch,
                epochs: row.int("epochs").unwrap_or_default(),
                epochs_done: row.int("epochs_done").unwrap_or_default(),
            },
            // Every condition of the fence holds now: the row changed
            // between the write and this read (a concurrent caller).
            None => StoreError::StaleAttempt { job_id: fence.job_id, attempt: fence.attempt, current, status },
        }
    }

    /// Binds an epoch row as $1 (job_id) .. $11 (recorded_at_ms), the
    /// order of [`EPOCH_VALUES`].
    pub(super) fn bind_epoch<'q>(
        query: Query<'q, D::Db>,
        fence: Fence,
        m: &EpochMetrics,
        now: Millis,
    ) -> Query<'q, D::Db> {
        query
            .bind(fence.job_id)
            .bind(i64::from(m.epoch))
            .bind(i64::from(fence.attempt))
            .bind(m.train_loss)
            .bind(m.train_error)
            .bind(m.test_loss)
            .bind(m.test_error)
            .bind(m.lr)
            .bind(m.epoch_seconds)
            .bind(m.images_per_second)
            .bind(now)
    }

    /// Stores an epoch's metrics, replacing an earlier attempt's row for
    /// the same epoch and dropping its rows beyond it, so that a job's
    /// curve runs 1..E without a gap or a repeat after a resume.
    pub(super) async fn upsert_epoch(
        tx: &mut Transaction<'static, D::Db>,
        fence: Fence,
        m: &EpochMetrics,
        now: Millis,
    ) -> Result<()> {
        sqlx::query("DELETE FROM epochs WHERE job_id = $1 AND epoch > $2")
            .bind(fence.job_id)
            .bind(i64::from(m.epoch))
            .execute(&mut **tx)
            .await?;
        let sql = format!("INSERT INTO epochs {EPOCH_VALUES} ON CONFLICT (job_id, epoch) DO UPDATE SET {EPOCH_UPDATE}");
        Self::bind_epoch(sqlx::query(&sql), fence, m, now).execute(&mut **tx).await?;
        Ok(())
    }

    /// Checks the fence inside a write transaction and locks the job's row
    /// until it ends (`FOR UPDATE` on PostgreSQL; SQLite's immediate
    /// transaction holds the database's write lock).
    pub(super) async fn lock_fenced(tx: &mut Transaction<'static, D::Db>, fence: Fence) -> Result<HeldJob> {
        let sql = format!("{FENCED_JOB}{}", D::LOCK_ROW);
        let row = Self::bind_fence(sqlx::query(&sql), fence).fetch_optional(&mut **tx).await?;
        match row {
            Some(row) => HeldJob::of(&row),
            None => Err(Self::fence_error(&mut **tx, fence, None).await),
        }
    }

    /// Checks the fence without a transaction or a lock: for reads, and for
    /// refusing early what a later write would refuse too.
    pub(super) async fn read_fenced(store: &D, fence: Fence) -> Result<HeldJob> {
        let row = Self::bind_fence(sqlx::query(FENCED_JOB), fence).fetch_optional(store.worker_reader()).await?;
        match row {
            Some(row) => HeldJob::of(&row),
            None => Err(Self::fence_error(store.worker_reader(), fence, None).await),
        }
    }

    fn bind_fence<'q>(query: Query<'q, D::Db>, fence: Fence) -> Query<'q, D::Db> {
        query.bind(fence.job_id).bind(i64::from(fence.attempt)).bind(fence.token.hex())
    }

    /// A sweep's id, by id (all digits) or by name: one indexed row, where
    /// the summary counts every job of the sweep.
    pub(super) async fn sweep_id(store: &D, sweep: &str) -> Result<i64> {
        let (filter, id) = sweep_filter(sweep);
        let sql = format!("SELECT s.id FROM sweeps s{filter}");
        let query = sqlx::query_scalar(&sql);
        let query = match id {
            Some(id) => query.bind(id),
            None => query.bind(sweep),
        };
        query.fetch_optional(store.reader()).await?.ok_or_else(|| StoreError::SweepNotFound(sweep.to_string()))
    }

    /// A sweep's summary, by id (all digits) or by name.
    pub(super) async fn summary(store: &D, sweep: &str) -> Result<SweepSummary> {
        let sweep_id = Self::sweep_id(store, sweep).await?;
        let sql = format!("{SWEEP_SUMMARY} WHERE s.id = $1 {SWEEP_GROUP_BY}");
        let row = sqlx::query(&sql)
            .bind(sweep_id)
            .fetch_optional(store.reader())
            .await?
            .ok_or_else(|| StoreError::SweepNotFound(sweep.to_string()))?;
        let timed = sqlx::query(SWEEP_EPOCH_SECONDS).bind(sweep_id).fetch_one(store.reader()).await?;
        columns::sweep_summary(&row, &timed)
    }

    /// The adaptive sweep that job `job_id` belongs to, locked until `tx` ends:
    /// its id and target, or `None` (and no lock) for a sweep with a fixed
    /// list of seeds or a cancelled one. Taking the sweep's row lock before
    /// any job's, as a submission and a cancel do, keeps one lock order;
    /// and two cells' last jobs finishing at once are judged one after the
    /// other, the second seeing both results.
    pub(super) async fn lock_adaptive_sweep(
        tx: &mut Transaction<'static, D::Db>,
        job_id: i64,
    ) -> Result<Option<(i64, f64)>> {
        let filter = "id = (SELECT sweep_id FROM jobs WHERE id = $1)";
        // Most sweeps have a fixed list of seeds: a plain read tells so
        // without locking their row on the path of every completion.
        let target: Option<Option<f64>> =
            sqlx::query_scalar(&format!("SELECT seeds_target_ci FROM sweeps WHERE {filter}"))
                .bind(job_id)
                .fetch_optional(&mut **tx)
                .await?;
        if !matches!(target, Some(Some(_))) {
            return Ok(None);
        }
        let sweep =
            sqlx::query(&format!("SELECT id, state, seeds_target_ci FROM sweeps WHERE {filter}{}", D::LOCK_ROW))
                .bind(job_id)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(sweep) = sweep else { return Ok(None) };
        match sweep.opt_real("seeds_target_ci")? {
            Some(target) if columns::sweep_state(&sweep)? != SweepState::Cancelled => {
                Ok(Some((sweep.big("id")?, target)))
            }
            _ => Ok(None),
        }
    }

    /// Adds to each finished, undecided cell of the sweep (or only to the
    /// cell of job `cell_of`) its next reserve seed, as [`super::seeds`]
    /// decides; returns how many were added. The caller holds the sweep's
    /// lock ([`Sql::lock_adaptive_sweep`]).
    pub(super) async fn add_seeds_in(
        tx: &mut Transaction<'static, D::Db>,
        sweep_id: i64,
        target_ci: f64,
        cell_of: Option<i64>,
    ) -> Result<u64> {
        let select = "SELECT id, seed, status, reserve, final_test_error, config_json FROM jobs \
             WHERE sweep_id = $1 AND (in_spec = 1 OR reserve = 1)";
        let rows = match cell_of {
            None => sqlx::query(select).bind(sweep_id).fetch_all(&mut **tx).await?,
            Some(job_id) => {
                let sql = format!(
                    "{select} AND (block, blocks_per_group, width, dropout) = \
                     (SELECT block, blocks_per_group, width, dropout FROM jobs WHERE id = $2)"
                );
                sqlx::query(&sql).bind(sweep_id).bind(job_id).fetch_all(&mut **tx).await?
            }
        };
        let rows = rows
            .iter()
            .map(|row| {
                Ok(SeedRow {
                    id: row.big("id")?,
                    seed: row.big("seed")?,
                    status: columns::job_status(row)?,
                    reserve: row.flag("reserve")?,
                    final_test_error: row.opt_real("final_test_error")?,
                    config_json: row.text("config_json")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let add = reserve_jobs_to_add(rows, target_ci)?;
        for &job_id in &add {
            sqlx::query("UPDATE jobs SET in_spec = 1, reserve = 0 WHERE id = $1 AND reserve = 1")
                .bind(job_id)
                .execute(&mut **tx)
                .await?;
        }
        if !add.is_empty() {
            tracing::info!(sweep_id, jobs = ?add, "adaptive seeds: added seeds to cells whose interval is wider than the target");
        }
        Ok(add.len() as u64)
    }

    /// Judges the cell of job `job_id`, which failed for good, in a
    /// transaction of its own: the failure is already committed, so an
    /// error here is logged rather than returned (the caller must not retry
    /// a write that succeeded); submitting the spec again judges every cell
    /// anew.
    pub(super) async fn add_seeds_after(store: &D, job_id: i64) {
        let judged = async {
            let mut tx = store.begin_write().await?;
            if let Some((sweep_id, target)) = Self::lock_adaptive_sweep(&mut tx, job_id).await? {
                Self::add_seeds_in(&mut tx, sweep_id, target, Some(job_id)).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        if let Err(error) = judged.await {
            tracing::warn!(job_id, %error, "adaptive seeds: could not judge the job's cell; submit the spec again to retry");
        }
    }

    /// Records that a worker (`which`: `id = $1`, or [`WORKER_OF_JOB`])
    /// was heard from. Best effort: the write it follows has succeeded and
    /// must not be reported as failed for this; the write is skipped within
    /// [`SEEN_RESOLUTION_MS`] of the last one, so a busy fleet does not add
    /// a write per report to the queue's one writer.
    pub(super) async fn seen<'e, E>(executor: E, which: &str, id: i64, now: Millis)
    where
        E: Executor<'e, Database = D::Db>,
    {
        let sql = format!("UPDATE workers SET last_seen_at_ms = $2 WHERE {which} AND last_seen_at_ms < $3");
        let touched = sqlx::query(&sql).bind(id).bind(now).bind(now - SEEN_RESOLUTION_MS).execute(executor).await;
        if let Err(error) = touched {
            tracing::warn!(%error, id, "cannot record when a worker was last seen");
        }
    }

    /// Records how the attempt of `fence` ended, in the transaction that
    /// ends it.
    pub(super) async fn end_attempt(
        tx: &mut Transaction<'static, D::Db>,
        fence: Fence,
        now: Millis,
        ending: Ending<'_>,
    ) -> Result<()> {
        let (outcome, (class, error), (provenance, test_error)) = match ending {
            Ending::Succeeded { test_error, provenance } => ("succeeded", ("", ""), (provenance, test_error)),
            Ending::Failed(class, error) => ("failed", (class.as_str(), error), ("", 0.0)),
            Ending::Released => ("released", ("", ""), ("", 0.0)),
            Ending::Lost => ("lost", ("", ""), ("", 0.0)),
        };
        sqlx::query(ATTEMPT_ENDED)
            .bind(fence.job_id)
            .bind(i64::from(fence.attempt))
            .bind(now)
            .bind(outcome)
            .bind(class)
            .bind(error)
            .bind(provenance)
            .bind(test_error)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Deletes the job's checkpoints older than `keep_id` and returns the
    /// digests no row references any more.
    pub(super) async fn prune_checkpoints(
        tx: &mut Transaction<'static, D::Db>,
        job_id: i64,
        keep_id: Option<i64>,
    ) -> Result<Vec<String>> {
        let keep = keep_id.unwrap_or(i64::MAX);
        let old: Vec<String> =
            sqlx::query_scalar("DELETE FROM checkpoints WHERE job_id = $1 AND id < $2 RETURNING sha256")
                .bind(job_id)
                .bind(keep)
                .fetch_all(&mut **tx)
                .await?;
        let mut orphans = Vec::new();
        for sha in old {
            let refs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkpoints WHERE sha256 = $1")
                .bind(sha.as_str())
                .fetch_one(&mut **tx)
                .await?;
            if refs == 0 && !orphans.contains(&sha) {
                orphans.push(sha);
            }
        }
        Ok(orphans)
    }
}

/// How an attempt ended, with what its `attempts` row keeps of it.
pub(super) enum Ending<'a> {
    /// Its final test error and the provenance JSON ("" for none).
    Succeeded {
        test_error: f64,
        provenance: &'a str,
    },
    Failed(ErrorClass, &'a str),
    /// Handed back by a stopping worker.
    Released,
    /// Its lease expired.
    Lost,
}

/// The `WHERE` of a statement that names a sweep by id (all digits) or by
/// name, and the id when it is one.
pub(super) fn sweep_filter(sweep: &str) -> (&'static str, Option<i64>) {
    match sweep.parse::<i64>() {
        Ok(id) => (" WHERE s.id = $1 ", Some(id)),
        Err(_) => (" WHERE s.name = $1 ", None),
    }
}
