//! Reads: what reports, exports, `status` and the dashboard ask of the
//! queue. Nothing here writes, so a reader can hold a [`Reads`] alone.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::columns::{self, Columns};
use super::dialect::Dialect;
use std::collections::HashMap;

use super::generic::Sql;
use super::statements::*;
use super::*;

/// What readers ask of the queue: sweeps, jobs, epochs, workers, results.
#[async_trait::async_trait]
pub trait Reads: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// A sweep by name, or by id written as digits.
    async fn sweep(&self, sweep: &str) -> Result<SweepSummary>;
    async fn list_sweeps(&self) -> Result<Vec<SweepSummary>>;
    async fn job(&self, job_id: i64) -> Result<JobRow>;
    async fn sweep_jobs(&self, sweep: &str) -> Result<Vec<JobRow>>;
    /// Jobs of the sweep whose latest attempt failed and that have not
    /// succeeded since, by job id, at most `limit`.
    async fn job_errors(&self, sweep: &str, limit: u32) -> Result<Vec<JobRow>>;
    async fn job_epochs(&self, job_id: i64) -> Result<Vec<EpochMetrics>>;
    /// The sweep's first `limit` failed attempts, by job then attempt.
    async fn failed_attempts(&self, sweep: &str, limit: u32) -> Result<Vec<FailedAttempt>>;
    /// A job's configuration, queue state, epochs and checkpoints.
    async fn job_detail(&self, job_id: i64) -> Result<JobDetail>;
    /// Workers heard from since `seen_since`, and every worker holding a
    /// lease whenever it was last heard from, most recently seen first.
    async fn workers(&self, seen_since: Millis) -> Result<Vec<WorkerActivity>>;
    /// Each device's measured rate in the cost model's units, from every
    /// reported epoch in the database, by device name.
    async fn device_rates(&self) -> Result<Vec<DeviceRate>>;
    /// Every job of a sweep (in or out of its spec, whatever its state)
    /// with hyperparameters, recipe and results, in job order: what
    /// tables, exports and plots are made of.
    async fn sweep_results(&self, sweep: &str) -> Result<Vec<ResultRow>>;
    /// Every recorded epoch of a sweep's jobs, by job then epoch.
    async fn sweep_epochs(&self, sweep: &str) -> Result<Vec<JobEpoch>>;
    /// At most `limit` jobs of sweep `sweep_id` after job `after_job_id`,
    /// in job order: what streams a sweep's results in bounded memory.
    async fn sweep_results_page(&self, sweep_id: i64, after_job_id: i64, limit: u32) -> Result<Vec<ResultRow>>;
    /// At most `limit` epochs of sweep `sweep_id` after `after` (job id,
    /// epoch), by job then epoch.
    async fn sweep_epochs_page(&self, sweep_id: i64, after: (i64, u32), limit: u32) -> Result<Vec<JobEpoch>>;
}

#[async_trait::async_trait]
impl<D> Reads for D
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

    async fn failed_attempts(&self, sweep: &str, limit: u32) -> Result<Vec<FailedAttempt>> {
        let sweep_id = Sql::sweep_id(self, sweep).await?;
        let rows = sqlx::query(
            "SELECT a.job_id, a.attempt, a.worker_id, a.hostname, \
               COALESCE(a.error_class, 'unknown') AS error_class, COALESCE(a.error, '') AS error \
             FROM attempts a JOIN jobs j ON j.id = a.job_id \
             WHERE j.sweep_id = $1 AND a.outcome = 'failed' ORDER BY a.job_id, a.attempt LIMIT $2",
        )
        .bind(sweep_id)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FailedAttempt {
                    job_id: row.big("job_id")?,
                    attempt: row.int("attempt")?,
                    worker_id: row.opt_big("worker_id")?,
                    hostname: row.text("hostname")?,
                    error_class: row.text("error_class")?,
                    error: row.text("error")?,
                })
            })
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
        let row = Reads::job(self, job_id).await?;
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
        let attempts = sqlx::query("SELECT * FROM attempts WHERE job_id = $1 ORDER BY attempt")
            .bind(job_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|a| {
                Ok(AttemptRow {
                    attempt: a.int("attempt")?,
                    worker_id: a.opt_big("worker_id")?,
                    hostname: a.text("hostname")?,
                    device: a.text("device")?,
                    leased_at_ms: a.big("leased_at_ms")?,
                    ended_at_ms: a.opt_big("ended_at_ms")?,
                    outcome: a.text("outcome")?,
                    error_class: a.opt_text("error_class")?,
                    error: a.opt_text("error")?,
                    final_test_error: a.opt_real("final_test_error")?,
                    provenance: a.opt_text("provenance_json")?.as_deref().and_then(super::Provenance::from_json),
                })
            })
            .collect::<Result<_>>()?;
        Ok(JobDetail { result, row, epochs, checkpoints, attempts })
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
