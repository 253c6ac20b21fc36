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

/// The latest poll of a sweep: its status, or why it could not be read;
/// `None` until the first poll ends.
pub(crate) type Polled = Option<Result<pb::SweepStatus, Status>>;

/// The pollers running, by the sweep as watchers name it (its name or id).
type Polls = Arc<Mutex<HashMap<String, watch::Sender<Polled>>>>;

#[derive(Clone)]
pub(crate) struct Watchers {
    store: Arc<dyn Store>,
    polls: Polls,
}

impl Watchers {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store, polls: Arc::default() }
    }

    /// A receiver of the polls of `sweep` (a name or an id), starting a
    /// poller if none runs. A new watcher costs no read of its own: it
    /// sees the current poll at once, or the first one when it ends.
    pub(crate) fn subscribe(&self, sweep: &str) -> watch::Receiver<Polled> {
        let mut polls = lock(&self.polls);
        if let Some(sender) = polls.get(sweep) {
            let mut receiver = sender.subscribe();
            receiver.mark_changed();
            return receiver;
        }
        let (sender, receiver) = watch::channel(None);
        polls.insert(sweep.to_string(), sender.clone());
        tokio::spawn(poll(Arc::clone(&self.store), Arc::clone(&self.polls), sweep.to_string(), sender));
        receiver
    }

    /// Sweeps with a poller running (for tests).
    #[cfg(test)]
    pub(crate) fn polled(&self) -> usize {
        lock(&self.polls).len()
    }
}

fn lock(polls: &Polls) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Polled>>> {
    polls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn poll(store: Arc<dyn Store>, polls: Polls, sweep: String, sender: watch::Sender<Polled>) {
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = sender.closed() => {}
        }
        {
            // Removed under the map's lock, so a watcher arriving now
            // starts a new poller instead of joining one that is ending.
            let mut map = lock(&polls);
            if sender.receiver_count() == 0 {
                map.remove(&sweep);
                return;
            }
        }
        let started = Instant::now();
        let polled = store.sweep(&sweep).await.map(|summary| sweep_status(&summary)).map_err(Status::from);
        wait = POLL_INTERVAL.max(started.elapsed() * 4);
        let failed = polled.is_err();
        sender.send_if_modified(|current| {
            let changed = match (&*current, &polled) {
                (Some(Ok(a)), Ok(b)) => a != b,
                _ => true,
            };
            if changed {
                *current = Some(polled);
            }
            changed
        });
        if failed {
            // Every watcher is told and ends; the next one polls afresh.
            lock(&polls).remove(&sweep);
            return;
        }
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
        let text = "name = \"w\"\ndataset = \"mnist\"\nseeds = [1]\n[recipe]\nepochs = 2\nlr_milestones = [1]\n\
                    [grid]\ndepth = [10]\nwidth = [1]\n";
        let spec = crate::spec::Spec::parse(text).unwrap();
        let expansion = spec.expand(false).unwrap();
        let sweep = crate::store::NewSweep {
            name: &spec.name,
            dataset: spec.dataset,
            spec_toml: text,
            engines: &spec.engines.defined,
            priority: 0,
            max_attempts: 3,
            jobs: &expansion.jobs,
            reserve: &expansion.reserve,
            seeds_target_ci: None,
            max_failed_fraction: None,
        };
        store.submit_sweep(&sweep, 1_000).await.unwrap();
        let watchers = Watchers::new(store);
        let mut a = watchers.subscribe("w");
        let mut b = watchers.subscribe("w");
        assert_eq!(watchers.polled(), 1, "one poller for both");
        for receiver in [&mut a, &mut b] {
            receiver.wait_for(Option::is_some).await.unwrap();
            assert_eq!(receiver.borrow().clone().unwrap().unwrap().total, 1);
        }
        drop((a, b));
        tokio::time::sleep(POLL_INTERVAL * 3).await;
        assert_eq!(watchers.polled(), 0, "a poller ends with its last watcher");
        // An unknown sweep: its watchers are told, and its poller ends.
        let mut c = watchers.subscribe("nope");
        c.wait_for(Option::is_some).await.unwrap();
        let told = c.borrow().clone().unwrap().unwrap_err();
        assert_eq!(told.code(), tonic::Code::NotFound);
        assert_eq!(watchers.polled(), 0);
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
