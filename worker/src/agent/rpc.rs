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
/// How many INTERNAL answers in a row a call takes before giving up. A
/// coordinator that is down answers UNAVAILABLE, retried for as long as the
/// caller's patience lasts; INTERNAL is usually a database blip, but a
/// request the database refuses every time (a NUL byte PostgreSQL cannot
/// store) answers it forever, and retrying that without end wedged the
/// slot. About 30 s of backoff.
const MAX_INTERNAL_FAILURES: u32 = 10;

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
    let mut internal = 0u32;
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
        internal = if status.code() == Code::Internal { internal + 1 } else { 0 };
        if internal >= MAX_INTERNAL_FAILURES {
            tracing::error!(
                what,
                message = status.message(),
                internal,
                "the coordinator keeps failing this call: giving up"
            );
            return Err(CallError::GaveUp(status));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_keeps_failing_internally_gives_up_and_an_outage_does_not() {
        let patience = Patience::Job(Shutdown::never());
        let tries = AtomicU32::new(0);
        let always_internal = call("report", &patience, || {
            tries.fetch_add(1, Ordering::Relaxed);
            async { Err::<Response<()>, _>(Status::internal("invalid byte sequence for encoding UTF8: 0x00")) }
        })
        .await;
        assert!(matches!(always_internal, Err(CallError::GaveUp(_))));
        assert_eq!(tries.load(Ordering::Relaxed), MAX_INTERNAL_FAILURES);

        // Unavailable (a coordinator restarting) is ridden out however long.
        let tries = AtomicU32::new(0);
        let outage = call("report", &patience, || {
            let n = tries.fetch_add(1, Ordering::Relaxed);
            async move {
                match n {
                    0..30 => Err(Status::unavailable("coordinator restarting")),
                    _ => Ok(Response::new(n)),
                }
            }
        })
        .await;
        assert_eq!(outage.unwrap(), 30);
    }
}
