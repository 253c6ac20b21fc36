//! One contract for both backends: every test here runs against SQLite
//! and against PostgreSQL (see `contract_tests!`).

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{spec, submit, token};
use widesweep_arch::Precision;
use widesweep_coordinator::store::{
    EpochMetrics, Fence, JobResult, JobStatus, NewCheckpoint, Store, StoreError, SweepAction, SweepState,
};

const LEASE: i64 = 60_000;

fn metrics(epoch: u32, test_error: f64) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 2.0 / epoch as f64,
        train_error: 0.5,
        test_loss: 1.5,
        test_error,
        lr: 0.1,
        epoch_seconds: 10.0,
        images_per_second: 100.0,
    }
}

fn result(epoch: u32, test_error: f64) -> JobResult {
    JobResult {
        final_metrics: metrics(epoch, test_error),
        best_test_error: test_error,
        train_seconds: 30.0,
        provenance: None,
    }
}

async fn submit_is_idempotent_and_adds_only_new_cells(store: Arc<dyn Store>) {
    let first = submit(&*store, &spec("s", &[1], &[1, 2]), 0, 3).await;
    assert_eq!((first.new, first.existing, first.dropped), (2, 0, 0));
    let again = submit(&*store, &spec("s", &[1], &[1, 2]), 0, 3).await;
    assert_eq!((again.new, again.existing, again.dropped), (0, 2, 0));
    assert_eq!(again.sweep_id, first.sweep_id);
    let wider = submit(&*store, &spec("s", &[1, 2], &[1, 2]), 0, 3).await;
    assert_eq!((wider.new, wider.existing, wider.dropped), (2, 2, 0));
    let narrowed = submit(&*store, &spec("s", &[2], &[1, 2]), 0, 3).await;
    assert_eq!((narrowed.new, narrowed.existing, narrowed.dropped), (0, 2, 2));
    let summary = store.sweep("s").await.unwrap();
    assert_eq!(summary.counts.total(), 2, "dropped cells are not counted");
    assert_eq!(store.sweep_jobs("s").await.unwrap().len(), 4, "dropped cells are kept");
    // Dropped pending jobs are never leased.
    let worker = store.register_worker("h", &["cpu".into()], "t", 0).await.unwrap();
    let mut leased = 0;
    while let Some(job) = store.lease_job(worker, "cpu", token(), LEASE, 2_000).await.unwrap() {
        assert_eq!(job.config.width, 2);
        leased += 1;
    }
    assert_eq!(leased, 2);
}

async fn a_job_runs_from_lease_to_success(store: Arc<dyn Store>) {
    submit(&*store, &spec("cycle", &[2], &[7]), 0, 3).await;
    let worker = store.register_worker("host", &["cpu".into()], "0.1", 0).await.unwrap();
    let job = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
    assert_eq!(job.attempt, 1);
    assert_eq!(job.config.seed, 7);
    assert_eq!(job.config.width, 2);
    assert_eq!(job.config.recipe.lr_milestones, vec![2]);
    assert_eq!(job.lease_expires_at_ms, 1_000 + LEASE);
    assert!(job.checkpoint.is_none());
    let renewed = store.report_epoch(job.fence(), &metrics(1, 0.6), LEASE, 5_000).await.unwrap();
    assert_eq!(renewed, 5_000 + LEASE);
    store.report_epoch(job.fence(), &metrics(2, 0.5), LEASE, 6_000).await.unwrap();
    store.heartbeat(job.fence(), LEASE, 7_000).await.unwrap();
    store.complete_job(job.fence(), &result(3, 0.4), 8_000).await.unwrap();
    let row = store.job(job.job_id).await.unwrap();
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.final_test_error, Some(0.4));
    let epochs: Vec<u32> = store.job_epochs(job.job_id).await.unwrap().iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, [1, 2, 3]);
    let summary = store.sweep("cycle").await.unwrap();
    assert_eq!(summary.counts.succeeded, 1);
    assert_eq!((summary.epochs_done, summary.epochs_total), (3, 3));
    assert_eq!(summary.mean_epoch_seconds, Some(10.0));
    assert_eq!(summary.eta_seconds(), Some(0.0));
    assert!(store.lease_job(worker, "cpu", token(), LEASE, 9_000).await.unwrap().is_none());
}

/// A recipe's precision is stored with each job and leased with it; cells
/// that differ only in it are different cells.
async fn precision_is_stored_and_leased_with_the_job(store: Arc<dyn Store>) {
    let f32_spec = spec("mixed", &[1], &[1]);
    let bf16_spec = f32_spec.replace("[recipe]\n", "[recipe]\nprecision = \"bf16\"\n");
    assert_ne!(bf16_spec, f32_spec, "the fixture has a [recipe] table");
    submit(&*store, &f32_spec, 0, 3).await;
    let outcome = submit(&*store, &bf16_spec, 0, 3).await;
    assert_eq!((outcome.new, outcome.dropped), (1, 1), "another precision is another cell");
    let worker = store.register_worker("host", &["cuda:0".into()], "0.1", 0).await.unwrap();
    let job = store.lease_job(worker, "cuda:0", token(), LEASE, 1_000).await.unwrap().unwrap();
    assert_eq!(job.config.recipe.precision, Precision::Bf16);
    let rows = store.sweep_results("mixed").await.unwrap();
    let mut stored: Vec<Precision> = rows.iter().map(|r| r.config.recipe.precision).collect();
    stored.sort();
    assert_eq!(stored, [Precision::F32, Precision::Bf16]);
}

async fn concurrent_leasers_never_receive_the_same_job(store: Arc<dyn Store>) {
    let seeds: Vec<u64> = (1..=60).collect();
    submit(&*store, &spec("race", &[1], &seeds), 0, 3).await;
    let mut tasks = Vec::new();
    for slot in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let worker = store.register_worker(&format!("w{slot}"), &[], "t", 0).await.unwrap();
            let mut mine = Vec::new();
            while let Some(job) = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap() {
                mine.push(job.job_id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 60, "every job leased once");
    assert_eq!(distinct.len(), 60, "no job leased twice");
}

async fn a_stale_attempt_can_never_write(store: Arc<dyn Store>) {
    submit(&*store, &spec("fence", &[1], &[1]), 0, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let old = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
    store.report_epoch(old.fence(), &metrics(1, 0.9), LEASE, 2_000).await.unwrap();
    // The worker freezes; its lease expires and the reaper requeues the job.
    assert_eq!(store.reap_expired(2_000 + LEASE + 1).await.unwrap(), 1);
    let new = store.lease_job(worker, "cpu", token(), LEASE, 70_000).await.unwrap().unwrap();
    assert_eq!((new.job_id, new.attempt), (old.job_id, 2));
    // The old attempt wakes up: everything it sends is refused.
    let stale = |r: Result<_, StoreError>| {
        assert!(matches!(r, Err(StoreError::StaleAttempt { attempt: 1, current: 2, .. })), "{r:?}");
    };
    stale(store.report_epoch(old.fence(), &metrics(2, 0.99), LEASE, 71_000).await.map(|_| ()));
    stale(store.heartbeat(old.fence(), LEASE, 71_000).await.map(|_| ()));
    stale(store.complete_job(old.fence(), &result(3, 0.99), 71_000).await.map(|_| ()));
    stale(store.fail_job(old.fence(), "late", true, 71_000).await.map(|_| ()));
    stale(store.release_job(old.fence(), 71_000).await);
    let checkpoint = NewCheckpoint { epoch: 1, sha256: "a".repeat(64), size_bytes: 1 };
    stale(store.add_checkpoint(old.fence(), &checkpoint, 71_000).await.map(|_| ()));
    // The new attempt finishes; its result stands.
    for epoch in 1..=2 {
        store.report_epoch(new.fence(), &metrics(epoch, 0.5), LEASE, 71_500).await.unwrap();
    }
    store.complete_job(new.fence(), &result(3, 0.25), 72_000).await.unwrap();
    stale(store.complete_job(old.fence(), &result(3, 0.99), 73_000).await.map(|_| ()));
    let row = store.job(new.job_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.final_test_error, row.attempt), ("succeeded", Some(0.25), 2));
}

async fn expired_leases_return_until_max_attempts(store: Arc<dyn Store>) {
    submit(&*store, &spec("expire", &[1], &[1]), 0, 2).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let first = store.lease_job(worker, "cpu", token(), LEASE, 0).await.unwrap().unwrap();
    assert_eq!(store.reap_expired(LEASE - 1).await.unwrap(), 0, "an unexpired lease stays");
    assert_eq!(store.reap_expired(LEASE + 1).await.unwrap(), 1);
    let row = store.job(first.job_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts_spent), ("pending", 1));
    assert!(row.last_error.unwrap().contains("expired"));
    let second = store.lease_job(worker, "cpu", token(), LEASE, 100_000).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2);
    store.reap_expired(100_000 + LEASE + 1).await.unwrap();
    let row = store.job(first.job_id).await.unwrap();
    assert_eq!(row.status, "failed", "max_attempts = 2 is spent");
    assert!(store.lease_job(worker, "cpu", token(), LEASE, 200_000).await.unwrap().is_none());
}

/// Preemption never fails a job that makes progress: a lease that expires
/// after a new checkpoint costs no attempt, however often. One that
/// expires with no new checkpoint does, and the job ends saying why.
async fn a_lost_worker_spends_an_attempt_only_without_progress(store: Arc<dyn Store>) {
    submit(&*store, &spec("preempted", &[1], &[1]), 0, 1).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    for (round, epoch) in [(0i64, 1u32), (1, 2)] {
        let now = round * 1_000_000;
        let job = store.lease_job(worker, "cpu", token(), LEASE, now).await.unwrap().unwrap();
        store.report_epoch(job.fence(), &metrics(epoch, 0.5), LEASE, now + 10).await.unwrap();
        let checkpoint = NewCheckpoint { epoch, sha256: epoch.to_string().repeat(64), size_bytes: 10 };
        store.add_checkpoint(job.fence(), &checkpoint, now + 11).await.unwrap();
        assert_eq!(store.reap_expired(now + 10 + LEASE + 1).await.unwrap(), 1);
        let row = store.job(job.job_id).await.unwrap();
        assert_eq!((row.status, row.attempts_spent, row.lost_leases), (JobStatus::Pending, 0, round as u32 + 1));
        assert!(row.last_error.unwrap().contains("no attempt spent"));
    }
    // max_attempts = 1: the third attempt finishes the job from epoch 2.
    let job = store.lease_job(worker, "cpu", token(), LEASE, 3_000_000).await.unwrap().unwrap();
    assert_eq!((job.attempt, job.checkpoint.as_ref().map(|c| c.epoch)), (3, Some(2)));
    store.report_epoch(job.fence(), &metrics(3, 0.4), LEASE, 3_000_010).await.unwrap();
    store.complete_job(job.fence(), &result(3, 0.4), 3_000_020).await.unwrap();
    assert_eq!(store.job(job.job_id).await.unwrap().status, JobStatus::Succeeded);

    // Without progress, every lost worker spends an attempt.
    submit(&*store, &spec("stuck", &[1], &[1]), 0, 2).await;
    for round in 0..2i64 {
        let now = 10_000_000 + round * 1_000_000;
        let job = store.lease_job(worker, "cpu", token(), LEASE, now).await.unwrap().unwrap();
        store.report_epoch(job.fence(), &metrics(1, 0.5), LEASE, now + 10).await.unwrap();
        assert_eq!(store.reap_expired(now + 10 + LEASE + 1).await.unwrap(), 1);
        let row = store.job(job.job_id).await.unwrap();
        assert_eq!((row.attempts_spent, row.lost_leases), (round as u32 + 1, round as u32 + 1));
        if round == 0 {
            assert_eq!(row.status, JobStatus::Pending);
        } else {
            assert_eq!(row.status, JobStatus::Failed, "max_attempts = 2 lost workers without progress");
            let error = row.last_error.unwrap();
            assert!(error.contains("all 2 attempts are spent") && error.contains("2 lost workers"), "{error}");
        }
    }
}

async fn release_hands_back_without_spending_an_attempt(store: Arc<dyn Store>) {
    submit(&*store, &spec("release", &[1], &[1]), 0, 1).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let first = store.lease_job(worker, "cpu", token(), LEASE, 0).await.unwrap().unwrap();
    store.release_job(first.fence(), 10).await.unwrap();
    let row = store.job(first.job_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts_spent), ("pending", 0));
    let second = store.lease_job(worker, "cpu", token(), LEASE, 20).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2, "the fencing token still grows");
    assert!(matches!(store.heartbeat(first.fence(), LEASE, 30).await, Err(StoreError::StaleAttempt { .. })));
}

async fn failures_requeue_until_max_attempts(store: Arc<dyn Store>) {
    submit(&*store, &spec("fail", &[1, 2], &[1]), 0, 2).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let a = store.lease_job(worker, "cpu", token(), LEASE, 0).await.unwrap().unwrap();
    assert!(store.fail_job(a.fence(), "CUDA out of memory", true, 1).await.unwrap());
    let b = store.lease_job(worker, "cpu", token(), LEASE, 2).await.unwrap().unwrap();
    assert_eq!(b.job_id, a.job_id, "a requeued job keeps its place");
    assert!(!store.fail_job(b.fence(), "again", true, 3).await.unwrap());
    let row = store.job(a.job_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.last_error.as_deref()), ("failed", Some("again")));
    let c = store.lease_job(worker, "cpu", token(), LEASE, 4).await.unwrap().unwrap();
    assert!(!store.fail_job(c.fence(), "bad config", false, 5).await.unwrap(), "not retryable: fails at once");
    assert_eq!(store.sweep("fail").await.unwrap().counts.failed, 2);
}

async fn pause_resume_and_cancel(store: Arc<dyn Store>) {
    submit(&*store, &spec("steer", &[1], &[1, 2, 3]), 0, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let running = store.lease_job(worker, "cpu", token(), LEASE, 0).await.unwrap().unwrap();
    let paused = store.steer_sweep("steer", SweepAction::Pause, 1).await.unwrap();
    assert_eq!(paused.state, SweepState::Paused);
    assert!(store.lease_job(worker, "cpu", token(), LEASE, 2).await.unwrap().is_none(), "a paused sweep is not leased");
    store.report_epoch(running.fence(), &metrics(1, 0.5), LEASE, 3).await.unwrap();
    store.steer_sweep("steer", SweepAction::Resume, 4).await.unwrap();
    assert!(store.lease_job(worker, "cpu", token(), LEASE, 5).await.unwrap().is_some());
    let cancelled = store.steer_sweep(&paused.id.to_string(), SweepAction::Cancel, 6).await.unwrap();
    assert_eq!(cancelled.state, SweepState::Cancelled);
    assert_eq!(cancelled.counts.cancelled, 3);
    let refused = store.report_epoch(running.fence(), &metrics(2, 0.5), LEASE, 7).await;
    assert!(matches!(refused, Err(StoreError::Cancelled { .. })), "{refused:?}");
    assert!(matches!(store.steer_sweep("steer", SweepAction::Resume, 8).await, Err(StoreError::SweepConflict { .. })));
    assert!(store.lease_job(worker, "cpu", token(), LEASE, 9).await.unwrap().is_none());
}

async fn unknown_jobs_and_sweeps_are_not_found(store: Arc<dyn Store>) {
    let fence = Fence { job_id: 424_242, attempt: 1, token: token() };
    assert!(matches!(store.heartbeat(fence, LEASE, 0).await, Err(StoreError::JobNotFound(424_242))));
    assert!(matches!(store.sweep("nope").await, Err(StoreError::SweepNotFound(_))));
    assert!(matches!(store.steer_sweep("nope", SweepAction::Pause, 0).await, Err(StoreError::SweepNotFound(_))));
}

async fn higher_priority_sweeps_are_leased_first(store: Arc<dyn Store>) {
    submit(&*store, &spec("low", &[1], &[1, 2]), 0, 3).await;
    submit(&*store, &spec("high", &[1], &[1, 2]), 10, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let order: Vec<String> = futures_order(&*store, worker).await;
    assert_eq!(order, ["high", "high", "low", "low"]);
}

/// Longest processing time first within a sweep (the cost model's work
/// grows with the width), first come, first served between sweeps of equal
/// priority: a later sweep of longer jobs does not jump the queue.
async fn the_longest_jobs_of_a_sweep_are_leased_first(store: Arc<dyn Store>) {
    submit(&*store, &spec("first", &[1, 4, 2], &[1, 2]), 0, 3).await;
    submit(&*store, &spec("second", &[8], &[1]), 0, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let mut order = Vec::new();
    while let Some(job) = store.lease_job(worker, "cpu", token(), LEASE, 0).await.unwrap() {
        order.push((job.sweep_name, job.config.width));
    }
    let expected: Vec<(String, u32)> =
        [("first", 4), ("first", 4), ("first", 2), ("first", 2), ("first", 1), ("first", 1), ("second", 8)]
            .into_iter()
            .map(|(s, w)| (s.to_string(), w))
            .collect();
    assert_eq!(order, expected);
}

async fn futures_order(store: &dyn Store, worker: i64) -> Vec<String> {
    let mut order = Vec::new();
    while let Some(job) = store.lease_job(worker, "cpu", token(), LEASE, 0).await.unwrap() {
        order.push(job.sweep_name);
    }
    order
}

async fn checkpoints_are_handed_to_the_next_attempt_and_pruned(store: Arc<dyn Store>) {
    submit(&*store, &spec("ckpt", &[1], &[1]), 0, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let first = store.lease_job(worker, "cpu", token(), LEASE, 0).await.unwrap().unwrap();
    for epoch in 1..=3 {
        store.report_epoch(first.fence(), &metrics(epoch, 0.5), LEASE, 10).await.unwrap();
    }
    let (one, orphans) = store
        .add_checkpoint(first.fence(), &NewCheckpoint { epoch: 1, sha256: "1".repeat(64), size_bytes: 10 }, 11)
        .await
        .unwrap();
    assert!(orphans.is_empty());
    let (two, orphans) = store
        .add_checkpoint(first.fence(), &NewCheckpoint { epoch: 2, sha256: "2".repeat(64), size_bytes: 20 }, 12)
        .await
        .unwrap();
    assert_eq!(orphans, vec!["1".repeat(64)], "the older checkpoint is pruned");
    assert!(store.checkpoint(first.fence(), one.checkpoint_id).await.is_err());
    store.reap_expired(10 + LEASE + 1).await.unwrap();
    let second = store.lease_job(worker, "cpu", token(), LEASE, 100_000).await.unwrap().unwrap();
    assert_eq!(second.checkpoint.as_ref(), Some(&two), "the new attempt resumes from the last checkpoint");
    assert_eq!(store.checkpoint(second.fence(), two.checkpoint_id).await.unwrap(), two);
    // Resumed from epoch 2: epoch 3 is trained again and replaces the old row.
    store.report_epoch(second.fence(), &metrics(3, 0.3), LEASE, 100_001).await.unwrap();
    store
        .add_checkpoint(second.fence(), &NewCheckpoint { epoch: 3, sha256: "3".repeat(64), size_bytes: 30 }, 100_002)
        .await
        .unwrap();
    let orphans = store.complete_job(second.fence(), &result(3, 0.3), 100_003).await.unwrap();
    assert!(orphans.is_empty(), "the last checkpoint is kept: {orphans:?}");
    let epochs = store.job_epochs(second.job_id).await.unwrap();
    assert_eq!(epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2, 3], "no gap, no repeat");
    assert_eq!(epochs[2].test_error, 0.3, "the resumed attempt's epoch 3 stands");
}

async fn a_large_submission_is_one_transaction(store: Arc<dyn Store>) {
    let seeds: Vec<u64> = (1..=3_000).collect();
    let outcome = submit(&*store, &spec("big", &[1, 2], &seeds), 0, 3).await;
    assert_eq!(outcome.new, 6_000);
    let again = submit(&*store, &spec("big", &[1, 2], &seeds), 0, 3).await;
    assert_eq!((again.new, again.existing), (0, 6_000));
    assert_eq!(store.sweep("big").await.unwrap().counts.pending, 6_000);
}

/// The pages ListResults reads: every job and every epoch of one sweep
/// once, in order, across page boundaries, although another sweep's jobs
/// (and their epochs) lie between its own.
async fn pages_hold_one_sweep_in_order(store: Arc<dyn Store>) {
    let a = submit(&*store, &spec("a", &[1], &[1, 2, 3]), 0, 3).await.sweep_id;
    submit(&*store, &spec("b", &[1], &[1, 2]), 0, 3).await;
    submit(&*store, &spec("a", &[1], &[1, 2, 3, 4]), 0, 3).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let mut of_a = Vec::new();
    while let Some(job) = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap() {
        for epoch in 1..=2 {
            store.report_epoch(job.fence(), &metrics(epoch, 0.5), LEASE, 2_000).await.unwrap();
            if job.sweep_name == "a" {
                of_a.push((job.job_id, epoch));
            }
        }
    }
    of_a.sort();
    assert_eq!(of_a.len(), 8);
    let mut epochs = Vec::new();
    let mut after = (0, 0);
    loop {
        let page = store.sweep_epochs_page(a, after, 3).await.unwrap();
        assert!(page.len() <= 3);
        epochs.extend(page.iter().map(|e| (e.job_id, e.metrics.epoch)));
        match page.last() {
            Some(last) => after = (last.job_id, last.metrics.epoch),
            None => break,
        }
    }
    assert_eq!(epochs, of_a);
    let mut jobs = Vec::new();
    let mut after = 0;
    loop {
        let page = store.sweep_results_page(a, after, 3).await.unwrap();
        jobs.extend(page.iter().map(|r| (r.sweep.clone(), r.job_id)));
        match page.last() {
            Some(last) => after = last.job_id,
            None => break,
        }
    }
    let mut expected: Vec<(String, i64)> = of_a.iter().map(|(job, _)| ("a".to_string(), *job)).collect();
    expected.dedup();
    assert_eq!(jobs, expected);
}

/// A machine's error does not spend the job's attempts and sends the job
/// to another host; the same machine error on three hosts ends it, saying
/// so. Every attempt is kept with its worker, host and class.
async fn machine_errors_go_elsewhere_and_end_after_three_hosts(store: Arc<dyn Store>) {
    use widesweep_coordinator::store::{ErrorClass, Failure, group_errors};
    submit(&*store, &spec("machines", &[1], &[1]), 0, 2).await;
    let mut workers = Vec::new();
    for host in ["gpu-a", "gpu-b", "gpu-c"] {
        workers.push(store.register_worker(host, &[], "t", 0).await.unwrap());
    }
    let corrupt =
        Failure { error: "data: t10k-images-idx3-ubyte is corrupt", retryable: true, class: ErrorClass::Machine };
    for (i, worker) in workers.iter().enumerate() {
        let now = 10 + 10 * i as i64;
        for earlier in &workers[..i] {
            assert!(
                store.lease_job(*earlier, "cpu", token(), LEASE, now).await.unwrap().is_none(),
                "not back to a host that failed it"
            );
        }
        let job = store.lease_job(*worker, "cpu", token(), LEASE, now).await.unwrap().expect("another host takes it");
        let requeued = store.fail_attempt(job.fence(), &corrupt, now + 1).await.unwrap();
        let row = store.job(job.job_id).await.unwrap();
        assert_eq!(row.attempts_spent, 0, "a machine's error spends none of the job's attempts");
        assert_eq!(requeued, i < 2, "requeued until the third host");
        if i == 2 {
            assert_eq!(row.status.as_str(), "failed");
            let error = row.last_error.unwrap();
            assert!(error.starts_with("a machine error on 3 host(s) (3 attempts), the last: data:"), "{error}");
        }
    }
    let failed = store.failed_attempts("machines", 100).await.unwrap();
    let hosts: Vec<&str> = failed.iter().map(|a| a.hostname.as_str()).collect();
    assert_eq!(hosts, ["gpu-a", "gpu-b", "gpu-c"]);
    assert!(failed.iter().all(|a| a.error_class == "machine" && a.error == corrupt.error));
    let groups = group_errors(&failed);
    assert_eq!(groups.len(), 1, "one cause");
    assert_eq!((groups[0].attempts, groups[0].jobs, groups[0].workers.len()), (3, 1, 3));
}

/// A worker is not given back a job it failed while a worker on another
/// host is alive; alone, it retries the job itself. The job's own errors
/// spend its attempts as before.
async fn a_failed_job_goes_to_another_worker_unless_one_is_alone(store: Arc<dyn Store>) {
    use widesweep_coordinator::store::{ErrorClass, Failure};
    submit(&*store, &spec("elsewhere", &[1], &[1]), 0, 3).await;
    let alone = store.register_worker("solo", &[], "t", 0).await.unwrap();
    let crash = Failure { error: "segfault", retryable: true, class: ErrorClass::Unknown };
    let first = store.lease_job(alone, "cpu", token(), LEASE, 1).await.unwrap().unwrap();
    assert!(store.fail_attempt(first.fence(), &crash, 2).await.unwrap());
    let again = store.lease_job(alone, "cpu", token(), LEASE, 3).await.unwrap().expect("alone, it retries");
    assert_eq!(again.job_id, first.job_id);
    let other = store.register_worker("other", &[], "t", 4).await.unwrap();
    assert!(store.fail_attempt(again.fence(), &crash, 5).await.unwrap());
    assert!(store.lease_job(alone, "cpu", token(), LEASE, 6).await.unwrap().is_none(), "another worker is alive");
    let third = store.lease_job(other, "cpu", token(), LEASE, 7).await.unwrap().expect("the other worker takes it");
    let diverged = Failure { error: "the loss diverged", retryable: true, class: ErrorClass::Job };
    assert!(!store.fail_attempt(third.fence(), &diverged, 8).await.unwrap(), "the third of three attempts");
    let row = store.job(first.job_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts_spent), ("failed", 3));
}

/// A sweep whose failures pass its budget is paused, saying why, instead of
/// burning through its queue; a resume counts the budget again from there.
async fn a_spent_failure_budget_pauses_the_sweep(store: Arc<dyn Store>) {
    let text = format!("max_failed_fraction = 0.25\n{}", spec("budget", &[1, 2], &[1, 2]));
    submit(&*store, &text, 0, 1).await;
    let worker = store.register_worker("h", &[], "t", 0).await.unwrap();
    let fail_next = |now: i64| {
        let store = Arc::clone(&store);
        async move {
            let job = store.lease_job(worker, "cpu", token(), LEASE, now).await.unwrap().expect("a job to lease");
            assert!(!store.fail_job(job.fence(), "bad config", false, now + 1).await.unwrap());
        }
    };
    fail_next(10).await;
    let summary = store.sweep("budget").await.unwrap();
    assert_eq!((summary.state, summary.pause_reason), (SweepState::Active, None), "1 of 4 is within 0.25");
    fail_next(20).await;
    let summary = store.sweep("budget").await.unwrap();
    assert_eq!(summary.state, SweepState::Paused, "2 of 4 failed");
    let reason = summary.pause_reason.unwrap();
    assert!(reason.starts_with("the failure budget is spent: 2 of 4 jobs failed"), "{reason}");
    assert!(store.lease_job(worker, "cpu", token(), LEASE, 30).await.unwrap().is_none(), "paused: nothing leased");
    let resumed = store.steer_sweep("budget", SweepAction::Resume, 40).await.unwrap();
    assert_eq!((resumed.state, resumed.pause_reason), (SweepState::Active, None));
    fail_next(50).await;
    assert_eq!(store.sweep("budget").await.unwrap().state, SweepState::Active, "1 failure since the resume");
    fail_next(60).await;
    assert_eq!(store.sweep("budget").await.unwrap().state, SweepState::Paused, "2 since the resume");
}

/// A worker whose last three attempts failed with machine errors on three
/// different jobs is quarantined by the coordinator: it leases nothing,
/// even with jobs pending, until released.
async fn the_coordinator_quarantines_a_worker_failing_with_machine_errors(store: Arc<dyn Store>) {
    use widesweep_coordinator::store::{ErrorClass, Failure};
    submit(&*store, &spec("black-hole", &[1, 2], &[1, 2]), 0, 3).await;
    let hole = store.register_worker("gpu-bad", &[], "t", 0).await.unwrap();
    let _healthy = store.register_worker("gpu-good", &[], "t", 0).await.unwrap();
    let disk = Failure { error: "No space left on device", retryable: true, class: ErrorClass::Machine };
    let mut failed = HashSet::new();
    for now in [10, 20, 30] {
        let job = store.lease_job(hole, "cpu", token(), LEASE, now).await.unwrap().expect("a job it has not failed");
        assert!(failed.insert(job.job_id), "a different job each time");
        store.fail_attempt(job.fence(), &disk, now + 1).await.unwrap();
    }
    let listed = store.workers(0).await.unwrap();
    let bad = listed.iter().find(|w| w.worker_id == hole).unwrap();
    let reason = bad.quarantine_reason.clone().expect("quarantined");
    assert!(reason.starts_with("machine errors on 3 different jobs in a row, the last: No space left"), "{reason}");
    assert!(bad.quarantined_until_ms.unwrap() > 31);
    assert!(store.lease_job(hole, "cpu", token(), LEASE, 40).await.unwrap().is_none(), "quarantined: nothing");
    store.release_worker(hole).await.unwrap();
    let job = store.lease_job(hole, "cpu", token(), LEASE, 50).await.unwrap().expect("released, it leases again");
    assert!(!failed.contains(&job.job_id), "the job it had not failed");
    assert!(matches!(store.release_worker(987_654).await, Err(StoreError::WorkerNotFound(_))));
}

contract_tests!(
    the_coordinator_quarantines_a_worker_failing_with_machine_errors,
    a_spent_failure_budget_pauses_the_sweep,
    machine_errors_go_elsewhere_and_end_after_three_hosts,
    a_failed_job_goes_to_another_worker_unless_one_is_alone,
    pages_hold_one_sweep_in_order,
    submit_is_idempotent_and_adds_only_new_cells,
    a_job_runs_from_lease_to_success,
    precision_is_stored_and_leased_with_the_job,
    concurrent_leasers_never_receive_the_same_job,
    a_stale_attempt_can_never_write,
    expired_leases_return_until_max_attempts,
    a_lost_worker_spends_an_attempt_only_without_progress,
    release_hands_back_without_spending_an_attempt,
    failures_requeue_until_max_attempts,
    pause_resume_and_cancel,
    unknown_jobs_and_sweeps_are_not_found,
    higher_priority_sweeps_are_leased_first,
    the_longest_jobs_of_a_sweep_are_leased_first,
    checkpoints_are_handed_to_the_next_attempt_and_pruned,
    a_large_submission_is_one_transaction,
);
