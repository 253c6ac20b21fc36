//! Calls to the coordinator, retried with capped exponential backoff while
//! the failure is transient (coordinator restarting, database blip,
//! network), and sorted into what the caller must do otherwise.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tonic::{Code, Response, Status};

use super::shutdown::Shutdown;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long calls about a running job keep retrying once a shutdown is
/// requested: long enough to hand the job back across a short outage.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The coordinator no longer recognises this attempt (its lease expired
    /// and was given to another worker, or the sweep was cancelled): the
    /// job must be dropped without another word.
    #[error("the lease is gone: {0}")]
    LeaseGone(String),
    /// Refused for good (wrong token, invalid request): retrying cannot help.
    #[error("refused by the coordinator: {} ({:?})", .0.message(), .0.code())]
    Refused(Status),
    /// A transient failure outlasted the caller's patience.
    #[error("gave up after a transient failure: {} ({:?})", .0.message(), .0.code())]
    GaveUp(Status),
}

enum Kind {
    Transient,
    LeaseGone,
    Refused,
}

fn classify(status: &Status) -> Kind {
    match status.code() {
        // Internal covers the coordinator's database errors; Unknown and
        // Cancelled are what a connection torn down mid-call looks like.
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::Internal => {
            Kind::Transient
        }
        _ if lease_gone(status) => Kind::LeaseGone,
        _ => Kind::Refused,
    }
}

/// The coordinator no longer recognises the attempt: unknown job, a stale
/// attempt (fenced off), or a cancelled sweep.
pub fn lease_gone(status: &Status) -> bool {
    matches!(status.code(), Code::NotFound | Code::Aborted | Code::FailedPrecondition)
}

/// How long a call keeps retrying transient failures.
#[derive(Clone, Debug)]
pub enum Patience {
    /// Until a shutdown is requested (idle work: leasing, registering).
    Idle(Shutdown),
    /// Until a short grace period after a shutdown request (work on a
    /// leased job, which should be reported or handed back if at all possible).
    Job(Shutdown),
}

impl Patience {
    fn shutdown(&self) -> &Shutdown {
        match self {
            Patience::Idle(s) | Patience::Job(s) => s,
        }
    }
}

/// Runs `call` until it succeeds, fails for good, or `patience` runs out.
pub async fn call<T, F, Fut>(what: &str, patience: &Patience, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let mut delay = FIRST_BACKOFF;
    let mut deadline: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let status = match call().await {
            Ok(response) => {
                if failures > 0 {
                    tracing::info!(what, failures, "coordinator reachable again");
                }
                return Ok(response.into_inner());
            }
            Err(status) => status,
        };
        match classify(&status) {
            Kind::LeaseGone => return Err(CallError::LeaseGone(status.message().to_string())),
            Kind::Refused => return Err(CallError::Refused(status)),
            Kind::Transient => {}
        }
        let shutdown = patience.shutdown();
        if shutdown.is_requested() {
            match patience {
                Patience::Idle(_) => return Err(CallError::GaveUp(status)),
                Patience::Job(_) => {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
                    if Instant::now() >= deadline {
                        return Err(CallError::GaveUp(status));
                    }
                }
            }
        }
        failures += 1;
        let jitter = rand::rng().random_range(0..=delay.as_millis() as u64 / 2);
        let wait = delay + Duration::from_millis(jitter);
        tracing::warn!(what, code = ?status.code(), message = status.message(), retry_in_ms = wait.as_millis() as u64, "coordinator call failed; retrying");
        match patience {
            Patience::Idle(shutdown) if !shutdown.is_requested() => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.requested() => return Err(CallError::GaveUp(status)),
                }
            }
            _ => tokio::time::sleep(wait).await,
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}
