//! The durable job queue: one [`Store`] trait, two implementations
//! (SQLite, the embedded default; PostgreSQL, for many machines), one
//! schema in two dialects under `migrations/`.
//!
//! Correctness rests on two rules. A job's identity is its cell hash,
//! unique within its sweep, so no cell can be stored twice. Every write
//! about a leased job is fenced: it names the attempt that holds the lease
//! and is refused unless that attempt is still the job's running attempt.
//!
//! Every method takes `now` (milliseconds since the Unix epoch) from the
//! caller, so that lease expiry is tested by moving a number rather than by
//! sleeping.

mod columns;
mod dialect;
mod model;
mod postgres;
mod seeds;
mod shared;
mod sqlite;
mod statements;
mod submit;

use std::sync::Arc;

pub use model::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The default database: a file in the current directory.
pub const DEFAULT_DB_URL: &str = "sqlite://widesweep.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sweep {0:?} not found")]
    SweepNotFound(String),
    #[error("job {0} not found")]
    JobNotFound(i64),
    #[error("worker {0} is not registered with this coordinator (call RegisterWorker first)")]
    WorkerNotFound(i64),
    #[error("checkpoint {checkpoint_id} of job {job_id} not found")]
    CheckpointNotFound { job_id: i64, checkpoint_id: i64 },
    #[error("job {job_id}: attempt {attempt} no longer holds the lease (the job is {status} at attempt {current})")]
    StaleAttempt { job_id: i64, attempt: u32, current: u32, status: JobStatus },
    #[error(
        "job {job_id}: the lease token does not match attempt {attempt}'s lease \
         (only the worker that leased the job may write its results)"
    )]
    WrongLeaseToken { job_id: i64, attempt: u32 },
    #[error(
        "job {job_id}: epoch {epoch} is out of range: the job trains epochs 1..={epochs} and has reported \
         1..={epochs_done}, so the next epoch is at most {}", (*epochs_done + 1).min(*epochs)
    )]
    EpochOutOfRange { job_id: i64, epoch: u32, epochs: u32, epochs_done: u32 },
    #[error("job {job_id}: {field} {message}")]
    InvalidReport { job_id: i64, field: &'static str, message: String },
    #[error("job {job_id} was cancelled (sweep {sweep:?})")]
    Cancelled { job_id: i64, sweep: String },
    #[error("sweep {sweep:?}: {message}")]
    SweepConflict { sweep: String, message: String },
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH (e.g. sqlite://widesweep.db) or postgres://USER@HOST/DB"
    )]
    BadUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
    #[error(
        "{url} holds widesweep schema version {found}, this widesweep reads version {expected}: \
         start `widesweep serve --db {url}` once to migrate it"
    )]
    SchemaVersion { url: String, found: i64, expected: i64 },
    #[error("{url} is not a widesweep database (it has no migration table)")]
    NotWidesweep { url: String },
    #[error("no database file at {path} (from {url}): check the path, or the coordinator's --db")]
    NoDatabaseFile { url: String, path: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether the database itself is unreachable or restarting (lost
    /// connections, pool exhausted, server shutting down): the same call
    /// can succeed later, so callers should retry rather than give up.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    // SQLite reports extended result codes (e.g. 517,
                    // SQLITE_BUSY_SNAPSHOT); the low byte is the primary
                    // code: 5 busy, 6 locked.
                    Some(_) => db
                        .code()
                        .and_then(|code| code.parse::<i32>().ok())
                        .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
                    // Postgres: 08 connection exceptions, 57P admin or crash
                    // shutdown, 40001/40P01 serialisation and deadlock.
                    None => db.code().is_some_and(|code| {
                        code.starts_with("08") || code.starts_with("57P") || code == "40001" || code == "40P01"
                    }),
                },
                _ => false,
            },
            _ => false,
        }
    }
}

/// The queue's operations. Implementations must be safe to share between
/// tasks and, for Postgres, between several coordinator processes.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// The time by the database's clock: the one clock that every
    /// coordinator sharing the database agrees on (the system clock for
    /// SQLite, whose coordinators share one machine).
    async fn clock_ms(&self) -> Result<Millis>;

    /// Creates the sweep or adds the spec's new cells to it, in one
    /// transaction. Cells the sweep has but the spec lacks are marked out of
    /// spec (kept with their results, no longer leased).
    async fn submit_sweep(&self, sweep: &NewSweep<'_>, now: Millis) -> Result<SubmitOutcome>;
    /// A sweep by name, or by id written as digits.
    async fn sweep(&self, sweep: &str) -> Result<SweepSummary>;
    async fn list_sweeps(&self) -> Result<Vec<SweepSummary>>;
    async fn steer_sweep(&self, sweep: &str, action: SweepAction, now: Millis) -> Result<SweepSummary>;

    async fn register_worker(&self, hostname: &str, devices: &[String], version: &str, now: Millis) -> Result<i64>;
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
    /// Returns whether the job went back to pending.
    async fn fail_job(&self, fence: Fence, error: &str, retryable: bool, now: Millis) -> Result<bool>;
    /// Hands the job back to pending without spending an attempt.
    async fn release_job(&self, fence: Fence, now: Millis) -> Result<()>;
    /// Returns expired leases to pending (or failed past max_attempts).
    async fn reap_expired(&self, now: Millis) -> Result<u64>;

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

    async fn job(&self, job_id: i64) -> Result<JobRow>;
    async fn sweep_jobs(&self, sweep: &str) -> Result<Vec<JobRow>>;
    /// Jobs of the sweep whose latest attempt failed and that have not
    /// succeeded since, by job id, at most `limit`.
    async fn job_errors(&self, sweep: &str, limit: u32) -> Result<Vec<JobRow>>;
    async fn job_epochs(&self, job_id: i64) -> Result<Vec<EpochMetrics>>;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Opens (creating when needed) and migrates the database named by `url`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}

/// Opens an existing database for reading only: no file is created, no
/// migration runs, and every connection refuses writes (SQLite opens the
/// file read-only; PostgreSQL sessions default to read-only transactions).
/// For commands that only read, such as `widesweep table --db URL`, so that
/// pointing one at a running sweep's database cannot change it.
pub async fn open_read_only(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open_read_only(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open_read_only(url).await?))
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}

/// What a database opened without migrating must answer to be read: its
/// latest applied migration.
const SCHEMA_VERSION_SQL: &str = "SELECT MAX(version) FROM _sqlx_migrations";

/// Checks the answer to [`SCHEMA_VERSION_SQL`]: the database must hold this
/// build's schema, or a newer one (migrations only ever add).
fn check_schema(
    url: &str,
    found: std::result::Result<Option<i64>, sqlx::Error>,
    migrator: sqlx::migrate::Migrator,
) -> Result<()> {
    let expected = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let found = match found {
        Ok(found) => found,
        Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => None,
        Err(e) => return Err(e.into()),
    };
    match found {
        Some(found) if found >= expected => Ok(()),
        Some(found) => Err(StoreError::SchemaVersion { url: url.to_string(), found, expected }),
        None => Err(StoreError::NotWidesweep { url: url.to_string() }),
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
