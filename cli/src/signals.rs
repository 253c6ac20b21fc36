//! Ctrl-C, SIGTERM and SIGUSR1 for the long-running commands (`work`,
//! `run`): the first asks for a graceful stop, the second exits at once.
//! SIGUSR1 is what a Slurm job is told to expect before its time limit
//! (`#SBATCH --signal=USR1@300`): busy slots checkpoint and hand their jobs
//! back without spending an attempt, and the SIGTERM at the limit finds
//! nothing left to lose.

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

/// Ctrl-C, SIGTERM (what `docker stop` and most schedulers send) or
/// SIGUSR1 (Slurm's warning before a time limit).
pub async fn first_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::user_defined1())) {
            (Ok(mut term), Ok(mut usr1)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = usr1.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
