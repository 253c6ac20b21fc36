//! PostgreSQL, for many machines and several coordinators over one
//! database. Claims lock the chosen row with `FOR UPDATE SKIP LOCKED`, so
//! concurrent claimers never wait on each other nor take the same job.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::columns;
use super::dialect::Dialect;
use super::generic::Sql;
use super::statements::{CLAIM_SET, EPOCH_UPDATE, JOB_COLUMNS, JOB_JOINS, NEXT_PENDING_JOB};
use super::{EpochMetrics, Fence, LeaseDigest, LeasedJob, Millis};

/// Connections per coordinator for writes: enough for hundreds of workers'
/// short statements without exhausting the server's max_connections.
const POOL_SIZE: u32 = 16;
/// Connections for reads (tables, watchers, the dashboard), apart from the
/// writers': however many readers queue, a worker's report still finds a
/// connection, so a flood of reads cannot push leases past their expiry.
const READ_POOL_SIZE: u32 = 6;

pub struct PostgresStore {
    pool: PgPool,
    readers: PgPool,
}

impl PostgresStore {
    pub async fn open(url: &str) -> super::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        // Readers wait longer for a connection than writers: a queue of
        // reads is expected under load, a queue of writes is not.
        let readers = PgPoolOptions::new()
            .max_connections(READ_POOL_SIZE)
            .acquire_timeout(Duration::from_secs(60))
            .connect(url)
            .await?;
        Ok(Self { pool, readers })
    }

    /// Connects read-only (see [`super::open_read_only`]): every session
    /// starts with `default_transaction_read_only`, so any write fails, and
    /// the schema must already be migrated.
    pub async fn open_read_only(url: &str) -> super::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| super::StoreError::BadUrl(url.to_string()))?
            .options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let found = sqlx::query_scalar(super::SCHEMA_VERSION_SQL).fetch_one(&pool).await;
        super::check_schema(url, found, sqlx::migrate!("../migrations/postgres"))?;
        Ok(Self { readers: pool.clone(), pool })
    }
}

impl Dialect for PostgresStore {
    type Db = Postgres;

    const BACKEND: super::Backend = super::Backend::Postgres;
    /// Locks a fenced job's row until the transaction ends.
    const LOCK_ROW: &'static str = " FOR UPDATE";

    async fn clock(&self) -> super::Result<Millis> {
        let now: i64 = sqlx::query_scalar("SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)")
            .fetch_one(&self.pool)
            .await?;
        Ok(now)
    }

    fn reader(&self) -> &PgPool {
        &self.readers
    }

    fn worker_reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> super::Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Claims and returns the job in one statement: the CTE locks the
    /// next pending row (skipping rows other claimers hold), the update
    /// takes it, and the final select joins what the worker needs.
    async fn claim(
        &self,
        worker_id: i64,
        device: &str,
        token: LeaseDigest,
        expires: Millis,
        now: Millis,
    ) -> super::Result<Option<LeasedJob>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH next AS ({next} FOR UPDATE OF j SKIP LOCKED), \
                 claimed AS (UPDATE jobs SET {CLAIM_SET} FROM next WHERE jobs.id = next.id RETURNING jobs.*), \
                 logged AS (INSERT INTO attempts (job_id, attempt, worker_id, hostname, device, leased_at_ms) \
                   SELECT c.id, c.attempt, $1, COALESCE((SELECT w.hostname FROM workers w WHERE w.id = $1), ''), \
                   $2, $4 FROM claimed c) \
                 {JOB_COLUMNS} FROM claimed j {JOB_JOINS}",
                next = *NEXT_PENDING_JOB
            )
        });
        let row = sqlx::query(&SQL)
            .bind(worker_id)
            .bind(device)
            .bind(expires)
            .bind(now)
            .bind(token.hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|row| columns::leased_job(row, token)).transpose()
    }

    /// Fence, epoch row and lease renewal in one statement: one round trip
    /// per report, which is what bounds throughput with many workers.
    async fn store_epoch(&self, fence: Fence, m: &EpochMetrics, expires: Millis, now: Millis) -> super::Result<()> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH fenced AS ( \
                   UPDATE jobs SET lease_expires_at_ms = $12, epochs_done = $2 \
                   WHERE id = $1 AND attempt = $3 AND status = 'running' AND lease_token_sha256 = $13 \
                     AND $2 BETWEEN 1 AND epochs AND $2 <= epochs_done + 1 RETURNING id), \
                 later AS (DELETE FROM epochs WHERE job_id IN (SELECT id FROM fenced) AND epoch > $2) \
                 {EPOCH_FROM_FENCED}{EPOCH_UPDATE} RETURNING job_id"
            )
        });
        let stored = Sql::<Self>::bind_epoch(sqlx::query(&SQL), fence, m, now)
            .bind(expires)
            .bind(fence.token.hex())
            .fetch_optional(&self.pool)
            .await?;
        if stored.is_none() {
            return Err(Sql::<Self>::fence_error(&self.pool, fence, Some(m.epoch)).await);
        }
        Ok(())
    }

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Inserts (or replaces) the epoch row from binds $1..$11 for the fenced
/// job only: when the fence matched no row, nothing is written.
const EPOCH_FROM_FENCED: &str = "INSERT INTO epochs (job_id, epoch, attempt, train_loss, train_error, test_loss, \
     test_error, lr, epoch_seconds, images_per_second, recorded_at_ms) \
     SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM fenced \
     ON CONFLICT (job_id, epoch) DO UPDATE SET ";
