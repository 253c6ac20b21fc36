//! Leasing and fenced writes: what workers do to the queue. Every write
//! about a leased job names the attempt that holds the lease and the lease
//! secret's digest, and is refused unless both still match.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::columns::{self, Columns};
use super::dialect::Dialect;
use super::generic::{Ending, Sql};
use super::statements::*;
use super::*;

/// What workers do to the queue: register, lease, report, finish; and the
/// reaper that returns expired leases.
#[async_trait::async_trait]
pub trait Leases: Send + Sync + 'static {
    /// The time by the database's clock: the one clock that every
    /// coordinator sharing the database agrees on (the system clock for
    /// SQLite, whose coordinators share one machine).
    async fn clock_ms(&self) -> Result<Millis>;
    async fn register_worker(&self, hostname: &str, devices: &[String], version: &str, now: Millis) -> Result<i64>;
    /// Stores the digest of the worker's own secret (see `RegisterWorker`).
    async fn set_worker_secret(&self, worker_id: i64, secret: LeaseDigest) -> Result<()>;
    /// The digest of the worker's secret (hex), `None` for a worker
    /// registered without one; WorkerNotFound for an unknown id.
    async fn worker_secret(&self, worker_id: i64) -> Result<Option<String>>;
    /// Claims the next pending job of the highest-priority active sweep
    /// atomically; `None` when there is none.
    /// The lease is authorised by `token`, the digest of the secret the
    /// caller hands to the worker; every fenced call must present it.
    async fn lease_job(
        &self,
        worker_id: i64,
        device: &str,
        token: LeaseDigest,
        lease_ms: i64,
        now: Millis,
    ) -> Result<Option<LeasedJob>>;
    /// Records an epoch (replacing an earlier attempt's row for the same
    /// epoch and dropping its later ones) and renews the lease. The epoch
    /// must lie in 1..=epochs of the job and follow the reported ones
    /// without a gap.
    async fn report_epoch(&self, fence: Fence, metrics: &EpochMetrics, lease_ms: i64, now: Millis) -> Result<Millis>;
    async fn heartbeat(&self, fence: Fence, lease_ms: i64, now: Millis) -> Result<Millis>;
    /// Marks the job succeeded; returns checkpoint digests no longer
    /// referenced (all of the job's checkpoints but the last). The final
    /// metrics must be those of the job's last epoch (and equal that epoch's
    /// report when this attempt made one); the best test error stored is the
    /// recorded curve's minimum.
    async fn complete_job(&self, fence: Fence, result: &JobResult, now: Millis) -> Result<Vec<String>>;
    /// Returns whether the job went back to pending. The attempt is kept
    /// in `attempts` with its error and class. A machine's error does not
    /// spend the job's attempts; the job fails for good after machine errors
    /// on [`MACHINE_ERROR_HOSTS`] hosts, or three times its attempts of them.
    async fn fail_attempt(&self, fence: Fence, failure: &Failure<'_>, now: Millis) -> Result<bool>;
    /// [`Self::fail_attempt`] with an error of unknown class.
    async fn fail_job(&self, fence: Fence, error: &str, retryable: bool, now: Millis) -> Result<bool> {
        self.fail_attempt(fence, &Failure { error, retryable, class: ErrorClass::Unknown }, now).await
    }
    /// Hands the job back to pending without spending an attempt.
    async fn release_job(&self, fence: Fence, now: Millis) -> Result<()>;
    /// Records a slot's own quarantine until `until` for `reason` (shown,
    /// not enforced: the worker's other slots may lease).
    async fn report_quarantine(&self, worker_id: i64, reason: &str, until: Millis) -> Result<()>;
    /// Lifts a worker's quarantine (`widesweep worker release ID`).
    async fn release_worker(&self, worker_id: i64) -> Result<()>;
    /// Returns expired leases to pending (or failed past max_attempts).
    async fn reap_expired(&self, now: Millis) -> Result<u64>;
}

#[async_trait::async_trait]
impl<D> Leases for D
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
    async fn clock_ms(&self) -> Result<Millis> {
        self.clock().await
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

    async fn set_worker_secret(&self, worker_id: i64, secret: LeaseDigest) -> Result<()> {
        let updated = sqlx::query("UPDATE workers SET secret_sha256 = $2 WHERE id = $1")
            .bind(worker_id)
            .bind(secret.hex())
            .execute(self.writer())
            .await?;
        if D::rows_affected(&updated) == 0 {
            return Err(StoreError::WorkerNotFound(worker_id));
        }
        Ok(())
    }

    async fn worker_secret(&self, worker_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT secret_sha256 FROM workers WHERE id = $1")
            .bind(worker_id)
            .fetch_optional(self.worker_reader())
            .await?
            .ok_or(StoreError::WorkerNotFound(worker_id))?;
        row.opt_text("secret_sha256")
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
        let provenance = result.provenance.as_ref().map(|p| p.to_json()).unwrap_or_default();
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
             train_seconds = $9, last_error = NULL, provenance_json = NULLIF($10, '') WHERE id = $1",
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
        .bind(provenance.as_str())
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
        let ending = Ending::Succeeded { test_error: m.test_error, provenance: &provenance };
        Sql::<D>::end_attempt(&mut tx, fence, now, ending).await?;
        tx.commit().await?;
        Ok(orphans)
    }

    async fn fail_attempt(&self, fence: Fence, failure: &Failure<'_>, now: Millis) -> Result<bool> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            // Hosts with a machine's error on this job, this attempt's included.
            let hosts = "(SELECT COUNT(DISTINCT a.hostname) FROM attempts a WHERE a.job_id = jobs.id \
                 AND (a.error_class = 'machine' OR a.attempt = jobs.attempt))";
            let again = format!(
                "$3 = 1 AND CASE WHEN $7 = 'machine' \
                   THEN machine_failures + 1 < {MACHINE_ERROR_HOSTS} * max_attempts AND {hosts} < {MACHINE_ERROR_HOSTS} \
                   ELSE attempts_spent < max_attempts END"
            );
            format!(
                "UPDATE jobs SET \
                   status = CASE WHEN {again} THEN 'pending' ELSE 'failed' END, \
                   finished_at_ms = CASE WHEN {again} THEN NULL ELSE $4 END, \
                   attempts_spent = attempts_spent - (CASE WHEN $7 = 'machine' THEN 1 ELSE 0 END), \
                   machine_failures = machine_failures + (CASE WHEN $7 = 'machine' THEN 1 ELSE 0 END), \
                   last_error = CASE WHEN $7 = 'machine' AND NOT ({again}) AND $3 = 1 \
                     THEN 'a machine error on ' || {hosts} || ' host(s) (' || (machine_failures + 1) || \
                          ' attempts), the last: ' || $5 ELSE $5 END, \
                   worker_id = NULL, lease_expires_at_ms = NULL, lease_token_sha256 = NULL \
                 WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $6 \
                 RETURNING status"
            )
        });
        let mut tx = self.begin_write().await?;
        let status: Option<String> = sqlx::query_scalar(&SQL)
            .bind(fence.job_id)
            .bind(i64::from(fence.attempt))
            .bind(i64::from(failure.retryable))
            .bind(now)
            .bind(failure.error)
            .bind(fence.token.hex())
            .bind(failure.class.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(status) = status else {
            drop(tx);
            return Err(Sql::<D>::fence_error(self.writer(), fence, None).await);
        };
        Sql::<D>::end_attempt(&mut tx, fence, now, Ending::Failed(failure.class, failure.error)).await?;
        if status != JobStatus::Pending.as_str() {
            sqlx::query(&SPEND_FAILURE_BUDGET).bind(fence.job_id).bind(now).execute(&mut *tx).await?;
        }
        if failure.class == ErrorClass::Machine {
            let quarantined = sqlx::query(&QUARANTINE_WORKER)
                .bind(fence.job_id)
                .bind(i64::from(fence.attempt))
                .bind(now + QUARANTINE_MS)
                .execute(&mut *tx)
                .await?;
            if D::rows_affected(&quarantined) > 0 {
                tracing::warn!(
                    job_id = fence.job_id,
                    "a worker failed {QUARANTINE_AFTER_JOBS} jobs in a row with machine errors: quarantined"
                );
            }
        }
        tx.commit().await?;
        if status == JobStatus::Pending.as_str() {
            return Ok(true);
        }
        Sql::add_seeds_after(self, fence.job_id).await;
        Ok(false)
    }

    async fn release_job(&self, fence: Fence, now: Millis) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'pending', attempts_spent = attempts_spent - 1, worker_id = NULL, \
             lease_expires_at_ms = NULL, lease_token_sha256 = NULL \
             WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $3",
        )
        .bind(fence.job_id)
        .bind(i64::from(fence.attempt))
        .bind(fence.token.hex())
        .execute(&mut *tx)
        .await?;
        if D::rows_affected(&updated) == 0 {
            drop(tx);
            return Err(Sql::<D>::fence_error(self.writer(), fence, None).await);
        }
        Sql::<D>::end_attempt(&mut tx, fence, now, Ending::Released).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn report_quarantine(&self, worker_id: i64, reason: &str, until: Millis) -> Result<()> {
        let quarantined =
            sqlx::query("UPDATE workers SET reported_quarantine = $2, reported_until_ms = $3 WHERE id = $1")
                .bind(worker_id)
                .bind(reason)
                .bind(until)
                .execute(self.writer())
                .await?;
        if D::rows_affected(&quarantined) == 0 {
            return Err(StoreError::WorkerNotFound(worker_id));
        }
        Ok(())
    }

    async fn release_worker(&self, worker_id: i64) -> Result<()> {
        let released = sqlx::query(
            "UPDATE workers SET quarantine_reason = NULL, quarantined_until_ms = NULL, \
                 reported_quarantine = NULL, reported_until_ms = NULL WHERE id = $1",
        )
        .bind(worker_id)
        .execute(self.writer())
        .await?;
        if D::rows_affected(&released) == 0 {
            return Err(StoreError::WorkerNotFound(worker_id));
        }
        Ok(())
    }

    async fn reap_expired(&self, now: Millis) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let reaped = sqlx::query(&REAP_EXPIRED).bind(now).fetch_all(&mut *tx).await?;
        for row in &reaped {
            let fence = Fence { job_id: row.big("id")?, attempt: row.int("attempt")?, token: LeaseDigest::NONE };
            Sql::<D>::end_attempt(&mut tx, fence, now, Ending::Lost).await?;
            if columns::job_status(row)? == JobStatus::Failed {
                sqlx::query(&SPEND_FAILURE_BUDGET).bind(fence.job_id).bind(now).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        for row in &reaped {
            if columns::job_status(row)? == JobStatus::Failed {
                Sql::add_seeds_after(self, row.big("id")?).await;
            }
        }
        Ok(reaped.len() as u64)
    }
}
