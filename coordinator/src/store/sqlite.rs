//! SQLite, the embedded default. WAL mode lets readers run beside the one
//! writer; every write transaction begins IMMEDIATE so that it takes the
//! write lock up front (a deferred transaction that reads first could fail
//! to upgrade when another connection commits in between), and the busy
//! timeout makes other processes wait for the lock instead of failing.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::common::impl_store;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    /// Writes go through one connection: SQLite has a single writer anyway,
    /// and queueing in the pool is fairer and cheaper than spinning in the
    /// busy handler.
    writer: SqlitePool,
    /// Reads run concurrently on their own connections (WAL snapshots).
    readers: SqlitePool,
}

impl SqliteStore {
    const BACKEND: super::Backend = super::Backend::Sqlite;

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
        let readers = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(Self { writer, readers })
    }

    fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn begin_write(&self) -> super::Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Claims one job in an immediate transaction: the subquery picks the
    /// next pending job and the update takes it, under the write lock.
    async fn claim_next(&self, worker_id: i64, device: &str, expires: i64, now: i64) -> super::Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET status = 'running', attempt = attempt + 1, attempts_spent = attempts_spent + 1, \
               worker_id = $1, device = $2, lease_expires_at_ms = $3, started_at_ms = COALESCE(started_at_ms, $4) \
             WHERE id = (SELECT j.id FROM jobs j JOIN sweeps s ON s.id = j.sweep_id \
                         WHERE j.status = 'pending' AND j.in_spec = 1 AND s.state = 'active' \
                         ORDER BY j.priority DESC, j.id LIMIT 1) \
             RETURNING id",
        )
        .bind(worker_id)
        .bind(device)
        .bind(expires)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}

impl_store!(SqliteStore, Sqlite, SqliteRow);
