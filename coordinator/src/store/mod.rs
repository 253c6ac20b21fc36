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

mod checkpoints;
mod columns;
mod dialect;
mod generic;
mod leases;
mod postgres;
mod provenance;
mod reads;
mod rows;
mod seeds;
mod sqlite;
mod statements;
mod submission;

use std::sync::Arc;

pub use checkpoints::Checkpoints;
pub use leases::Leases;
pub use postgres::PostgresStore;
pub use provenance::Provenance;
pub use reads::Reads;
pub use rows::*;
pub use sqlite::SqliteStore;
pub use submission::Submissions;

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
    #[error("the work on what was read did not finish: {0}")]
    Interrupted(String),
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

/// The queue's operations, by concern: what users submit and steer
/// ([`Submissions`]), what workers lease and write ([`Leases`],
/// [`Checkpoints`]) and what reports and the dashboard read ([`Reads`]).
/// Implementations must be safe to share between tasks and, for Postgres,
/// between several coordinator processes.
pub trait Store: Submissions + Leases + Checkpoints + Reads {}

impl<T: Submissions + Leases + Checkpoints + Reads + ?Sized> Store for T {}

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
