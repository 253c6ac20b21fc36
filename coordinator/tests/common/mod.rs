//! Throwaway databases for the contract suite: every test gets a fresh
//! SQLite file and a fresh PostgreSQL database. Postgres is required: when
//! it cannot be reached the tests fail rather than skip, so CI cannot pass
//! without exercising both backends.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use widesweep_coordinator::spec::Spec;
use widesweep_coordinator::store::{self, NewSweep, Store, SubmitOutcome};

/// Admin connection used to create and drop test databases.
pub fn admin_url() -> String {
    std::env::var("WIDESWEEP_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = store::open(&url).await.unwrap();
        Self { store, url, postgres_name: None, _dir: Some(dir) }
    }

    pub async fn postgres() -> Self {
        let admin = admin_url();
        let name = format!(
            "widesweep_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            store::now_ms() % 1_000_000
        );
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required for the store tests ({admin}): {e}; start it or set WIDESWEEP_TEST_PG")
        });
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let base = admin.rsplit_once('/').map(|(base, _)| base.to_string()).unwrap();
        let url = format!("{base}/{name}");
        let store = store::open(&url).await.unwrap();
        Self { store, url, postgres_name: Some(name), _dir: None }
    }

    /// Drops the Postgres database (the SQLite file goes with its tempdir).
    pub async fn finish(self) {
        let Self { store, postgres_name, _dir, .. } = self;
        drop(store);
        if let Some(name) = postgres_name {
            let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.unwrap();
        }
    }
}

/// A spec of `widths` x `seeds` tiny cells with a 3-epoch recipe.
pub fn spec(name: &str, widths: &[u32], seeds: &[u64]) -> String {
    let list = |v: Vec<String>| v.join(", ");
    format!(
        "name = \"{name}\"\ndataset = \"cifar10\"\nseeds = [{}]\n[recipe]\nepochs = 3\nlr_milestones = [2]\n[grid]\ndepth = [10]\nwidth = [{}]\n",
        list(seeds.iter().map(|s| s.to_string()).collect()),
        list(widths.iter().map(|w| w.to_string()).collect()),
    )
}

pub async fn submit(store: &dyn Store, text: &str, priority: i32, max_attempts: u32) -> SubmitOutcome {
    submit_with(store, text, priority, max_attempts).await.unwrap()
}

/// Submits a spec, returning the store's answer (for stores that refuse).
pub async fn try_submit(store: &dyn Store, text: &str) -> Result<SubmitOutcome, store::StoreError> {
    submit_with(store, text, 0, 3).await
}

async fn submit_with(
    store: &dyn Store,
    text: &str,
    priority: i32,
    max_attempts: u32,
) -> Result<SubmitOutcome, store::StoreError> {
    let spec = Spec::parse(text).unwrap();
    let expansion = spec.expand(true).unwrap();
    store
        .submit_sweep(
            &NewSweep {
                name: &spec.name,
                dataset: spec.dataset,
                spec_toml: text,
                engines: &spec.engines.defined,
                priority,
                max_attempts,
                jobs: &expansion.jobs,
                reserve: &expansion.reserve,
                seeds_target_ci: spec.adaptive.map(|a| a.target_ci),
                max_failed_fraction: spec.max_failed_fraction,
            },
            1_000,
        )
        .await
}

/// Runs each named async test fn against SQLite and against Postgres.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(db.store.clone()).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::common::TestDb::postgres().await;
                    super::$name(db.store.clone()).await;
                    db.finish().await;
                }
            )*
        }
    };
}

/// A fresh lease token's digest, for leasing through the store directly.
/// Plain metrics for `epoch`, for tests that need a reported epoch and not
/// its values.
pub fn epoch_metrics(epoch: u32) -> store::EpochMetrics {
    store::EpochMetrics {
        epoch,
        train_loss: 1.0,
        train_error: 0.5,
        test_loss: 1.0,
        test_error: 0.5,
        lr: 0.1,
        epoch_seconds: 1.0,
        images_per_second: 1.0,
    }
}

/// An epoch of 10 s with the given test error (a fraction).
pub fn metrics(epoch: u32, test_error: f64) -> store::EpochMetrics {
    store::EpochMetrics { test_error, epoch_seconds: 10.0, ..epoch_metrics(epoch) }
}

pub fn token() -> store::LeaseDigest {
    store::LeaseToken::generate().digest()
}

/// Tests that need the database's URL as well as its store.
#[macro_export]
macro_rules! url_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_url {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres_url {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::common::TestDb::postgres().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}
