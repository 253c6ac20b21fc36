//! The [`Store`] of every [`Dialect`]: the statements both backends share,
//! written once as generic code. The bounds below say what sqlx must offer
//! for a backend (executing on a pool or transaction, binding and decoding
//! 64-bit integers, doubles and text); SQLite and PostgreSQL meet them.

use std::collections::HashMap;
use std::marker::PhantomData;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use super::columns::{self, Columns};
use super::dialect::Dialect;
use super::seeds::{SeedRow, reserve_jobs_to_add};
use super::statements::*;
use super::submit::{Stored, SubmitChanges};
use super::*;
use crate::spec::JobSpec;

/// The fenced-write helpers, generic over the dialect; the dialects'
/// own statements call them too.
pub(super) struct Sql<D>(PhantomData<D>);

/// A query with the backend's own arguments.
type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// What a fenced row lock found: the job's length and progress.
struct HeldJob {
    epochs: u32,
    epochs_done: u32,
}

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
    async fn lock_fenced(tx: &mut Transaction<'static, D::Db>, fence: Fence) -> Result<HeldJob> {
        let sql = format!(
            "SELECT epochs, epochs_done FROM jobs \
             WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $3{}",
            D::LOCK_ROW
        );
        let row = sqlx::query(&sql)
            .bind(fence.job_id)
            .bind(i64::from(fence.attempt))
            .bind(fence.token.hex())
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            Some(row) => Ok(HeldJob { epochs: row.int("epochs")?, epochs_done: row.int("epochs_done")? }),
            None => Err(Self::fence_error(&mut **tx, fence, None).await),
        }
    }

    /// A sweep's id, by id (all digits) or by name: one indexed row, where
    /// the summary counts every job of the sweep.
    async fn sweep_id(store: &D, sweep: &str) -> Result<i64> {
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
    async fn summary(store: &D, sweep: &str) -> Result<SweepSummary> {
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
    async fn lock_adaptive_sweep(tx: &mut Transaction<'static, D::Db>, job_id: i64) -> Result<Option<(i64, f64)>> {
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
    async fn add_seeds_in(
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
    async fn add_seeds_after(store: &D, job_id: i64) {
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
    async fn seen<'e, E>(executor: E, which: &str, id: i64, now: Millis)
    where
        E: Executor<'e, Database = D::Db>,
    {
        let sql = format!("UPDATE workers SET last_seen_at_ms = $2 WHERE {which} AND last_seen_at_ms < $3");
        let touched = sqlx::query(&sql).bind(id).bind(now).bind(now - SEEN_RESOLUTION_MS).execute(executor).await;
        if let Err(error) = touched {
            tracing::warn!(%error, id, "cannot record when a worker was last seen");
        }
    }

    /// Deletes the job's checkpoints older than `keep_id` and returns the
    /// digests no row references any more.
    async fn prune_checkpoints(
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

/// The `WHERE` of a statement that names a sweep by id (all digits) or by
/// name, and the id when it is one.
fn sweep_filter(sweep: &str) -> (&'static str, Option<i64>) {
    match sweep.parse::<i64>() {
        Ok(id) => (" WHERE s.id = $1 ", Some(id)),
        Err(_) => (" WHERE s.name = $1 ", None),
    }
}

#[async_trait::async_trait]
impl<D> Store for D
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
    fn backend(&self) -> Backend {
        D::BACKEND
    }

    async fn clock_ms(&self) -> Result<Millis> {
        self.clock().await
    }

    async fn submit_sweep(&self, sweep: &NewSweep<'_>, now: Millis) -> Result<SubmitOutcome> {
        let mut tx = self.begin_write().await?;
        // Insert-or-keep, then lock: two submits of the same new sweep meet
        // at the unique name (the second waits for the first to commit,
        // then finds its row), and a cancel, which locks the same row, runs
        // wholly before or wholly after this submit.
        sqlx::query(
            "INSERT INTO sweeps (name, dataset, priority, max_attempts, spec_toml, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(sweep.name)
        .bind(sweep.dataset)
        .bind(i64::from(sweep.priority))
        .bind(i64::from(sweep.max_attempts))
        .bind(sweep.spec_toml)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("SELECT id, state, seeds_target_ci FROM sweeps WHERE name = $1{}", D::LOCK_ROW))
            .bind(sweep.name)
            .fetch_one(&mut *tx)
            .await?;
        if columns::sweep_state(&row)? == SweepState::Cancelled {
            return Err(StoreError::SweepConflict {
                sweep: sweep.name.to_string(),
                message: "was cancelled; submit the spec under a new name".to_string(),
            });
        }
        let sweep_id = row.big("id")?;
        let stored: HashMap<String, Stored> =
            sqlx::query("SELECT cell_hash, in_spec, reserve FROM jobs WHERE sweep_id = $1")
                .bind(sweep_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.text("cell_hash")?,
                        Stored { in_spec: row.flag("in_spec")?, reserve: row.flag("reserve")? },
                    ))
                })
                .collect::<Result<_>>()?;
        let changes = SubmitChanges::of(sweep, &stored);

        let priority = i64::from(sweep.priority);
        let inserts =
            changes.new_jobs.iter().map(|job| (*job, false)).chain(changes.new_reserve.iter().map(|job| (*job, true)));
        let inserts: Vec<(&JobSpec, bool)> = inserts.collect();
        for chunk in inserts.chunks(INSERT_CHUNK) {
            let sql = format!("{JOB_INSERT} VALUES {}", placeholders(D::placeholder, chunk.len(), JOB_INSERT_COLUMNS));
            let mut insert = sqlx::query(&sql);
            for &(job, reserve) in chunk {
                let recipe = &job.recipe;
                insert = insert
                    .bind(sweep_id)
                    .bind(job.cell_hash.as_str())
                    .bind(job.cell.block.to_string())
                    .bind(stored_int(job.cell.block.deepening()))
                    .bind(i64::from(job.cell.blocks_per_group))
                    .bind(i64::from(job.cell.depth))
                    .bind(job.depth_convention.name())
                    .bind(i64::from(job.cell.width))
                    .bind(job.cell.dropout)
                    .bind(job.dataset.name())
                    .bind(stored_int(job.seed))
                    .bind(i64::from(recipe.epochs))
                    .bind(i64::from(recipe.batch_size))
                    .bind(recipe.lr)
                    .bind(serde_json::to_string(&recipe.lr_milestones).expect("milestones serialise"))
                    .bind(recipe.lr_gamma)
                    .bind(recipe.momentum)
                    .bind(i64::from(recipe.nesterov))
                    .bind(recipe.weight_decay)
                    .bind(i64::from(recipe.reset_momentum_on_drop))
                    .bind(i64::from(recipe.train_subset))
                    .bind(i64::from(recipe.test_subset))
                    .bind(i64::from(recipe.augment))
                    .bind(i64::from(recipe.checkpoint_every))
                    .bind(recipe.precision.name())
                    .bind(i64::from(recipe.bn_recalibration_batches))
                    .bind(job.canonical_json())
                    .bind(stored_int(job.params))
                    .bind(stored_int(job.forward_macs))
                    .bind(job.work)
                    .bind(priority)
                    .bind(i64::from(sweep.max_attempts))
                    .bind(now)
                    .bind(i64::from(!reserve))
                    .bind(i64::from(reserve));
            }
            insert.execute(&mut *tx).await?;
        }
        // Each stored job the spec moves: (hash, in_spec, reserve).
        let moves = changes
            .dropped
            .iter()
            .map(|h| (*h, 0i64, 0i64))
            .chain(changes.readded.iter().map(|h| (*h, 1, 0)))
            .chain(changes.back_in_reserve.iter().map(|h| (*h, 0, 1)));
        let mut moved = false;
        for (hash, in_spec, reserve) in moves {
            moved = true;
            sqlx::query("UPDATE jobs SET in_spec = $3, reserve = $4 WHERE sweep_id = $1 AND cell_hash = $2")
                .bind(sweep_id)
                .bind(hash)
                .bind(in_spec)
                .bind(reserve)
                .execute(&mut *tx)
                .await?;
        }
        let retargeted = row.opt_real("seeds_target_ci")? != sweep.seeds_target_ci;
        if !inserts.is_empty() || moved || retargeted {
            // sqlx binds an Option only per backend, not generically: NULL
            // is written into the statement instead.
            let target = if sweep.seeds_target_ci.is_some() { "$4" } else { "NULL" };
            let sql = format!(
                "UPDATE sweeps SET spec_toml = $2, updated_at_ms = $3, seeds_target_ci = {target} WHERE id = $1"
            );
            let update = sqlx::query(&sql).bind(sweep_id).bind(sweep.spec_toml).bind(now);
            match sweep.seeds_target_ci {
                Some(target) => update.bind(target),
                None => update,
            }
            .execute(&mut *tx)
            .await?;
        }
        // A resubmission also judges every cell again, under the sweep's lock
        // it already holds: a changed target, or a completion whose check was
        // lost with its coordinator, adds the seeds that are due now.
        let added = match sweep.seeds_target_ci {
            Some(target) => Sql::<D>::add_seeds_in(&mut tx, sweep_id, target, None).await?,
            None => 0,
        };
        tx.commit().await?;
        Ok(SubmitOutcome {
            sweep_id,
            new: changes.new_jobs.len() as u64,
            existing: (sweep.jobs.len() - changes.new_jobs.len()) as u64,
            dropped: changes.dropped_from_spec,
            reserve: changes.held.saturating_sub(added),
            added,
        })
    }

    async fn sweep(&self, sweep: &str) -> Result<SweepSummary> {
        Sql::summary(self, sweep).await
    }

    async fn list_sweeps(&self) -> Result<Vec<SweepSummary>> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sweeps ORDER BY id DESC").fetch_all(self.reader()).await?;
        let mut sweeps = Vec::with_capacity(names.len());
        for name in names {
            sweeps.push(Sql::summary(self, &name).await?);
        }
        Ok(sweeps)
    }

    async fn steer_sweep(&self, sweep: &str, action: SweepAction, now: Millis) -> Result<SweepSummary> {
        let mut tx = self.begin_write().await?;
        // The state is read under the row's lock, in the transaction that
        // changes it: a cancel racing a pause or resume cannot be undone by it.
        let (filter, id) = sweep_filter(sweep);
        let sql = format!("SELECT s.id, s.name, s.state FROM sweeps s{filter}{}", D::LOCK_ROW);
        let query = sqlx::query(&sql);
        let query = match id {
            Some(id) => query.bind(id),
            None => query.bind(sweep),
        };
        let row = query.fetch_optional(&mut *tx).await?.ok_or_else(|| StoreError::SweepNotFound(sweep.to_string()))?;
        let sweep_id = row.big("id")?;
        let name = row.text("name")?;
        let target = match (columns::sweep_state(&row)?, action) {
            (SweepState::Cancelled, SweepAction::Cancel) => None,
            (SweepState::Cancelled, _) => {
                return Err(StoreError::SweepConflict {
                    sweep: name,
                    message: "is cancelled; a cancelled sweep stays cancelled".to_string(),
                });
            }
            (_, SweepAction::Pause) => Some(SweepState::Paused),
            (_, SweepAction::Resume) => Some(SweepState::Active),
            (_, SweepAction::Cancel) => Some(SweepState::Cancelled),
        };
        if let Some(target) = target {
            sqlx::query("UPDATE sweeps SET state = $2, updated_at_ms = $3 WHERE id = $1")
                .bind(sweep_id)
                .bind(target.name())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if target == SweepState::Cancelled {
                sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', worker_id = NULL, lease_expires_at_ms = NULL, \
                     lease_token_sha256 = NULL, finished_at_ms = $2 \
                     WHERE sweep_id = $1 AND status IN ('pending', 'running')",
                )
                .bind(sweep_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Sql::summary(self, &sweep_id.to_string()).await
    }

    async fn register_worker(&self, hostname: &str, devices: &[String], version: &str, now: Millis) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO workers (hostname, devices, version, registered_at_ms, last_seen_at_ms) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(hostname)
        .bind(devices.join(","))
        .bind(version)
        .bind(now)
        .fetch_one(self.writer())
        .await?;
        Ok(id)
    }

    async fn lease_job(
        &self,
        worker_id: i64,
        device: &str,
        token: LeaseDigest,
        lease_ms: i64,
        now: Millis,
    ) -> Result<Option<LeasedJob>> {
        let leased = self.claim(worker_id, device, token, now + lease_ms, now).await.map_err(|error| match &error {
            // jobs.worker_id references workers: an id nobody registered.
            StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                StoreError::WorkerNotFound(worker_id)
            }
            _ => error,
        })?;
        // An idle worker asking for work is alive too.
        Sql::<D>::seen(self.writer(), "id = $1", worker_id, now).await;
        Ok(leased)
    }

    async fn report_epoch(&self, fence: Fence, metrics: &EpochMetrics, lease_ms: i64, now: Millis) -> Result<Millis> {
        let expires = now + lease_ms;
        self.store_epoch(fence, metrics, expires, now).await?;
        Sql::<D>::seen(self.writer(), WORKER_OF_JOB, fence.job_id, now).await;
        Ok(expires)
    }

    async fn heartbeat(&self, fence: Fence, lease_ms: i64, now: Millis) -> Result<Millis> {
        let expires = now + lease_ms;
        let updated = sqlx::query(
            "UPDATE jobs SET lease_expires_at_ms = $3 \
             WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $4",
        )
        .bind(fence.job_id)
        .bind(i64::from(fence.attempt))
        .bind(expires)
        .bind(fence.token.hex())
        .execute(self.writer())
        .await?;
        if D::rows_affected(&updated) == 0 {
            return Err(Sql::<D>::fence_error(self.writer(), fence, None).await);
        }
        Sql::<D>::seen(self.writer(), WORKER_OF_JOB, fence.job_id, now).await;
        Ok(expires)
    }

    async fn complete_job(&self, fence: Fence, result: &JobResult, now: Millis) -> Result<Vec<String>> {
        let m = &result.final_metrics;
        let mut tx = self.begin_write().await?;
        // The cell gets its next adaptive seed in this same transaction, so
        // no reader ever sees the cell finished but its seed not yet added.
        let adaptive = Sql::<D>::lock_adaptive_sweep(&mut tx, fence.job_id).await?;
        let held = Sql::<D>::lock_fenced(&mut tx, fence).await?;
        let invalid =
            |field: &'static str, message: String| StoreError::InvalidReport { job_id: fence.job_id, field, message };
        if m.epoch != held.epochs {
            return Err(invalid(
                "final_metrics.epoch",
                format!("is {}, but the job trains {} epochs: complete it after its last epoch", m.epoch, held.epochs),
            ));
        }
        if held.epochs_done + 1 < held.epochs {
            return Err(invalid(
                "final_metrics.epoch",
                format!(
                    "the job has reported epochs 1..={} of {}: report every epoch before completing",
                    held.epochs_done, held.epochs
                ),
            ));
        }
        // The last epoch, when this attempt reported it already, is the
        // final result: a completion that disagrees with it is refused.
        let reported = sqlx::query(
            "SELECT train_loss, train_error, test_loss, test_error FROM epochs \
             WHERE job_id = $1 AND epoch = $2 AND attempt = $3",
        )
        .bind(fence.job_id)
        .bind(i64::from(m.epoch))
        .bind(i64::from(fence.attempt))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = reported {
            let same = [
                ("train_loss", m.train_loss),
                ("train_error", m.train_error),
                ("test_loss", m.test_loss),
                ("test_error", m.test_error),
            ]
            .into_iter()
            .all(|(column, value)| row.real(column).is_ok_and(|stored| stored == value));
            if !same {
                return Err(invalid(
                    "final_metrics",
                    format!("differ from epoch {} as this attempt reported it", m.epoch),
                ));
            }
        }
        Sql::<D>::upsert_epoch(&mut tx, fence, m, now).await?;
        // The best test error is the curve's: computed from the recorded
        // epochs, not taken from the caller.
        let best: Option<f64> =
            sqlx::query_scalar("SELECT CAST(MIN(test_error) AS DOUBLE PRECISION) FROM epochs WHERE job_id = $1")
                .bind(fence.job_id)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "UPDATE jobs SET status = 'succeeded', lease_expires_at_ms = NULL, lease_token_sha256 = NULL, \
             worker_id = NULL, finished_at_ms = $2, epochs_done = $3, final_train_loss = $4, \
             final_train_error = $5, final_test_loss = $6, final_test_error = $7, best_test_error = $8, \
             train_seconds = $9, last_error = NULL WHERE id = $1",
        )
        .bind(fence.job_id)
        .bind(now)
        .bind(i64::from(m.epoch))
        .bind(m.train_loss)
        .bind(m.train_error)
        .bind(m.test_loss)
        .bind(m.test_error)
        .bind(best.unwrap_or(m.test_error))
        .bind(result.train_seconds)
        .execute(&mut *tx)
        .await?;
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM checkpoints WHERE job_id = $1")
            .bind(fence.job_id)
            .fetch_one(&mut *tx)
            .await?;
        let orphans = Sql::<D>::prune_checkpoints(&mut tx, fence.job_id, last).await?;
        if let Some((sweep_id, target)) = adaptive {
            Sql::<D>::add_seeds_in(&mut tx, sweep_id, target, Some(fence.job_id)).await?;
        }
        tx.commit().await?;
        Ok(orphans)
    }

    async fn fail_job(&self, fence: Fence, error: &str, retryable: bool, now: Millis) -> Result<bool> {
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
               status = CASE WHEN $3 = 1 AND attempts_spent < max_attempts THEN 'pending' ELSE 'failed' END, \
               finished_at_ms = CASE WHEN $3 = 1 AND attempts_spent < max_attempts THEN NULL ELSE $4 END, \
               last_error = $5, worker_id = NULL, lease_expires_at_ms = NULL, lease_token_sha256 = NULL \
             WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $6 \
             RETURNING status",
        )
        .bind(fence.job_id)
        .bind(i64::from(fence.attempt))
        .bind(i64::from(retryable))
        .bind(now)
        .bind(error)
        .bind(fence.token.hex())
        .fetch_optional(self.writer())
        .await?;
        match status {
            Some(status) if status == JobStatus::Pending.as_str() => Ok(true),
            Some(_) => {
                Sql::add_seeds_after(self, fence.job_id).await;
                Ok(false)
            }
            None => Err(Sql::<D>::fence_error(self.writer(), fence, None).await),
        }
    }

    async fn release_job(&self, fence: Fence, _now: Millis) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'pending', attempts_spent = attempts_spent - 1, worker_id = NULL, \
             lease_expires_at_ms = NULL, lease_token_sha256 = NULL \
             WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $3",
        )
        .bind(fence.job_id)
        .bind(i64::from(fence.attempt))
        .bind(fence.token.hex())
        .execute(self.writer())
        .await?;
        if D::rows_affected(&updated) == 0 {
            return Err(Sql::<D>::fence_error(self.writer(), fence, None).await);
        }
        Ok(())
    }

    async fn reap_expired(&self, now: Millis) -> Result<u64> {
        let reaped = sqlx::query(&REAP_EXPIRED).bind(now).fetch_all(self.writer()).await?;
        for row in &reaped {
            if columns::job_status(row)? == JobStatus::Failed {
                Sql::add_seeds_after(self, row.big("id")?).await;
            }
        }
        Ok(reaped.len() as u64)
    }

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
        if checkpoint.epoch == 0 || checkpoint.epoch > held.epochs_done {
            return Err(StoreError::InvalidReport {
                job_id: fence.job_id,
                field: "checkpoint epoch",
                message: format!(
                    "{} is not among the epochs the job has reported (1..={}): a checkpoint follows its \
                     epoch's report, so that a resumed attempt never runs ahead of the recorded curve",
                    checkpoint.epoch, held.epochs_done
                ),
            });
        }
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

    async fn checkpoint(&self, fence: Fence, checkpoint_id: i64) -> Result<CheckpointRef> {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $3",
        )
        .bind(fence.job_id)
        .bind(i64::from(fence.attempt))
        .bind(fence.token.hex())
        .fetch_optional(self.reader())
        .await?;
        if held.is_none() {
            return Err(Sql::<D>::fence_error(self.reader(), fence, None).await);
        }
        let row = sqlx::query("SELECT * FROM checkpoints WHERE id = $1 AND job_id = $2")
            .bind(checkpoint_id)
            .bind(fence.job_id)
            .fetch_optional(self.reader())
            .await?
            .ok_or(StoreError::CheckpointNotFound { job_id: fence.job_id, checkpoint_id })?;
        columns::checkpoint(&row)
    }

    async fn job(&self, job_id: i64) -> Result<JobRow> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(self.reader())
            .await?
            .ok_or(StoreError::JobNotFound(job_id))?;
        columns::job_row(&row)
    }

    async fn sweep_jobs(&self, sweep: &str) -> Result<Vec<JobRow>> {
        let sweep_id = Sql::sweep_id(self, sweep).await?;
        sqlx::query("SELECT * FROM jobs WHERE sweep_id = $1 ORDER BY id")
            .bind(sweep_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(columns::job_row)
            .collect()
    }

    async fn job_errors(&self, sweep: &str, limit: u32) -> Result<Vec<JobRow>> {
        let sweep_id = Sql::sweep_id(self, sweep).await?;
        sqlx::query(
            "SELECT * FROM jobs WHERE sweep_id = $1 AND last_error IS NOT NULL \
             AND status IN ('pending', 'running', 'failed') ORDER BY id LIMIT $2",
        )
        .bind(sweep_id)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(columns::job_row)
        .collect()
    }

    async fn job_epochs(&self, job_id: i64) -> Result<Vec<EpochMetrics>> {
        sqlx::query("SELECT * FROM epochs WHERE job_id = $1 ORDER BY epoch")
            .bind(job_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(columns::epoch_metrics)
            .collect()
    }

    async fn job_detail(&self, job_id: i64) -> Result<JobDetail> {
        let row = Store::job(self, job_id).await?;
        // The results query reads pages after a job id: the page after the
        // job's predecessor starts with the job, unless it is in reserve.
        let result = self
            .sweep_results_page(row.sweep_id, job_id - 1, 1)
            .await?
            .into_iter()
            .find(|result| result.job_id == job_id);
        let epochs = sqlx::query("SELECT * FROM epochs WHERE job_id = $1 ORDER BY epoch")
            .bind(job_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|e| Ok((e.int("attempt")?, columns::epoch_metrics(e)?)))
            .collect::<Result<_>>()?;
        let checkpoints = sqlx::query("SELECT * FROM checkpoints WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(columns::checkpoint)
            .collect::<Result<_>>()?;
        Ok(JobDetail { result, row, epochs, checkpoints })
    }

    async fn workers(&self, seen_since: Millis) -> Result<Vec<WorkerActivity>> {
        let mut workers: Vec<WorkerActivity> = sqlx::query(ACTIVE_WORKERS)
            .bind(seen_since)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(columns::worker_activity)
            .collect::<Result<_>>()?;
        let index: HashMap<i64, usize> = workers.iter().enumerate().map(|(i, w)| (w.worker_id, i)).collect();
        for slot in sqlx::query(RUNNING_SLOTS).fetch_all(self.reader()).await? {
            let worker = slot.big("worker_id")?;
            if let Some(&i) = index.get(&worker) {
                workers[i].slots.push(columns::slot_activity(&slot)?);
            }
        }
        Ok(workers)
    }

    async fn device_rates(&self) -> Result<Vec<DeviceRate>> {
        // By slot in SQL, by kind here: the kind is inside the label.
        let mut rates: Vec<DeviceRate> = Vec::new();
        for row in sqlx::query(DEVICE_RATES).fetch_all(self.reader()).await? {
            let label = row.text("device")?;
            let kind = DeviceRate::kind_of(&label);
            let (epochs, work, seconds): (u64, f64, f64) =
                (row.int("epochs")?, row.real("work")?, row.real("seconds")?);
            match rates.iter_mut().find(|rate| rate.device == kind) {
                Some(rate) => {
                    rate.epochs += epochs;
                    rate.work += work;
                    rate.seconds += seconds;
                }
                None => rates.push(DeviceRate { device: kind.to_string(), epochs, work, seconds }),
            }
        }
        rates.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(rates)
    }

    async fn sweep_results(&self, sweep: &str) -> Result<Vec<ResultRow>> {
        let sweep_id = Sql::sweep_id(self, sweep).await?;
        let mut rows = Vec::new();
        loop {
            let after = rows.last().map_or(0, |row: &ResultRow| row.job_id);
            let page = self.sweep_results_page(sweep_id, after, RESULT_PAGE_ROWS).await?;
            let done = page.len() < RESULT_PAGE_ROWS as usize;
            rows.extend(page);
            if done {
                return Ok(rows);
            }
        }
    }

    async fn sweep_epochs(&self, sweep: &str) -> Result<Vec<JobEpoch>> {
        let sweep_id = Sql::sweep_id(self, sweep).await?;
        let mut epochs = Vec::new();
        loop {
            let after = epochs.last().map_or((0, 0), |e: &JobEpoch| (e.job_id, e.metrics.epoch));
            let page = self.sweep_epochs_page(sweep_id, after, EPOCH_PAGE_ROWS).await?;
            let done = page.len() < EPOCH_PAGE_ROWS as usize;
            epochs.extend(page);
            if done {
                return Ok(epochs);
            }
        }
    }

    async fn sweep_results_page(&self, sweep_id: i64, after_job_id: i64, limit: u32) -> Result<Vec<ResultRow>> {
        sqlx::query(SWEEP_RESULTS)
            .bind(sweep_id)
            .bind(after_job_id)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(columns::result_row)
            .collect()
    }

    async fn sweep_epochs_page(&self, sweep_id: i64, after: (i64, u32), limit: u32) -> Result<Vec<JobEpoch>> {
        sqlx::query(SWEEP_EPOCHS)
            .bind(sweep_id)
            .bind(after.0)
            .bind(i64::from(after.1))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|row| Ok(JobEpoch { job_id: row.big("job_id")?, metrics: columns::epoch_metrics(row)? }))
            .collect()
    }
}

/// `($1, .., $columns), ($columns + 1, ..), ..` for `rows` rows, each
/// bind written by `placeholder`.
fn placeholders(placeholder: fn(usize) -> String, rows: usize, columns: usize) -> String {
    let row = |r: usize| {
        let binds: Vec<String> = (1..=columns).map(|c| placeholder(r * columns + c)).collect();
        format!("({})", binds.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// A count or seed in a signed 64-bit column. The spec's validation keeps
/// these within range (seeds at most `i64::MAX`, the sizes of networks it
/// accepts far below); saturating only keeps a bug from wrapping negative.
fn stored_int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_bind_once_in_order() {
        assert_eq!(placeholders(PostgresStore::placeholder, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(SqliteStore::placeholder, 1, 2), "(?, ?)");
    }

    #[test]
    fn a_job_insert_binds_each_column_it_names() {
        let (_, names) = JOB_INSERT.split_once('(').unwrap();
        assert_eq!(names.trim_end_matches(')').split(',').count(), JOB_INSERT_COLUMNS);
    }
}
