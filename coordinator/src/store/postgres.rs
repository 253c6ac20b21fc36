//! PostgreSQL, for many machines and several coordinators over one
//! database. Claims lock the chosen row with `FOR UPDATE SKIP LOCKED`, so
//! concurrent claimers never wait on each other nor take the same job.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};

use super::common::impl_store;

/// Connections per coordinator: enough for hundreds of workers' short
/// statements without exhausting the server's max_connections.
const POOL_SIZE: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    const BACKEND: super::Backend = super::Backend::Postgres;

    pub async fn open(url: &str) -> super::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> super::Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    async fn claim_next(&self, worker_id: i64, device: &str, expires: i64, now: i64) -> super::Result<Option<i64>> {
        let id = sqlx::query_scalar(
            "WITH next AS ( \
               SELECT j.id FROM jobs j JOIN sweeps s ON s.id = j.sweep_id \
               WHERE j.status = 'pending' AND j.in_spec = 1 AND s.state = 'active' \
               ORDER BY j.priority DESC, j.id LIMIT 1 \
               FOR UPDATE OF j SKIP LOCKED) \
             UPDATE jobs SET status = 'running', attempt = jobs.attempt + 1, \
               attempts_spent = jobs.attempts_spent + 1, worker_id = $1, device = $2, \
               lease_expires_at_ms = $3, started_at_ms = COALESCE(jobs.started_at_ms, $4) \
             FROM next WHERE jobs.id = next.id RETURNING jobs.id",
        )
        .bind(worker_id)
        .bind(device)
        .bind(expires)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }
}

impl_store!(PostgresStore, Postgres, PgRow);
