//! CPU-heavy work (parsing and expanding specs, rendering tables, summing
//! curves) runs here, off the async workers: a handler that computes for
//! seconds on the runtime stalls every other client's call. At most one
//! such task per core but one runs at once (one on a single core) and the
//! rest wait their turn: a core is left to the threads that serve calls,
//! and two oversized specs never take the whole machine.

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(permits())));

/// Tasks that may run at once: the cores but one, at least one.
fn permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// The task panicked or the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("a CPU task did not finish: {0}")]
pub struct CpuTaskFailed(String);

/// Runs `work` on the blocking pool once a core is free, and waits for it.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, CpuTaskFailed> {
    let permit = Arc::clone(&PERMITS).acquire_owned().await.map_err(|e| CpuTaskFailed(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| CpuTaskFailed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_tasks_run_at_once_than_there_are_permits() {
        let cores = permits();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..cores * 3)
            .map(|_| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                tokio::spawn(run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= cores, "{} ran at once on {cores} cores", most.load(Ordering::SeqCst));
    }
}
