//! What a database backend supplies to the generic store code
//! ([`super::generic`] and the concern modules it serves): its connections, how a write transaction begins and
//! locks a row, its clock, and the two operations whose SQL differs
//! (claiming a job, storing an epoch report), both on the hot path of every
//! worker.

use std::future::Future;

use sqlx::{Database, Pool, Transaction};

use super::{Backend, EpochMetrics, Fence, LeaseDigest, LeasedJob, Millis, Result};

pub(super) trait Dialect: Send + Sync + 'static {
    type Db: Database;

    const BACKEND: Backend;

    /// Appended to a `SELECT` in a write transaction to lock the rows it
    /// reads until the transaction ends.
    const LOCK_ROW: &'static str;

    /// The placeholder of bind `n` (from 1) in a statement built at run
    /// time. SQLite keeps `$1` and `?1` as named parameters and sqlx asks
    /// for each one's name, a list search per bind, so a 15,500-bind insert
    /// was quadratic there; its placeholders are plain `?`, numbered by
    /// position.
    fn placeholder(n: usize) -> String;

    /// Connections for statements that only read.
    fn reader(&self) -> &Pool<Self::Db>;

    /// Connections for the reads of a worker's calls (its fence, its
    /// checkpoints), apart from [`Self::reader`]'s: a flood of table and
    /// watcher reads cannot hold a worker's call past its lease.
    fn worker_reader(&self) -> &Pool<Self::Db>;

    /// Connections for statements that write.
    fn writer(&self) -> &Pool<Self::Db>;

    /// Begins a transaction that will write, holding whatever lock the
    /// backend needs so that it cannot fail to upgrade later.
    fn begin_write(&self) -> impl Future<Output = Result<Transaction<'static, Self::Db>>> + Send;

    /// The time that leases are measured by (see [`super::Leases::clock_ms`]).
    fn clock(&self) -> impl Future<Output = Result<Millis>> + Send;

    /// Claims the next pending job for `worker_id`, storing the digest of
    /// its new lease token, and reads it back with its latest checkpoint.
    fn claim(
        &self,
        worker_id: i64,
        device: &str,
        token: LeaseDigest,
        expires: Millis,
        now: Millis,
    ) -> impl Future<Output = Result<Option<LeasedJob>>> + Send;

    /// Records one epoch of a fenced job and renews its lease, or explains
    /// (with [`Sql::fence_error`](super::generic::Sql::fence_error)) why the fence refused it.
    fn store_epoch(
        &self,
        fence: Fence,
        metrics: &EpochMetrics,
        expires: Millis,
        now: Millis,
    ) -> impl Future<Output = Result<()>> + Send;

    /// How many rows an `UPDATE` or `DELETE` changed: each backend has
    /// its own result type.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;
}
