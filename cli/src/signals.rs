//! Ctrl-C and SIGTERM for the long-running commands (`work`, `run`): the
//! first asks for a graceful stop, the second exits at once.

use widesweep_worker::agent::ShutdownSignal;

/// Exit status of a process stopped by a second signal (128 + SIGINT).
const EXIT_INTERRUPTED: i32 = 130;

/// Waits for the first signal, asks for a graceful stop, then exits the
/// process on the second.
pub async fn graceful_then_immediate(signal: ShutdownSignal, what: &'static str) {
    first_signal().await;
    signal.request();
    eprintln!("stopping: {what} (press Ctrl-C again to exit at once)");
    first_signal().await;
    eprintln!("exiting at once; leased jobs return to the queue when their leases expire");
    std::process::exit(EXIT_INTERRUPTED);
}

/// Ctrl-C or SIGTERM (what `docker stop` and most schedulers send).
pub async fn first_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
