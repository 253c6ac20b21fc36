//! The coordinator's idea of "now" for leases: the database's clock.
//!
//! Several coordinators may serve one PostgreSQL database. If each stamped
//! lease expiry with its own system clock, one whose clock runs ahead would
//! reap the leases another had just granted. So every lease time is read
//! on one clock, the database's: [`DatabaseClock`] measures the offset
//! between the local clock and the store's at start and at every reaper
//! pass, and adds it to the local clock in between (no round trip per
//! call). The error bound is half the measuring round trip plus the drift
//! between two measurements (seconds apart): milliseconds, against leases
//! of minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::{Millis, Result, Store, now_ms};

#[derive(Clone)]
pub struct DatabaseClock {
    store: Arc<dyn Store>,
    /// Database time minus local time, in milliseconds, as last measured.
    offset_ms: Arc<AtomicI64>,
    /// Added to the system clock: lets tests play a coordinator whose
    /// clock is wrong. Zero in production.
    local_skew_ms: i64,
}

impl DatabaseClock {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_local_skew(store, 0)
    }

    /// A clock whose machine's time is `skew_ms` off (tests).
    pub fn with_local_skew(store: Arc<dyn Store>, skew_ms: i64) -> Self {
        Self { store, offset_ms: Arc::new(AtomicI64::new(0)), local_skew_ms: skew_ms }
    }

    fn local_ms(&self) -> Millis {
        now_ms() + self.local_skew_ms
    }

    /// Measures the offset to the database's clock again.
    pub async fn sync(&self) -> Result<()> {
        let before = self.local_ms();
        let database = self.store.clock_ms().await?;
        let after = self.local_ms();
        // The database read its clock somewhere in the round trip; the
        // middle is the best guess, off by at most half of it.
        let offset = database - (before + (after - before) / 2);
        self.offset_ms.store(offset, Ordering::Relaxed);
        Ok(())
    }

    /// Now, by the database's clock (as of the last [`sync`](Self::sync)).
    pub fn now(&self) -> Millis {
        self.local_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}
