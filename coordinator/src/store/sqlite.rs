//! SQLite, the embedded default. WAL mode lets readers run beside the one
//! writer; every write transaction begins IMMEDIATE so that it takes the
//! write lock up front (a deferred transaction that reads first could fail
//! to upgrade when another connection commits in between), and the busy
//! timeout makes other processes wait for the lock instead of failing.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};

use super::columns;
use super::dialect::Dialect;
use super::generic::Sql;
use super::statements::{ATTEMPT_STARTED, CLAIM_SET, JOB_COLUMNS, JOB_JOINS, NEXT_PENDING_JOB};
use super::{EpochMetrics, Fence, LeaseDigest, LeasedJob, Millis};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    /// Writes go through one connection: SQLite has a single writer anyway,
    /// and queueing in the pool is fairer and cheaper than spinning in the
    /// busy handler.
    writer: SqlitePool,
    /// Reads run concurrently on their own connections (WAL snapshots).
    readers: SqlitePool,
    /// The reads of workers' calls, on connections of their own (see
    /// [`Dialect::worker_reader`]).
    worker_readers: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str) -> super::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| super::StoreError::BadUrl(url.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let readers = SqlitePoolOptions::new().max_connections(4).connect_with(options.clone().read_only(true)).await?;
        let worker_readers = SqlitePoolOptions::new().max_connections(2).connect_with(options.read_only(true)).await?;
        Ok(Self { writer, readers, worker_readers })
    }

    /// Opens an existing database file read-only (see [`super::open_read_only`]):
    /// both pools refuse writes, and the schema must already be migrated.
    pub async fn open_read_only(url: &str) -> super::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| super::StoreError::BadUrl(url.to_string()))?
            .create_if_missing(false)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename();
        if !path.exists() {
            return Err(super::StoreError::NoDatabaseFile { url: url.to_string(), path: path.display().to_string() });
        }
        let readers = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        let found = sqlx::query_scalar(super::SCHEMA_VERSION_SQL).fetch_one(&readers).await;
        super::check_schema(url, found, sqlx::migrate!("../migrations/sqlite"))?;
        Ok(Self { writer: readers.clone(), worker_readers: readers.clone(), readers })
    }
}

impl Dialect for SqliteStore {
    type Db = Sqlite;

    const BACKEND: super::Backend = super::Backend::Sqlite;
    /// Nothing to add: an immediate transaction holds the write lock.
    const LOCK_ROW: &'static str = "";

    async fn clock(&self) -> super::Result<Millis> {
        Ok(super::now_ms())
    }

    fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn worker_reader(&self) -> &SqlitePool {
        &self.worker_readers
    }

    async fn begin_write(&self) -> super::Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Claims one job in an immediate transaction: the subquery picks the
    /// next pending job and the update takes it, under the write lock.
    async fn claim(
        &self,
        worker_id: i64,
        device: &str,
        token: LeaseDigest,
        expires: Millis,
        now: Millis,
    ) -> super::Result<Option<LeasedJob>> {
        let mut tx = self.begin_write().await?;
        static CLAIM: LazyLock<String> = LazyLock::new(|| {
            format!("UPDATE jobs SET {CLAIM_SET} WHERE id = ({next}) RETURNING id", next = *NEXT_PENDING_JOB)
        });
        let id: Option<i64> = sqlx::query_scalar(&CLAIM)
            .bind(worker_id)
            .bind(device)
            .bind(expires)
            .bind(now)
            .bind(token.hex())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(job_id) = id {
            sqlx::query(ATTEMPT_STARTED).bind(job_id).bind(worker_id).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let Some(job_id) = id else { return Ok(None) };
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("{JOB_COLUMNS} FROM jobs j {JOB_JOINS} WHERE j.id = $1"));
        let row = sqlx::query(&SQL).bind(job_id).fetch_one(self.worker_reader()).await?;
        columns::leased_job(&row, token).map(Some)
    }

    /// SQLite runs in-process, so several short statements in one
    /// immediate transaction cost little.
    async fn store_epoch(
        &self,
        fence: Fence,
        metrics: &EpochMetrics,
        expires: Millis,
        now: Millis,
    ) -> super::Result<()> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET lease_expires_at_ms = $3, epochs_done = $4 \
             WHERE id = $1 AND attempt = $2 AND status = 'running' AND lease_token_sha256 = $5 \
               AND $4 BETWEEN 1 AND epochs AND $4 <= epochs_done + 1",
        )
        .bind(fence.job_id)
        .bind(i64::from(fence.attempt))
        .bind(expires)
        .bind(i64::from(metrics.epoch))
        .bind(fence.token.hex())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Sql::<Self>::fence_error(&mut *tx, fence, Some(metrics.epoch)).await);
        }
        Sql::<Self>::upsert_epoch(&mut tx, fence, metrics, now).await?;
        tx.commit().await?;
        Ok(())
    }

    fn placeholder(_: usize) -> String {
        "?".to_string()
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}
