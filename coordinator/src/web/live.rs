//! Live updates: one task reads every sweep's summary each refresh period
//! and keeps the latest snapshot; each open page's event stream
//! (server-sent events) wakes when the snapshot changes. The database sees
//! one summary query per period whatever the number of pages.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::watch;

use super::AppState;
use super::api::SweepView;
use crate::store::Store;

/// What the polling task read last.
#[derive(Default)]
pub(super) struct Snapshot {
    /// Every sweep's summary, as `/api/sweeps` serves it.
    json: Arc<str>,
    /// Each sweep's summary alone, by name and by id: it changes whenever
    /// the sweep's jobs or epochs do, so it versions the sweep's cached data.
    versions: HashMap<String, Arc<str>>,
}

#[derive(Clone)]
pub(super) struct Live {
    snapshot: watch::Receiver<Arc<Snapshot>>,
}

impl Live {
    /// Starts the polling task; it ends when the last [`Live`] is dropped.
    pub(super) fn start(store: Arc<dyn Store>, refresh: Duration) -> Self {
        let empty = Snapshot { json: Arc::from("[]"), versions: HashMap::new() };
        let (sender, snapshot) = watch::channel(Arc::new(empty));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(refresh);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = sender.closed() => return,
                }
                match store.list_sweeps().await {
                    Ok(sweeps) => {
                        let views: Vec<SweepView> = sweeps.iter().map(SweepView::from).collect();
                        let json = serde_json::to_string(&views).unwrap_or_else(|_| "[]".into());
                        sender.send_if_modified(|current| {
                            if *current.json == *json {
                                return false;
                            }
                            let mut versions = HashMap::new();
                            for view in &views {
                                let version: Arc<str> = Arc::from(serde_json::to_string(view).unwrap_or_default());
                                versions.insert(view.summary.id.to_string(), Arc::clone(&version));
                                versions.insert(view.summary.name.clone(), version);
                            }
                            *current = Arc::new(Snapshot { json: Arc::from(json), versions });
                            true
                        });
                    }
                    Err(error) => tracing::warn!(%error, "dashboard: cannot read the sweeps"),
                }
            }
        });
        Self { snapshot }
    }

    /// The sweep's summary as last read (`None` before its first poll).
    pub(super) fn version(&self, sweep: &str) -> Option<Arc<str>> {
        self.snapshot.borrow().versions.get(sweep).cloned()
    }
}

/// `/api/events`: an `event: sweeps` with every sweep's summary (the
/// `/api/sweeps` JSON) now and whenever it changes.
pub(super) async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let keepalive = state.keepalive;
    let stream = futures::stream::unfold((state.live.snapshot.clone(), true), |(mut snapshot, first)| async move {
        if !first {
            snapshot.changed().await.ok()?;
        }
        let data = Arc::clone(&snapshot.borrow_and_update().json);
        Some((Ok(Event::default().event("sweeps").data(&*data)), (snapshot, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default().interval(keepalive))
}
