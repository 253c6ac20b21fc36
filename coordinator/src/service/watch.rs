//! Live sweep status for `WatchSweep`, shared: every stream watching a
//! sweep reads one poll of it, so 64 watchers of a 100,000-job sweep cost
//! the database what one does. A poll runs at most every
//! [`POLL_INTERVAL`], and no sooner than four times the last one took after
//! it ended (about a quarter of a connection, however large the sweep);
//! the poller stops when its last watcher leaves.
//!
//! Streams are also bounded per credential ([`StreamBudget`]): the viewer
//! token handed to collaborators cannot open thousands of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tonic::Status;
use widesweep_proto::v1 as pb;

use super::auth::Role;
use super::convert::sweep_status;
use crate::store::Store;

/// The shortest interval a watcher may ask for, and the fastest a sweep is polled.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Open streams (`WatchSweep`, `ListResults`) one credential may hold at once.
pub const MAX_STREAMS_PER_CREDENTIAL: usize = 256;

/// The latest poll of a sweep: its status, or why it could not be read.
pub(crate) type Polled = Result<pb::SweepStatus, Status>;

#[derive(Clone)]
pub(crate) struct Watchers {
    store: Arc<dyn Store>,
    polls: Arc<Mutex<HashMap<i64, watch::Sender<Polled>>>>,
}

impl Watchers {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store, polls: Arc::default() }
    }

    /// A receiver of the sweep's polls, starting the poller if none runs;
    /// `first` is the status just read, which a new poller starts from.
    pub(crate) fn subscribe(&self, sweep_id: i64, first: &pb::SweepStatus) -> watch::Receiver<Polled> {
        let mut polls = self.lock();
        if let Some(sender) = polls.get(&sweep_id) {
            // The poll may be newer than `first`: the watcher looks at it
            // at once rather than at the next change, which may not come.
            let mut receiver = sender.subscribe();
            receiver.mark_changed();
            return receiver;
        }
        let (sender, receiver) = watch::channel(Ok(first.clone()));
        polls.insert(sweep_id, sender.clone());
        tokio::spawn(poll(Arc::clone(&self.store), Arc::clone(&self.polls), sweep_id, sender));
        receiver
    }

    /// Sweeps with a poller running (for tests).
    #[cfg(test)]
    pub(crate) fn polled(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, watch::Sender<Polled>>> {
        self.polls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn poll(
    store: Arc<dyn Store>,
    polls: Arc<Mutex<HashMap<i64, watch::Sender<Polled>>>>,
    sweep_id: i64,
    sender: watch::Sender<Polled>,
) {
    let id = sweep_id.to_string();
    let mut took = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL.max(took * 4)) => {}
            _ = sender.closed() => {}
        }
        {
            // Removed under the map's lock, so a watcher arriving now
            // starts a new poller instead of joining one that is ending.
            let mut map = polls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if sender.receiver_count() == 0 {
                map.remove(&sweep_id);
                return;
            }
        }
        let started = Instant::now();
        let polled = store.sweep(&id).await.map(|summary| sweep_status(&summary)).map_err(Status::from);
        took = started.elapsed();
        sender.send_if_modified(|current| {
            let changed = match (&*current, &polled) {
                (Ok(a), Ok(b)) => a != b,
                _ => true,
            };
            if changed {
                *current = polled;
            }
            changed
        });
    }
}

/// Open streams per credential.
#[derive(Clone, Default)]
pub(crate) struct StreamBudget(Arc<Mutex<HashMap<&'static str, usize>>>);

/// One open stream; dropping it gives its place back.
pub(crate) struct StreamTicket {
    budget: StreamBudget,
    role: &'static str,
}

impl StreamBudget {
    /// A place for one more stream of `role`'s credential, or
    /// RESOURCE_EXHAUSTED when it holds [`MAX_STREAMS_PER_CREDENTIAL`].
    pub(crate) fn open(&self, role: Role) -> Result<StreamTicket, Status> {
        let mut open = self.lock();
        let count = open.entry(role.name()).or_default();
        if *count >= MAX_STREAMS_PER_CREDENTIAL {
            return Err(Status::resource_exhausted(format!(
                "the {} credential holds {MAX_STREAMS_PER_CREDENTIAL} open streams (watches and result \
                 downloads), the most this coordinator allows: close some before opening more",
                role.name()
            )));
        }
        *count += 1;
        Ok(StreamTicket { budget: self.clone(), role: role.name() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, usize>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for StreamTicket {
    fn drop(&mut self) {
        if let Some(count) = self.budget.lock().get_mut(self.role) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_of_a_sweep_share_one_poller_that_ends_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}", dir.path().join("w.db").display())).await.unwrap();
        let watchers = Watchers::new(store);
        let status = pb::SweepStatus { sweep_id: 7, ..Default::default() };
        let a = watchers.subscribe(7, &status);
        let b = watchers.subscribe(7, &status);
        let c = watchers.subscribe(8, &status);
        assert_eq!(watchers.polled(), 2, "two sweeps, two pollers");
        drop((a, b, c));
        tokio::time::sleep(POLL_INTERVAL * 3).await;
        assert_eq!(watchers.polled(), 0, "pollers end with their last watcher");
        // A new watcher starts a new poller.
        let _d = watchers.subscribe(7, &status);
        assert_eq!(watchers.polled(), 1);
    }

    #[test]
    fn a_credential_may_hold_only_so_many_streams() {
        let budget = StreamBudget::default();
        let tickets: Vec<_> = (0..MAX_STREAMS_PER_CREDENTIAL).map(|_| budget.open(Role::Viewer).unwrap()).collect();
        let refused = budget.open(Role::Viewer).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("viewer credential"), "{}", refused.message());
        // Another credential is not held back by the viewer's streams.
        assert!(budget.open(Role::User).is_ok());
        drop(tickets);
        assert!(budget.open(Role::Viewer).is_ok());
    }
}
