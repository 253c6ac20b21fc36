//! A graceful stop, asked for once (first Ctrl-C or SIGTERM) and seen by
//! every slot: idle slots stop leasing, busy slots finish their epoch,
//! checkpoint it and hand the job back.

use tokio::sync::watch;

/// The receiving side, cloned into every slot.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side, kept by whoever handles signals.
#[derive(Debug)]
pub struct ShutdownSignal(watch::Sender<bool>);

pub fn channel() -> (ShutdownSignal, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownSignal(tx), Shutdown(rx))
}

impl ShutdownSignal {
    pub fn request(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// A shutdown that is never requested.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        // Leaked on purpose so that the receiver never sees a closed channel.
        std::mem::forget(tx);
        Shutdown(rx)
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a shutdown is requested; never, if the signal was
    /// dropped without asking.
    pub async fn requested(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|requested| *requested).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
