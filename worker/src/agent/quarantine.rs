//! A slot that keeps failing with its machine's errors (data missing or
//! corrupt, out of memory, CUDA, a full disk) is a black hole: it fails
//! every job it touches, fast, and so wins every race for the queue. After
//! machine errors on [`Quarantine::after`] different jobs in a row, with no
//! success between, the slot stops leasing: it waits (30 s, then twice as
//! long each time, at most 15 min) before trying again, or, when it runs in
//! an allocation that ends on its own (`--exit-when-idle`, Slurm), leaves
//! with [`EXIT_QUARANTINED`] so the allocation moves to another machine.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::time::Duration;

use widesweep_proto::v1 as pb;

use super::slot::Slot;

/// The worker's exit status when a slot was quarantined and the worker left
/// (EX_TEMPFAIL: another machine may do better).
pub const EXIT_QUARANTINED: u8 = 75;

/// When a slot quarantines itself, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quarantine {
    /// Machine errors on this many different jobs in a row (0: never).
    pub after: u32,
    /// The first wait; each next one doubles, up to `longest`.
    pub first: Duration,
    pub longest: Duration,
}

impl Default for Quarantine {
    fn default() -> Self {
        Self { after: 3, first: Duration::from_secs(30), longest: Duration::from_secs(15 * 60) }
    }
}

/// A slot's recent machine errors.
#[derive(Debug, Default)]
pub(super) struct Streak {
    /// Jobs that failed with a machine's error since the last other outcome.
    jobs: Vec<i64>,
    /// The last such error.
    last_error: String,
    /// Quarantines since the last success: each waits twice as long.
    times: u32,
}

/// What the slot does after an outcome.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Lease,
    /// Stop leasing: machine errors on `jobs` different jobs, the last `error`.
    Quarantine {
        jobs: usize,
        error: String,
        wait: Duration,
    },
}

impl Streak {
    /// Notes how a job ended: `Some(error)` for a machine's error.
    pub(super) fn note(&mut self, policy: &Quarantine, job_id: i64, machine_error: Option<&str>) -> Verdict {
        let Some(error) = machine_error else {
            self.jobs.clear();
            self.times = 0;
            return Verdict::Lease;
        };
        if !self.jobs.contains(&job_id) {
            self.jobs.push(job_id);
        }
        self.last_error = error.to_string();
        if policy.after == 0 || self.jobs.len() < policy.after as usize {
            return Verdict::Lease;
        }
        let wait = policy.first.saturating_mul(1 << self.times.min(16)).min(policy.longest);
        let verdict = Verdict::Quarantine { jobs: self.jobs.len(), error: self.last_error.clone(), wait };
        // Once out, the slot must fail `after` different jobs again.
        self.jobs.clear();
        self.times += 1;
        verdict
    }
}

impl Slot {
    /// Quarantines this slot after machine errors on `jobs` different jobs,
    /// the last `error`: tells the coordinator, then waits `wait` (Continue)
    /// or, in an allocation that ends on its own, leaves (Break).
    pub(super) async fn sit_out(&self, jobs: usize, error: &str, wait: Duration) -> ControlFlow<()> {
        let leaving = self.leave.when_idle.is_some() || self.leave.deadline.is_some();
        self.report_quarantine(error, if leaving { Duration::ZERO } else { wait }).await;
        if leaving {
            tracing::error!(
                slot = self.index, device = %self.device_spec, jobs, %error,
                "quarantined: this machine's errors on {jobs} different jobs in a row; leaving so that the allocation moves"
            );
            self.quarantined.store(true, Ordering::Relaxed);
            return ControlFlow::Break(());
        }
        tracing::error!(
            slot = self.index, device = %self.device_spec, jobs, %error, wait_s = wait.as_secs_f64(),
            "quarantined: this machine's errors on {jobs} different jobs in a row; leasing again after the wait"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.shutdown.requested() => {}
        }
        ControlFlow::Continue(())
    }

    /// Tells the coordinator why this slot stops leasing (best effort: the
    /// slot's own wait holds whatever the answer).
    async fn report_quarantine(&self, error: &str, wait: Duration) {
        let request = pb::QuarantineReport {
            worker_id: self.worker_id,
            worker_secret: self.worker_secret.clone(),
            reason: format!("slot {} ({}): {error}", self.index, self.device_spec),
            wait_seconds: u32::try_from(wait.as_secs()).unwrap_or(u32::MAX),
        };
        if let Err(status) = self.client.clone().report_quarantine(request).await {
            tracing::warn!(%status, "could not tell the coordinator about the quarantine");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_errors_on_different_jobs_in_a_row_quarantine_with_a_growing_wait() {
        let policy = Quarantine { after: 3, first: Duration::from_secs(30), longest: Duration::from_secs(100) };
        let mut streak = Streak::default();
        assert_eq!(streak.note(&policy, 1, Some("corrupt")), Verdict::Lease);
        // The same job again is not another machine's worth of evidence.
        assert_eq!(streak.note(&policy, 1, Some("corrupt")), Verdict::Lease);
        assert_eq!(streak.note(&policy, 2, Some("corrupt")), Verdict::Lease);
        let first = streak.note(&policy, 3, Some("disk full"));
        assert_eq!(first, Verdict::Quarantine { jobs: 3, error: "disk full".into(), wait: Duration::from_secs(30) });
        for job in 4..6 {
            assert_eq!(streak.note(&policy, job, Some("disk full")), Verdict::Lease);
        }
        let second = streak.note(&policy, 6, Some("disk full"));
        assert!(matches!(second, Verdict::Quarantine { wait, .. } if wait == Duration::from_secs(60)));
        for job in 7..10 {
            streak.note(&policy, job, Some("disk full"));
        }
        for job in 10..13 {
            let verdict = streak.note(&policy, job, Some("disk full"));
            if let Verdict::Quarantine { wait, .. } = verdict {
                assert_eq!(wait, Duration::from_secs(100), "capped");
            }
        }
        // A success (or the job's own error) ends the streak.
        streak.note(&policy, 13, Some("disk full"));
        assert_eq!(streak.note(&policy, 14, None), Verdict::Lease);
        assert_eq!(streak.note(&policy, 15, Some("disk full")), Verdict::Lease);
        assert_eq!(streak.note(&policy, 16, Some("disk full")), Verdict::Lease);
        assert!(
            matches!(streak.note(&policy, 17, Some("disk full")), Verdict::Quarantine { wait, .. } if wait == Duration::from_secs(30))
        );
        let never = Quarantine { after: 0, ..policy };
        assert!((0..10).all(|job| streak.note(&never, job, Some("x")) == Verdict::Lease));
    }
}
