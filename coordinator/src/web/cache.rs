//! A sweep's results, learning curves and errors, read from the store once
//! per change of the sweep and shared by every open page: fifty pages
//! watching a 100,000-job sweep cost one read of it per change, not fifty,
//! and one rendering (and one compression) of each table they ask for.
//!
//! A sweep whose workers report all the time changes at every refresh; its
//! data is then read again at most once per four times its last read
//! took, which bounds the coordinator's time on reads to about a quarter
//! of one core, however large the sweep: pages wait for the next read
//! instead (never stale data: each change is announced to a page once).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::curves::{CurvesView, curves};
use crate::store::{ErrorGroup, JobRow, ResultRow, Store, StoreError, group_errors};

/// Sweeps kept at once; the least recently read goes first.
const SWEEPS_KEPT: usize = 8;
/// Renderings kept per sweep (one per distinct set of table options).
const RENDERINGS_KEPT: usize = 32;

/// Jobs with errors a page lists at most.
const ERRORS_SHOWN: u32 = 50;
/// Failed attempts a page groups by cause (the sweep's first ones).
const FAILED_ATTEMPTS_READ: u32 = 10_000;

/// One read of a sweep.
pub(super) struct SweepData {
    pub rows: Vec<ResultRow>,
    pub curves: CurvesView,
    /// The latest errors of jobs that have not succeeded since.
    pub errors: Vec<JobRow>,
    /// The failed attempts grouped by class and error.
    pub causes: Vec<ErrorGroup>,
    /// When the store was read: what a page sees is this old.
    pub read_at: Instant,
    /// Tables rendered from `rows`, by their options.
    rendered: Mutex<HashMap<String, Rendering>>,
}

/// A rendered table, plain and gzip-compressed: a 100,000-job sweep's JSON
/// table is megabytes (every cell lists its jobs), sent to every page at
/// every change, and compressing it once per read costs less than sending
/// it plain fifty times.
#[derive(Clone)]
pub(super) struct Rendering {
    pub plain: Bytes,
    pub gzip: Bytes,
}

impl Rendering {
    fn new(text: String) -> Self {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let gzip = encoder.write_all(text.as_bytes()).and_then(|()| encoder.finish()).unwrap_or_default();
        Self { plain: Bytes::from(text), gzip: Bytes::from(gzip) }
    }
}

impl SweepData {
    /// The rendering for `key`, made by `render` the first time.
    pub(super) fn rendered<E>(&self, key: &str, render: impl FnOnce() -> Result<String, E>) -> Result<Rendering, E> {
        if let Some(done) = self.lock().get(key) {
            return Ok(done.clone());
        }
        let rendering = Rendering::new(render()?);
        let mut rendered = self.lock();
        if rendered.len() >= RENDERINGS_KEPT {
            rendered.clear();
        }
        rendered.insert(key.to_string(), rendering.clone());
        Ok(rendering)
    }

    /// `x-data-age-ms`: how long ago the read behind a response began (a
    /// page's data lags a report by at most this and the refresh period).
    pub(super) fn age_header(&self) -> (axum::http::HeaderName, axum::http::HeaderValue) {
        let ms = self.read_at.elapsed().as_millis();
        (axum::http::HeaderName::from_static("x-data-age-ms"), axum::http::HeaderValue::from(ms as u64))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Rendering>> {
        // A panic while rendering leaves nothing half-written in the map.
        self.rendered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct Slot {
    /// The sweep's summary when `data` was read.
    version: Option<Arc<str>>,
    data: Option<Arc<SweepData>>,
    /// How long reading `data` took (it began at `data.read_at`).
    read_took: Duration,
    last_used: Option<Instant>,
}

#[derive(Clone, Default)]
pub(super) struct Cache {
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>>,
}

impl Cache {
    /// The sweep's data as of `version` (its summary in the live snapshot)
    /// or later, read at most once per `refresh` (or four reads' time).
    /// Readers of one sweep wait for a single read.
    pub(super) async fn get(
        &self,
        store: &dyn Store,
        sweep: &str,
        version: Option<Arc<str>>,
        refresh: Duration,
    ) -> Result<Arc<SweepData>, StoreError> {
        let slot = self.slot(sweep);
        let mut slot = slot.lock().await;
        slot.last_used = Some(Instant::now());
        if let Some(data) = &slot.data {
            if version.is_some() && slot.version == version {
                return Ok(Arc::clone(data));
            }
            // The sweep changed: read it again, but not sooner than the
            // spacing after the last read. The pages asking meanwhile wait
            // for that one read (behind this slot's lock) rather than get
            // the old data: a page is told of a change once, and would
            // keep stale data until the next.
            let read_ended = data.read_at + slot.read_took;
            if let Some(wait) = refresh.max(slot.read_took * 4).checked_sub(read_ended.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let started = Instant::now();
        let rows = store.sweep_results(sweep).await?;
        let epochs = store.sweep_epochs(sweep).await?;
        let errors = store.job_errors(sweep, ERRORS_SHOWN).await?;
        let causes = group_errors(&store.failed_attempts(sweep, FAILED_ATTEMPTS_READ).await?);
        // Summing a large sweep's curves is CPU work: off the runtime.
        let (rows, curves) = crate::cpu::run(move || {
            let curves = curves(&rows, &epochs);
            (rows, curves)
        })
        .await
        .map_err(|e| StoreError::Interrupted(e.to_string()))?;
        tracing::debug!(sweep, jobs = rows.len(), took = ?started.elapsed(), "dashboard read a sweep");
        let data = Arc::new(SweepData { rows, curves, errors, causes, read_at: started, rendered: Mutex::default() });
        *slot =
            Slot { version, data: Some(Arc::clone(&data)), read_took: started.elapsed(), last_used: slot.last_used };
        Ok(data)
    }

    fn slot(&self, sweep: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !slots.contains_key(sweep) && slots.len() >= SWEEPS_KEPT {
            // The least recently used slot that nobody is reading goes.
            let oldest = slots
                .iter()
                .filter_map(|(name, slot)| slot.try_lock().ok().map(|s| (name.clone(), s.last_used)))
                .min_by_key(|(_, used)| *used)
                .map(|(name, _)| name);
            if let Some(name) = oldest {
                slots.remove(&name);
            }
        }
        Arc::clone(slots.entry(sweep.to_string()).or_default())
    }
}
