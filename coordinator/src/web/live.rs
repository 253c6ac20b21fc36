//! Live updates: one task reads every sweep's summary each refresh period
//! and keeps the latest snapshot; each open page's event stream
//! (server-sent events) wakes when the snapshot changes. The database sees
//! one summary query per period whatever the number of pages.

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

#[derive(Clone)]
pub(super) struct Live {
    snapshot: watch::Receiver<Arc<str>>,
}

impl Live {
    /// Starts the polling task; it ends when the last [`Live`] is dropped.
    pub(super) fn start(store: Arc<dyn Store>, refresh: Duration) -> Self {
        let (sender, snapshot) = watch::channel::<Arc<str>>(Arc::from("[]"));
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
                            let changed = **current != *json;
                            if changed {
                                *current = Arc::from(json);
                            }
                            changed
                        });
                    }
                    Err(error) => tracing::warn!(%error, "dashboard: cannot read the sweeps"),
                }
            }
        });
        Self { snapshot }
    }
}

/// `/api/events`: an `event: sweeps` with every sweep's summary (the
/// `/api/sweeps` JSON) now and whenever it changes.
pub(super) async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((state.live.snapshot.clone(), true), |(mut snapshot, first)| async move {
        if !first {
            snapshot.changed().await.ok()?;
        }
        let data = Arc::clone(&snapshot.borrow_and_update());
        Some((Ok(Event::default().event("sweeps").data(&*data)), (snapshot, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
