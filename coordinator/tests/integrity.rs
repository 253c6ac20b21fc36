//! Races on the queue, driven deterministically: a second connection opens
//! a transaction that stands for a concurrent caller halfway through its
//! work, the store's operation starts and blocks on it, and the second
//! connection commits. Each test failed before its fix (see the names);
//! each runs on SQLite and on PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, epoch_metrics, spec, submit, token, try_submit};
use sqlx::{Connection, Executor};
use widesweep_coordinator::service::DatabaseClock;
use widesweep_coordinator::store::{Fence, NewCheckpoint, StoreError, SweepAction, SweepState};

/// A second connection to the test's database, in a write transaction.
enum Other {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Other {
    async fn begin(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            // The write lock at once, as a writer halfway through would hold it.
            conn.execute("BEGIN IMMEDIATE").await.unwrap();
            Other::Sqlite(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            conn.execute("BEGIN").await.unwrap();
            Other::Postgres(conn)
        }
    }

    async fn run(&mut self, sql: &str) {
        match self {
            Other::Sqlite(conn) => conn.execute(sql).await.map(|_| ()),
            Other::Postgres(conn) => conn.execute(sql).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The values of the first column of a query, as text.
    async fn texts(&mut self, sql: &str) -> Vec<String> {
        match self {
            Other::Sqlite(conn) => sqlx::query_scalar(sql).fetch_all(conn).await,
            Other::Postgres(conn) => sqlx::query_scalar(sql).fetch_all(conn).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Commits after the store's operation has had time to reach the lock.
    async fn commit_later(mut self) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.run("COMMIT").await;
    }
}

/// Regression: two submits of the same new sweep ended in an internal
/// error (both found no sweep, the second insert hit the unique name).
async fn concurrent_submits_of_a_new_sweep_meet_at_its_name(db: &TestDb) {
    let (store, url) = (Arc::clone(&db.store), db.url.clone());
    let mut other = Other::begin(&url).await;
    other
        .run(
            "INSERT INTO sweeps (name, dataset, priority, max_attempts, spec_toml, created_at_ms, updated_at_ms) \
             VALUES ('twice', 'cifar10', 0, 3, '', 0, 0)",
        )
        .await;
    let submitting = tokio::spawn({
        let store = Arc::clone(&store);
        async move { try_submit(&*store, &spec("twice", &[1], &[1, 2])).await }
    });
    other.commit_later().await;
    let outcome = submitting.await.unwrap().expect("the second submit joins the sweep the first created");
    assert_eq!((outcome.new, outcome.existing), (2, 0));
    assert_eq!(store.sweep("twice").await.unwrap().counts.pending, 2);
}

/// Regression: a submit racing a cancel added pending jobs to the
/// cancelled sweep (it read the sweep as active before the cancel committed).
async fn a_submit_racing_a_cancel_adds_nothing_to_the_cancelled_sweep(db: &TestDb) {
    let (store, url) = (Arc::clone(&db.store), db.url.clone());
    submit(&*store, &spec("race", &[1], &[1]), 0, 3).await;
    let mut other = Other::begin(&url).await;
    other.run("UPDATE sweeps SET state = 'cancelled' WHERE name = 'race'").await;
    other.run("UPDATE jobs SET status = 'cancelled' WHERE status = 'pending'").await;
    let submitting = tokio::spawn({
        let store = Arc::clone(&store);
        async move { try_submit(&*store, &spec("race", &[1], &[1, 2, 3])).await }
    });
    other.commit_later().await;
    let refused = submitting.await.unwrap();
    assert!(matches!(refused, Err(StoreError::SweepConflict { .. })), "{refused:?}");
    let summary = store.sweep("race").await.unwrap();
    assert_eq!((summary.state, summary.counts.pending, summary.counts.total()), (SweepState::Cancelled, 0, 1));
}

/// Regression: steer_sweep read the state outside its transaction, so a
/// resume racing a cancel brought the cancelled sweep back to life.
async fn steering_reads_the_state_it_changes(db: &TestDb) {
    let (store, url) = (Arc::clone(&db.store), db.url.clone());
    submit(&*store, &spec("steer", &[1], &[1]), 0, 3).await;
    let mut other = Other::begin(&url).await;
    other.run("UPDATE sweeps SET state = 'cancelled' WHERE name = 'steer'").await;
    let resuming = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.steer_sweep("steer", SweepAction::Resume, 10).await }
    });
    other.commit_later().await;
    let refused = resuming.await.unwrap();
    assert!(matches!(refused, Err(StoreError::SweepConflict { .. })), "{refused:?}");
    assert_eq!(store.sweep("steer").await.unwrap().state, SweepState::Cancelled);
}

/// Lease times come from the database's clock: a coordinator whose own
/// clock is an hour fast stamps and reaps leases on the same time line as
/// a correct one, so it does not reap the leases the other just granted.
async fn coordinators_with_skewed_clocks_agree_on_lease_expiry(db: &TestDb) {
    let store = Arc::clone(&db.store);
    let right = DatabaseClock::new(Arc::clone(&store));
    let fast = DatabaseClock::with_local_skew(Arc::clone(&store), 3_600_000);
    right.sync().await.unwrap();
    fast.sync().await.unwrap();
    let gap = (right.now() - fast.now()).abs();
    assert!(gap < 1_000, "both read the database's time: {gap} ms apart");
    submit(&*store, &spec("clock", &[1], &[1]), 0, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let lease_ms = 60_000;
    let job = store.lease_job(worker, "cpu", token(), lease_ms, right.now()).await.unwrap().unwrap();
    assert_eq!(store.reap_expired(fast.now()).await.unwrap(), 0, "the fast coordinator sees the lease alive");
    store.heartbeat(job.fence(), lease_ms, fast.now()).await.unwrap();
    assert_eq!(store.reap_expired(right.now() + lease_ms + 1_000).await.unwrap(), 1);
}

/// Regression: add_checkpoint checked its fence with a plain SELECT on
/// PostgreSQL, so an attempt whose lease was being reaped and re-granted
/// could still store (and prune against) checkpoints while the new attempt
/// wrote its own. Now the fence locks the job's row: the stale attempt
/// waits for the new lease to commit, then is refused, and the new
/// attempt's checkpoint is the job's only one.
async fn a_stale_attempt_cannot_checkpoint_over_a_new_lease(db: &TestDb) {
    let (store, url) = (Arc::clone(&db.store), db.url.clone());
    submit(&*store, &spec("ckpt", &[1], &[1]), 0, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let now = widesweep_coordinator::store::now_ms();
    let first = store.lease_job(worker, "cpu", token(), 60_000, now).await.unwrap().unwrap();
    store.report_epoch(first.fence(), &epoch_metrics(1), 60_000, now + 1).await.unwrap();
    // The reaper and a new lease, halfway through: attempt 2 holds the job
    // and has written its checkpoint, not yet committed.
    let second = Fence { job_id: first.job_id, attempt: first.attempt + 1, token: token() };
    let mut other = Other::begin(&url).await;
    other
        .run(&format!(
            "UPDATE jobs SET attempt = {}, lease_token_sha256 = '{}' WHERE id = {}",
            second.attempt,
            second.token.hex(),
            second.job_id
        ))
        .await;
    other
        .run(&format!(
            "INSERT INTO checkpoints (job_id, attempt, epoch, sha256, size_bytes, created_at_ms) \
             VALUES ({}, {}, 1, 'new', 1, 0)",
            second.job_id, second.attempt
        ))
        .await;
    let stale = tokio::spawn({
        let store = Arc::clone(&store);
        let checkpoint = NewCheckpoint { epoch: 1, sha256: "old".into(), size_bytes: 1 };
        async move { store.add_checkpoint(first.fence(), &checkpoint, now + 2).await }
    });
    other.commit_later().await;
    let refused = stale.await.unwrap();
    assert!(matches!(refused, Err(StoreError::StaleAttempt { .. })), "{refused:?}");
    let mut reader = Other::begin(&url).await;
    let kept = reader.texts(&format!("SELECT sha256 FROM checkpoints WHERE job_id = {}", second.job_id)).await;
    assert_eq!(kept, ["new"], "the new attempt's checkpoint is the job's only one");
    reader.run("ROLLBACK").await;
}

url_tests!(
    a_stale_attempt_cannot_checkpoint_over_a_new_lease,
    concurrent_submits_of_a_new_sweep_meet_at_its_name,
    a_submit_racing_a_cancel_adds_nothing_to_the_cancelled_sweep,
    steering_reads_the_state_it_changes,
    coordinators_with_skewed_clocks_agree_on_lease_expiry,
);

/// Regression: SQLite's extended result codes (here 517,
/// SQLITE_BUSY_SNAPSHOT) were not recognised as "try again".
#[tokio::test]
async fn sqlite_busy_snapshot_is_transient() {
    let db = TestDb::sqlite().await;
    let mut reader = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let mut writer = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    reader.execute("BEGIN").await.unwrap();
    // The read opens a snapshot; a commit elsewhere makes it stale, so the
    // upgrade to a write fails with SQLITE_BUSY_SNAPSHOT at once.
    reader.execute("SELECT COUNT(*) FROM sweeps").await.unwrap();
    writer
        .execute(
            "INSERT INTO sweeps (name, dataset, priority, max_attempts, spec_toml, created_at_ms, updated_at_ms) \
             VALUES ('x', 'cifar10', 0, 3, '', 0, 0)",
        )
        .await
        .unwrap();
    let error = reader
        .execute(
            "INSERT INTO sweeps (name, dataset, priority, max_attempts, spec_toml, created_at_ms, updated_at_ms) \
             VALUES ('y', 'cifar10', 0, 3, '', 0, 0)",
        )
        .await
        .unwrap_err();
    let code = match &error {
        sqlx::Error::Database(e) => e.code().map(|c| c.to_string()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("517"), "{error}");
    assert!(StoreError::Database(error).is_transient());
    db.finish().await;
}
