//! The SQL both dialects share. SQLite accepts Postgres-style `$N`
//! placeholders, `RETURNING`, `ON CONFLICT ... DO UPDATE` and the casts used
//! here, so each statement is written once; only the claim (SKIP LOCKED
//! versus an immediate transaction) and the way a write transaction begins
//! differ. [`impl_store!`] stamps the shared statements onto a backend,
//! which provides `reader`, `writer`, `begin_write` and the three operations
//! whose statements differ: `lease_impl`, `report_epoch_impl`, `complete_job_impl`.

/// The next job to lease: pending, in the spec, of an active sweep, highest
/// priority first. Served by the partial index `jobs_pending`.
pub(super) const NEXT_PENDING_JOB: &str = "SELECT j.id FROM jobs j JOIN sweeps s ON s.id = j.sweep_id \
     WHERE j.status = 'pending' AND j.in_spec = 1 AND s.state = 'active' \
     ORDER BY j.priority DESC, j.id LIMIT 1";

/// What a claim sets, from binds $1 (worker_id) .. $4 (now) and $5 (the
/// lease token's digest). The attempt grows at every claim: it orders
/// leases; the token's digest authorises the new one.
pub(super) const CLAIM_SET: &str = "status = 'running', attempt = attempt + 1, attempts_spent = attempts_spent + 1, \
     worker_id = $1, device = $2, lease_expires_at_ms = $3, started_at_ms = COALESCE(started_at_ms, $4), \
     lease_token_sha256 = $5";

/// What a leased job's row is read with: the job, its sweep's name and its
/// latest checkpoint. Followed by `FROM <jobs as j>` and [`JOB_JOINS`].
pub(super) const JOB_COLUMNS: &str = "SELECT j.*, s.name AS sweep_name, c.id AS ckpt_id, c.attempt AS ckpt_attempt, \
     c.epoch AS ckpt_epoch, c.sha256 AS ckpt_sha256, c.size_bytes AS ckpt_size";

pub(super) const JOB_JOINS: &str = "JOIN sweeps s ON s.id = j.sweep_id \
     LEFT JOIN checkpoints c ON c.id = (SELECT MAX(id) FROM checkpoints WHERE job_id = j.id)";

pub(super) const SWEEP_SUMMARY: &str = "
SELECT s.id, s.name, s.state, s.priority, s.dataset, s.created_at_ms,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT) AS running,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END), 0) AS BIGINT) AS succeeded,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'cancelled' THEN 1 ELSE 0 END), 0) AS BIGINT) AS cancelled,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'succeeded' THEN j.epochs ELSE j.epochs_done END), 0) AS BIGINT)
           AS epochs_done,
       CAST(COALESCE(SUM(j.epochs), 0) AS BIGINT) AS epochs_total
FROM sweeps s
LEFT JOIN jobs j ON j.sweep_id = s.id AND j.in_spec = 1";

pub(super) const SWEEP_EPOCH_SECONDS: &str = "
SELECT CAST(AVG(e.epoch_seconds) AS DOUBLE PRECISION) AS mean_epoch_seconds
FROM epochs e JOIN jobs j ON j.id = e.job_id
WHERE j.sweep_id = $1";

pub(super) const SWEEP_GROUP_BY: &str = "GROUP BY s.id, s.name, s.state, s.priority, s.dataset, s.created_at_ms";

/// An epoch row from binds $1 (job_id) .. $11 (recorded_at_ms).
pub(super) const EPOCH_VALUES: &str = "(job_id, epoch, attempt, train_loss, train_error, test_loss, test_error, lr, \
     epoch_seconds, images_per_second, recorded_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The upsert of an epoch row: a resumed attempt replaces the earlier
/// attempt's row for the same epoch.
pub(super) const EPOCH_UPDATE: &str = "attempt = excluded.attempt, train_loss = excluded.train_loss, \
     train_error = excluded.train_error, test_loss = excluded.test_loss, test_error = excluded.test_error, \
     lr = excluded.lr, epoch_seconds = excluded.epoch_seconds, images_per_second = excluded.images_per_second, \
     recorded_at_ms = excluded.recorded_at_ms";

/// The job columns of a submission, in insertion order.
pub(super) const JOB_INSERT: &str = "INSERT INTO jobs (sweep_id, cell_hash, block, deepening, blocks_per_group, depth, \
     depth_convention, width, dropout, dataset, seed, epochs, batch_size, lr, lr_milestones, lr_gamma, momentum, \
     nesterov, weight_decay, reset_momentum_on_drop, train_subset, test_subset, augment, checkpoint_every, \
     precision, config_json, params, forward_macs, priority, max_attempts, created_at_ms) ";

/// One page of a sweep's jobs ($1, its id) after job $2, at most $3 rows,
/// with the sweep's name and the time of each job's recorded epochs, in job
/// order (the spec's cell order).
pub(super) const SWEEP_RESULTS: &str = "SELECT j.*, s.name AS sweep_name, \
       (SELECT CAST(AVG(e.epoch_seconds) AS DOUBLE PRECISION) FROM epochs e WHERE e.job_id = j.id) \
           AS mean_epoch_seconds, \
       (SELECT CAST(SUM(e.epoch_seconds) AS DOUBLE PRECISION) FROM epochs e WHERE e.job_id = j.id) \
           AS recorded_seconds \
     FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE j.sweep_id = $1 AND j.id > $2 ORDER BY j.id LIMIT $3";

/// One page of a sweep's epochs ($1, its id), after job $2's epoch $3,
/// at most $4 rows: by job, then epoch (the epochs' primary key order).
pub(super) const SWEEP_EPOCHS: &str = "SELECT e.* FROM epochs e JOIN jobs j ON j.id = e.job_id \
     WHERE j.sweep_id = $1 AND (e.job_id > $2 OR (e.job_id = $2 AND e.epoch > $3)) \
     ORDER BY e.job_id, e.epoch LIMIT $4";

/// Rows per page when a whole sweep's results or epochs are read.
pub(super) const RESULT_PAGE_ROWS: u32 = 500;
pub(super) const EPOCH_PAGE_ROWS: u32 = 5_000;

/// Rows per INSERT: 31 binds each stays under both dialects' bind limits.
pub(super) const INSERT_CHUNK: usize = 500;

/// Generates `impl Store` for a backend type whose inherent methods are
/// `reader()`, `writer()`, `begin_write()`, `lease_impl`, `report_epoch_impl`
/// and `complete_job_impl`.
macro_rules! impl_store {
    ($store:ty, $db:ty, $row:ty) => {
        use std::collections::HashMap;

        use sqlx::Row as _;

        use crate::spec::Recipe;
        use crate::store::common::*;
        use crate::store::*;

        fn int<T: TryFrom<i64>>(row: &$row, column: &str) -> Result<T> {
            let value: i64 = row.try_get(column)?;
            T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value} is out of range")))
        }

        fn precision(row: &$row) -> Result<widesweep_arch::Precision> {
            let text: String = row.try_get("precision")?;
            text.parse().map_err(|e| StoreError::Corrupt(format!("precision: {e}")))
        }

        fn opt_int<T: TryFrom<i64>>(row: &$row, column: &str) -> Result<Option<T>> {
            let value: Option<i64> = row.try_get(column)?;
            value
                .map(|v| T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} = {v} is out of range"))))
                .transpose()
        }

        fn summary_from_row(row: &$row, mean_epoch_seconds: Option<f64>) -> Result<SweepSummary> {
            let state: String = row.try_get("state")?;
            Ok(SweepSummary {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                state: SweepState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("sweep state {state:?}")))?,
                priority: int(row, "priority")?,
                dataset: row.try_get("dataset")?,
                counts: JobCounts {
                    pending: int(row, "pending")?,
                    running: int(row, "running")?,
                    succeeded: int(row, "succeeded")?,
                    failed: int(row, "failed")?,
                    cancelled: int(row, "cancelled")?,
                },
                epochs_done: int(row, "epochs_done")?,
                epochs_total: int(row, "epochs_total")?,
                mean_epoch_seconds,
                created_at_ms: row.try_get("created_at_ms")?,
            })
        }

        fn job_status(row: &$row) -> Result<JobStatus> {
            let text: String = row.try_get("status")?;
            JobStatus::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("job status {text:?}")))
        }

        fn job_row_from_row(row: &$row) -> Result<JobRow> {
            Ok(JobRow {
                job_id: row.try_get("id")?,
                sweep_id: row.try_get("sweep_id")?,
                cell_hash: row.try_get("cell_hash")?,
                seed: int(row, "seed")?,
                status: job_status(row)?,
                in_spec: row.try_get::<i64, _>("in_spec")? != 0,
                attempt: int(row, "attempt")?,
                attempts_spent: int(row, "attempts_spent")?,
                max_attempts: int(row, "max_attempts")?,
                worker_id: row.try_get("worker_id")?,
                lease_expires_at_ms: row.try_get("lease_expires_at_ms")?,
                epochs_done: int(row, "epochs_done")?,
                final_test_error: row.try_get("final_test_error")?,
                last_error: row.try_get("last_error")?,
            })
        }

        /// A job's hyperparameters and recipe from its `jobs` row.
        fn job_config_from_row(row: &$row) -> Result<JobConfig> {
            let milestones: String = row.try_get("lr_milestones")?;
            let lr_milestones: Vec<u32> = serde_json::from_str(&milestones)
                .map_err(|e| StoreError::Corrupt(format!("lr_milestones {milestones:?}: {e}")))?;
            Ok(JobConfig {
                block: row.try_get("block")?,
                deepening: int(row, "deepening")?,
                blocks_per_group: int(row, "blocks_per_group")?,
                depth: int(row, "depth")?,
                width: int(row, "width")?,
                dropout: row.try_get("dropout")?,
                dataset: row.try_get("dataset")?,
                seed: int(row, "seed")?,
                recipe: Recipe {
                    epochs: int(row, "epochs")?,
                    batch_size: int(row, "batch_size")?,
                    lr: row.try_get("lr")?,
                    lr_milestones,
                    lr_gamma: row.try_get("lr_gamma")?,
                    momentum: row.try_get("momentum")?,
                    nesterov: row.try_get::<i64, _>("nesterov")? != 0,
                    weight_decay: row.try_get("weight_decay")?,
                    reset_momentum_on_drop: row.try_get::<i64, _>("reset_momentum_on_drop")? != 0,
                    train_subset: int(row, "train_subset")?,
                    test_subset: int(row, "test_subset")?,
                    augment: row.try_get::<i64, _>("augment")? != 0,
                    checkpoint_every: int(row, "checkpoint_every")?,
                    precision: precision(row)?,
                },
            })
        }

        pub(super) fn leased_from_row(row: &$row, lease_digest: LeaseDigest) -> Result<LeasedJob> {
            let checkpoint = match opt_int::<i64>(row, "ckpt_id")? {
                Some(checkpoint_id) => Some(CheckpointRef {
                    checkpoint_id,
                    job_id: row.try_get("id")?,
                    attempt: int(row, "ckpt_attempt")?,
                    epoch: int(row, "ckpt_epoch")?,
                    size_bytes: int(row, "ckpt_size")?,
                    sha256: row.try_get("ckpt_sha256")?,
                }),
                None => None,
            };
            Ok(LeasedJob {
                job_id: row.try_get("id")?,
                attempt: int(row, "attempt")?,
                max_attempts: int(row, "max_attempts")?,
                sweep_name: row.try_get("sweep_name")?,
                cell_hash: row.try_get("cell_hash")?,
                config: job_config_from_row(row)?,
                lease_expires_at_ms: row.try_get("lease_expires_at_ms")?,
                checkpoint,
                lease_digest,
            })
        }

        /// A row of [`SWEEP_RESULTS`].
        fn result_from_row(row: &$row) -> Result<ResultRow> {
            Ok(ResultRow {
                job_id: row.try_get("id")?,
                sweep: row.try_get("sweep_name")?,
                cell_hash: row.try_get("cell_hash")?,
                config: job_config_from_row(row)?,
                depth_convention: row.try_get("depth_convention")?,
                params: int(row, "params")?,
                forward_macs: int(row, "forward_macs")?,
                in_spec: row.try_get::<i64, _>("in_spec")? != 0,
                status: job_status(row)?,
                attempt: int(row, "attempt")?,
                epochs_done: int(row, "epochs_done")?,
                final_train_loss: row.try_get("final_train_loss")?,
                final_train_error: row.try_get("final_train_error")?,
                final_test_loss: row.try_get("final_test_loss")?,
                final_test_error: row.try_get("final_test_error")?,
                best_test_error: row.try_get("best_test_error")?,
                train_seconds: row.try_get("train_seconds")?,
                mean_epoch_seconds: row.try_get("mean_epoch_seconds")?,
                recorded_seconds: row.try_get::<Option<f64>, _>("recorded_seconds")?.unwrap_or(0.0),
                created_at_ms: row.try_get("created_at_ms")?,
                started_at_ms: row.try_get("started_at_ms")?,
                finished_at_ms: row.try_get("finished_at_ms")?,
                last_error: row.try_get("last_error")?,
            })
        }

        fn epoch_from_row(row: &$row) -> Result<EpochMetrics> {
            Ok(EpochMetrics {
                epoch: int(row, "epoch")?,
                train_loss: row.try_get("train_loss")?,
                train_error: row.try_get("train_error")?,
                test_loss: row.try_get("test_loss")?,
                test_error: row.try_get("test_error")?,
                lr: row.try_get("lr")?,
                epoch_seconds: row.try_get("epoch_seconds")?,
                images_per_second: row.try_get("images_per_second")?,
            })
        }

        fn sweep_filter(sweep: &str) -> (&'static str, Option<i64>) {
            match sweep.parse::<i64>() {
                Ok(id) => (" WHERE s.id = $1 ", Some(id)),
                Err(_) => (" WHERE s.name = $1 ", None),
            }
        }

        /// Binds an epoch row as $1 (job_id) .. $11 (recorded_at_ms), the
        /// order of [`EPOCH_VALUES`].
        fn bind_epoch<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            fence: Fence,
            m: &EpochMetrics,
            now: Millis,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
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

        /// What a fenced row lock found: the job's length and progress.
        struct HeldJob {
            epochs: u32,
            epochs_done: u32,
        }

        /// Stores an epoch's metrics, replacing an earlier attempt's row for
        /// the same epoch and dropping its rows beyond it, so that a job's
        /// curve runs 1..E without a gap or a repeat after a resume.
        async fn upsert_epoch(
            tx: &mut sqlx::Transaction<'static, $db>,
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
            bind_epoch(sqlx::query(&sql), fence, m, now).execute(&mut **tx).await?;
            Ok(())
        }

        impl $store {
            /// Explains why a fenced write matched no row: unknown job,
            /// cancelled job, an attempt that no longer holds the lease, a
            /// token that is not the lease's, or (for `epoch`) an epoch
            /// outside the job's 1..=epochs or past the next one due.
            pub(super) async fn fence_error<'e, E>(executor: E, fence: Fence, epoch: Option<u32>) -> StoreError
            where
                E: sqlx::Executor<'e, Database = $db>,
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
                let status = match job_status(&row) {
                    Ok(status) => status,
                    Err(e) => return e,
                };
                let state: String = row.try_get("state").unwrap_or_default();
                if status == JobStatus::Cancelled || state == SweepState::Cancelled.name() {
                    return StoreError::Cancelled {
                        job_id: fence.job_id,
                        sweep: row.try_get("name").unwrap_or_default(),
                    };
                }
                let current: u32 = int(&row, "attempt").unwrap_or_default();
                if status != JobStatus::Running || current != fence.attempt {
                    return StoreError::StaleAttempt { job_id: fence.job_id, attempt: fence.attempt, current, status };
                }
                let digest: Option<String> = row.try_get("lease_token_sha256").unwrap_or_default();
                if digest.as_deref() != Some(fence.token.hex().as_str()) {
                    return StoreError::WrongLeaseToken { job_id: fence.job_id, attempt: fence.attempt };
                }
                match epoch {
                    Some(epoch) => StoreError::EpochOutOfRange {
                        job_id: fence.job_id,
                        epoch,
                        epochs: int(&row, "epochs").unwrap_or_default(),
                        epochs_done: int(&row, "epochs_done").unwrap_or_default(),
                    },
                    // Every condition of the fence holds now: the row changed
                    // between the write and this read (a concurrent caller).
                    None => StoreError::StaleAttempt { job_id: fence.job_id, attempt: fence.attempt, current, status },
                }
            }

            /// Renews the lease of a fenced job, refusing stale attempts.
            async fn touch<'e, E>(executor: E, fence: Fence, expires: Millis) -> Result<()>
            where
                E: sqlx::Executor<'e, Database = $db> + Copy,
            {
                let updated = sqlx::query(
                    "UPDATE jobs SET lease_expires_at_ms = $3 \
                     WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $4",
                )
                .bind(fence.job_id)
                .bind(i64::from(fence.attempt))
                .bind(expires)
                .bind(fence.token.hex())
                .execute(executor)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(Self::fence_error(executor, fence, None).await);
                }
                Ok(())
            }

            /// Checks the fence inside a write transaction and locks the
            /// job's row until it ends (`FOR UPDATE` on PostgreSQL; SQLite's
            /// immediate transaction holds the database's write lock).
            async fn lock_fenced(tx: &mut sqlx::Transaction<'static, $db>, fence: Fence) -> Result<HeldJob> {
                let sql = format!(
                    "SELECT epochs, epochs_done FROM jobs \
                     WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $3{}",
                    Self::LOCK_ROW
                );
                let row = sqlx::query(&sql)
                    .bind(fence.job_id)
                    .bind(i64::from(fence.attempt))
                    .bind(fence.token.hex())
                    .fetch_optional(&mut **tx)
                    .await?;
                match row {
                    Some(row) => Ok(HeldJob { epochs: int(&row, "epochs")?, epochs_done: int(&row, "epochs_done")? }),
                    None => Err(Self::fence_error(&mut **tx, fence, None).await),
                }
            }

            async fn summary(&self, sweep: &str) -> Result<SweepSummary> {
                let (filter, id) = sweep_filter(sweep);
                let sql = format!("{SWEEP_SUMMARY}{filter}{SWEEP_GROUP_BY}");
                let query = sqlx::query(&sql);
                let query = match id {
                    Some(id) => query.bind(id),
                    None => query.bind(sweep),
                };
                let row = query
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or_else(|| StoreError::SweepNotFound(sweep.to_string()))?;
                let sweep_id: i64 = row.try_get("id")?;
                let mean: Option<f64> =
                    sqlx::query_scalar(SWEEP_EPOCH_SECONDS).bind(sweep_id).fetch_one(self.reader()).await?;
                summary_from_row(&row, mean)
            }

            /// Deletes the job's checkpoints older than `keep_id` and returns
            /// the digests no row references any more.
            pub(super) async fn prune_checkpoints(
                tx: &mut sqlx::Transaction<'static, $db>,
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
                        .bind(&sha)
                        .fetch_one(&mut **tx)
                        .await?;
                    if refs == 0 && !orphans.contains(&sha) {
                        orphans.push(sha);
                    }
                }
                Ok(orphans)
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                Self::BACKEND
            }

            async fn clock_ms(&self) -> Result<Millis> {
                self.clock_impl().await
            }

            async fn submit_sweep(&self, sweep: &NewSweep<'_>, now: Millis) -> Result<SubmitOutcome> {
                let mut tx = self.begin_write().await?;
                // Insert-or-keep, then lock: two submits of the same new sweep
                // meet at the unique name (the second waits for the first to
                // commit, then finds its row), and a cancel, which locks the
                // same row, runs wholly before or wholly after this submit.
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
                let row = sqlx::query(&format!("SELECT id, state FROM sweeps WHERE name = $1{}", Self::LOCK_ROW))
                    .bind(sweep.name)
                    .fetch_one(&mut *tx)
                    .await?;
                let state: String = row.try_get("state")?;
                if state == SweepState::Cancelled.name() {
                    return Err(StoreError::SweepConflict {
                        sweep: sweep.name.to_string(),
                        message: "was cancelled; submit the spec under a new name".to_string(),
                    });
                }
                let sweep_id: i64 = row.try_get("id")?;
                let stored: HashMap<String, bool> = sqlx::query("SELECT cell_hash, in_spec FROM jobs WHERE sweep_id = $1")
                    .bind(sweep_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get("cell_hash")?, row.try_get::<i64, _>("in_spec")? != 0)))
                    .collect::<Result<_>>()?;
                let mut in_spec = std::collections::HashSet::with_capacity(sweep.jobs.len());
                let mut new_jobs = Vec::new();
                let mut readded = Vec::new();
                for job in sweep.jobs {
                    in_spec.insert(job.cell_hash.as_str());
                    match stored.get(&job.cell_hash) {
                        None => new_jobs.push(job),
                        Some(false) => readded.push(job.cell_hash.as_str()),
                        Some(true) => {}
                    }
                }
                let dropped: Vec<&str> = stored
                    .iter()
                    .filter(|(hash, in_spec_now)| **in_spec_now && !in_spec.contains(hash.as_str()))
                    .map(|(hash, _)| hash.as_str())
                    .collect();

                let priority = sweep.priority as i64;
                for chunk in new_jobs.chunks(INSERT_CHUNK) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(JOB_INSERT);
                    insert.push_values(chunk, |mut row, job| {
                        let recipe = &job.recipe;
                        row.push_bind(sweep_id)
                            .push_bind(job.cell_hash.clone())
                            .push_bind(job.cell.block.to_string())
                            .push_bind(job.cell.block.deepening() as i64)
                            .push_bind(job.cell.blocks_per_group as i64)
                            .push_bind(job.cell.depth as i64)
                            .push_bind(job.depth_convention.name())
                            .push_bind(job.cell.width as i64)
                            .push_bind(job.cell.dropout)
                            .push_bind(job.dataset.name())
                            .push_bind(job.seed as i64)
                            .push_bind(recipe.epochs as i64)
                            .push_bind(recipe.batch_size as i64)
                            .push_bind(recipe.lr)
                            .push_bind(serde_json::to_string(&recipe.lr_milestones).expect("milestones serialise"))
                            .push_bind(recipe.lr_gamma)
                            .push_bind(recipe.momentum)
                            .push_bind(recipe.nesterov as i64)
                            .push_bind(recipe.weight_decay)
                            .push_bind(recipe.reset_momentum_on_drop as i64)
                            .push_bind(recipe.train_subset as i64)
                            .push_bind(recipe.test_subset as i64)
                            .push_bind(recipe.augment as i64)
                            .push_bind(recipe.checkpoint_every as i64)
                            .push_bind(recipe.precision.name())
                            .push_bind(job.canonical_json())
                            .push_bind(job.params as i64)
                            .push_bind(job.forward_macs as i64)
                            .push_bind(priority)
                            .push_bind(sweep.max_attempts as i64)
                            .push_bind(now);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                for (hash, flag) in dropped.iter().map(|h| (*h, 0i64)).chain(readded.iter().map(|h| (*h, 1i64))) {
                    sqlx::query("UPDATE jobs SET in_spec = $3 WHERE sweep_id = $1 AND cell_hash = $2")
                        .bind(sweep_id)
                        .bind(hash)
                        .bind(flag)
                        .execute(&mut *tx)
                        .await?;
                }
                if !new_jobs.is_empty() || !dropped.is_empty() || !readded.is_empty() {
                    sqlx::query("UPDATE sweeps SET spec_toml = $2, updated_at_ms = $3 WHERE id = $1")
                        .bind(sweep_id)
                        .bind(sweep.spec_toml)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(SubmitOutcome {
                    sweep_id,
                    new: new_jobs.len() as u64,
                    existing: (sweep.jobs.len() - new_jobs.len()) as u64,
                    dropped: dropped.len() as u64,
                })
            }

            async fn sweep(&self, sweep: &str) -> Result<SweepSummary> {
                self.summary(sweep).await
            }

            async fn list_sweeps(&self) -> Result<Vec<SweepSummary>> {
                let names: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sweeps ORDER BY id DESC").fetch_all(self.reader()).await?;
                let mut sweeps = Vec::with_capacity(names.len());
                for name in names {
                    sweeps.push(self.summary(&name).await?);
                }
                Ok(sweeps)
            }

            async fn steer_sweep(&self, sweep: &str, action: SweepAction, now: Millis) -> Result<SweepSummary> {
                let mut tx = self.begin_write().await?;
                // The state is read under the row's lock, in the transaction
                // that changes it: a cancel racing a pause or resume cannot be
                // undone by it.
                let (filter, id) = sweep_filter(sweep);
                let sql = format!("SELECT s.id, s.name, s.state FROM sweeps s{filter}{}", Self::LOCK_ROW);
                let query = sqlx::query(&sql);
                let query = match id {
                    Some(id) => query.bind(id),
                    None => query.bind(sweep),
                };
                let row =
                    query.fetch_optional(&mut *tx).await?.ok_or_else(|| StoreError::SweepNotFound(sweep.to_string()))?;
                let sweep_id: i64 = row.try_get("id")?;
                let name: String = row.try_get("name")?;
                let state: String = row.try_get("state")?;
                let state =
                    SweepState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("sweep state {state:?}")))?;
                let target = match (state, action) {
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
                self.summary(&sweep_id.to_string()).await
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
                self.lease_impl(worker_id, device, token, now + lease_ms, now).await.map_err(|error| match &error {
                    // jobs.worker_id references workers: an id nobody registered.
                    StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                        StoreError::WorkerNotFound(worker_id)
                    }
                    _ => error,
                })
            }

            async fn report_epoch(&self, fence: Fence, metrics: &EpochMetrics, lease_ms: i64, now: Millis) -> Result<Millis> {
                let expires = now + lease_ms;
                self.report_epoch_impl(fence, metrics, expires, now).await?;
                Ok(expires)
            }

            async fn heartbeat(&self, fence: Fence, lease_ms: i64, now: Millis) -> Result<Millis> {
                let expires = now + lease_ms;
                Self::touch(self.writer(), fence, expires).await?;
                Ok(expires)
            }

            async fn complete_job(&self, fence: Fence, result: &JobResult, now: Millis) -> Result<Vec<String>> {
                let m = &result.final_metrics;
                let mut tx = self.begin_write().await?;
                let held = Self::lock_fenced(&mut tx, fence).await?;
                let invalid = |field: &'static str, message: String| StoreError::InvalidReport {
                    job_id: fence.job_id,
                    field,
                    message,
                };
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
                    .all(|(column, value)| row.try_get::<f64, _>(column).is_ok_and(|stored| stored == value));
                    if !same {
                        return Err(invalid(
                            "final_metrics",
                            format!("differ from epoch {} as this attempt reported it", m.epoch),
                        ));
                    }
                }
                upsert_epoch(&mut tx, fence, m, now).await?;
                // The best test error is the curve's: computed from the
                // recorded epochs, not taken from the caller.
                let best: Option<f64> = sqlx::query_scalar(
                    "SELECT CAST(MIN(test_error) AS DOUBLE PRECISION) FROM epochs WHERE job_id = $1",
                )
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
                let orphans = Self::prune_checkpoints(&mut tx, fence.job_id, last).await?;
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
                    Some(status) => Ok(status == "pending"),
                    None => Err(Self::fence_error(self.writer(), fence, None).await),
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
                if updated.rows_affected() == 0 {
                    return Err(Self::fence_error(self.writer(), fence, None).await);
                }
                Ok(())
            }

            async fn reap_expired(&self, now: Millis) -> Result<u64> {
                let updated = sqlx::query(
                    "UPDATE jobs SET \
                       status = CASE WHEN attempts_spent < max_attempts THEN 'pending' ELSE 'failed' END, \
                       finished_at_ms = CASE WHEN attempts_spent < max_attempts THEN NULL ELSE $1 END, \
                       last_error = 'lease of attempt ' || attempt || ' expired', \
                       worker_id = NULL, lease_expires_at_ms = NULL, lease_token_sha256 = NULL \
                     WHERE status = 'running' AND lease_expires_at_ms < $1",
                )
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(updated.rows_affected())
            }

            async fn add_checkpoint(&self, fence: Fence, checkpoint: &NewCheckpoint, now: Millis) -> Result<(CheckpointRef, Vec<String>)> {
                let mut tx = self.begin_write().await?;
                // The fence locks the job's row until commit, so the reaper
                // and a new lease wait for this insert and its pruning: a
                // stale attempt cannot slip in between and prune the new
                // attempt's checkpoint.
                let held = Self::lock_fenced(&mut tx, fence).await?;
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
                .bind(&checkpoint.sha256)
                .bind(i64::try_from(checkpoint.size_bytes).map_err(|_| StoreError::InvalidReport {
                    job_id: fence.job_id,
                    field: "size_bytes",
                    message: format!("{} is too large", checkpoint.size_bytes),
                })?)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let orphans = Self::prune_checkpoints(&mut tx, fence.job_id, Some(checkpoint_id)).await?;
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
                    return Err(Self::fence_error(self.reader(), fence, None).await);
                }
                let row = sqlx::query("SELECT * FROM checkpoints WHERE id = $1 AND job_id = $2")
                    .bind(checkpoint_id)
                    .bind(fence.job_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or(StoreError::CheckpointNotFound { job_id: fence.job_id, checkpoint_id })?;
                Ok(CheckpointRef {
                    checkpoint_id,
                    job_id: fence.job_id,
                    attempt: int(&row, "attempt")?,
                    epoch: int(&row, "epoch")?,
                    size_bytes: int(&row, "size_bytes")?,
                    sha256: row.try_get("sha256")?,
                })
            }

            async fn job(&self, job_id: i64) -> Result<JobRow> {
                let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
                    .bind(job_id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or(StoreError::JobNotFound(job_id))?;
                job_row_from_row(&row)
            }

            async fn sweep_jobs(&self, sweep: &str) -> Result<Vec<JobRow>> {
                let summary = self.summary(sweep).await?;
                sqlx::query("SELECT * FROM jobs WHERE sweep_id = $1 ORDER BY id")
                    .bind(summary.id)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(job_row_from_row)
                    .collect()
            }

            async fn job_errors(&self, sweep: &str, limit: u32) -> Result<Vec<JobRow>> {
                let summary = self.summary(sweep).await?;
                sqlx::query(
                    "SELECT * FROM jobs WHERE sweep_id = $1 AND last_error IS NOT NULL \
                     AND status IN ('pending', 'running', 'failed') ORDER BY id LIMIT $2",
                )
                .bind(summary.id)
                .bind(limit as i64)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(job_row_from_row)
                .collect()
            }

            async fn job_epochs(&self, job_id: i64) -> Result<Vec<EpochMetrics>> {
                sqlx::query("SELECT * FROM epochs WHERE job_id = $1 ORDER BY epoch")
                    .bind(job_id)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(epoch_from_row)
                    .collect()
            }

            async fn sweep_results(&self, sweep: &str) -> Result<Vec<ResultRow>> {
                let sweep_id = self.summary(sweep).await?.id;
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
                let sweep_id = self.summary(sweep).await?.id;
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
                    .map(result_from_row)
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
                    .map(|row| Ok(JobEpoch { job_id: row.try_get("job_id")?, metrics: epoch_from_row(row)? }))
                    .collect()
            }
        }

    };
}

pub(super) use impl_store;
