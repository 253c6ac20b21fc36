//! Adaptive seeds and the cost model's ETA and device rates, on both
//! backends: jobs of known results finish, and the store must add exactly
//! the reserve seeds the cells' 95 % intervals call for.

mod common;

use std::sync::Arc;

use common::{metrics, submit, token};
use widesweep_coordinator::spec::Spec;
use widesweep_coordinator::store::{JobResult, JobStatus, LeasedJob, Store, SweepAction};

const LEASE: i64 = 60_000;

/// `widths` x seeds 1..=start, growing to `max` while a cell's interval is
/// wider than `target` pp; 3 epochs.
fn adaptive_spec(name: &str, widths: &[u32], start: u32, max: u32, target: f64) -> String {
    let widths: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
    format!(
        "name = \"{name}\"\ndataset = \"cifar10\"\n[seeds]\nstart = {start}\nmax = {max}\ntarget_ci = {target}\n\
         [recipe]\nepochs = 3\n[grid]\ndepth = [10]\nwidth = [{}]\n",
        widths.join(", ")
    )
}

/// Leases the next job, which must be of `width` and `seed`, and finishes
/// it with a final test error of `error_pct` percent.
async fn run_job(store: &dyn Store, worker: i64, width: u32, seed: u64, error_pct: f64) {
    let job = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().expect("a job to lease");
    assert_eq!((job.config.width, job.config.seed), (width, seed), "the job leased next");
    finish(store, &job, error_pct).await;
}

/// Reports the job's three epochs, the last with `error_pct` percent.
async fn finish(store: &dyn Store, job: &LeasedJob, error_pct: f64) {
    for epoch in 1..=2 {
        store.report_epoch(job.fence(), &metrics(epoch, 0.5), LEASE, 1_500).await.unwrap();
    }
    let result = JobResult {
        final_metrics: metrics(3, error_pct / 100.0),
        best_test_error: error_pct / 100.0,
        train_seconds: 30.0,
        provenance: None,
    };
    store.complete_job(job.fence(), &result, 2_000).await.unwrap();
}

/// The seeds of a cell that are in the spec, in order.
async fn seeds_of(store: &dyn Store, sweep: &str, width: u32) -> Vec<u64> {
    let mut seeds: Vec<u64> = store
        .sweep_results(sweep)
        .await
        .unwrap()
        .iter()
        .filter(|row| row.in_spec && row.config.width == width)
        .map(|row| row.config.seed)
        .collect();
    seeds.sort();
    seeds
}

/// Width 2 is leased before width 1 (longest first). Cell k=2 agrees with
/// itself at once (30 %, 30 %: interval 0); cell k=1 (10 %, 20 %: +-63.5 pp)
/// gets seed 3, then seed 4, its last.
async fn a_cell_gets_seeds_until_its_interval_is_narrow_enough(store: Arc<dyn Store>) {
    let text = adaptive_spec("adaptive", &[1, 2], 2, 4, 1.0);
    let first = submit(&*store, &text, 0, 3).await;
    assert_eq!((first.new, first.reserve, first.added), (4, 4, 0));
    let summary = store.sweep("adaptive").await.unwrap();
    assert_eq!((summary.counts.total(), summary.reserve, summary.seeds_target_ci), (4, 4, Some(1.0)));
    let worker = store.register_worker("h", &["cpu".into()], "t", 0).await.unwrap();

    run_job(&*store, worker, 2, 1, 30.0).await;
    run_job(&*store, worker, 2, 2, 30.0).await;
    assert_eq!(seeds_of(&*store, "adaptive", 2).await, [1, 2], "a decided cell gets no seed");
    // One seed of k=1 finished and one running: the cell is not judged yet.
    let running = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
    run_job(&*store, worker, 1, 2, 20.0).await;
    assert_eq!(seeds_of(&*store, "adaptive", 1).await, [1, 2]);
    finish(&*store, &running, 10.0).await;
    assert_eq!(seeds_of(&*store, "adaptive", 1).await, [1, 2, 3], "10 % and 20 %: +-63.5 pp is too wide");
    let summary = store.sweep("adaptive").await.unwrap();
    assert_eq!((summary.counts.pending, summary.reserve), (1, 3));

    run_job(&*store, worker, 1, 3, 15.0).await;
    assert_eq!(seeds_of(&*store, "adaptive", 1).await, [1, 2, 3, 4], "+-12.4 pp is still too wide");
    run_job(&*store, worker, 1, 4, 15.0).await;
    assert!(store.lease_job(worker, "cpu", token(), LEASE, 3_000).await.unwrap().is_none(), "seed 4 was the last");
    let summary = store.sweep("adaptive").await.unwrap();
    assert_eq!((summary.counts.succeeded, summary.counts.total(), summary.reserve), (6, 6, 2));
    assert!(summary.counts.finished());

    // Submitting the same spec again changes nothing: the added seeds stay.
    let again = submit(&*store, &text, 0, 3).await;
    assert_eq!((again.new, again.existing, again.dropped, again.reserve, again.added), (0, 4, 0, 2, 0));
    assert_eq!(seeds_of(&*store, "adaptive", 1).await, [1, 2, 3, 4]);
    assert_eq!(store.sweep("adaptive").await.unwrap().counts.total(), 6);
}

/// A resubmission judges every cell: a narrower target adds seeds to cells
/// that the old one had decided, and a list of seeds ends the reserve.
async fn resubmitting_with_another_target_or_a_list_of_seeds(store: Arc<dyn Store>) {
    submit(&*store, &adaptive_spec("retarget", &[1], 2, 3, 100.0), 0, 3).await;
    let worker = store.register_worker("h", &["cpu".into()], "t", 0).await.unwrap();
    run_job(&*store, worker, 1, 1, 10.0).await;
    run_job(&*store, worker, 1, 2, 11.0).await;
    assert_eq!(seeds_of(&*store, "retarget", 1).await, [1, 2], "+-6.4 pp is within +-100 pp");
    let narrower = submit(&*store, &adaptive_spec("retarget", &[1], 2, 3, 0.5), 0, 3).await;
    assert_eq!((narrower.added, narrower.reserve), (1, 0));
    assert_eq!(seeds_of(&*store, "retarget", 1).await, [1, 2, 3]);

    let list = common::spec("retarget", &[1], &[1, 2]).replace("lr_milestones = [2]\n", "");
    let listed = submit(&*store, &list, 0, 3).await;
    assert_eq!((listed.new, listed.dropped, listed.reserve), (0, 1, 0), "seed 3 leaves the spec");
    let summary = store.sweep("retarget").await.unwrap();
    assert_eq!((summary.counts.total(), summary.reserve, summary.seeds_target_ci), (2, 0, None));
    assert_eq!(seeds_of(&*store, "retarget", 1).await, [1, 2]);
}

/// A seed that fails for good leaves its cell without an interval: the next
/// seed runs. A cancelled sweep adds nothing and holds no reserve.
async fn failures_call_for_seeds_and_cancel_ends_the_reserve(store: Arc<dyn Store>) {
    submit(&*store, &adaptive_spec("failing", &[1], 2, 4, 1.0), 0, 1).await;
    let worker = store.register_worker("h", &["cpu".into()], "t", 0).await.unwrap();
    run_job(&*store, worker, 1, 1, 10.0).await;
    let job = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
    let retried = store.fail_job(job.fence(), "out of memory", true, 2_000).await.unwrap();
    assert!(!retried, "one attempt only");
    assert_eq!(seeds_of(&*store, "failing", 1).await, [1, 2, 3], "one success is no interval");

    store.steer_sweep("failing", SweepAction::Cancel, 3_000).await.unwrap();
    let summary = store.sweep("failing").await.unwrap();
    assert_eq!((summary.reserve, summary.counts.pending), (0, 0));
    let rows = store.sweep_results("failing").await.unwrap();
    assert!(rows.iter().all(|r| r.status != JobStatus::Pending), "no job waits in a cancelled sweep");
}

/// The ETA is the remaining work at the observed rate, and each device's
/// rate is learnt from its epochs; both in the cost model's units.
async fn eta_and_device_rates_follow_the_cost_model(store: Arc<dyn Store>) {
    let text = common::spec("timed", &[1, 4], &[1]);
    submit(&*store, &text, 0, 3).await;
    let expansion = Spec::parse(&text).unwrap().expand(false).unwrap();
    let work = |width: u32| expansion.jobs.iter().find(|j| j.cell.width == width).unwrap().work;
    let summary = store.sweep("timed").await.unwrap();
    assert_eq!(summary.eta_seconds(), None, "no rate before the first epoch");
    assert!((summary.work_remaining - work(1) - work(4)).abs() < 1e-6 * work(4));

    let worker = store.register_worker("h", &["cpu".into()], "t", 0).await.unwrap();
    let job = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
    assert_eq!(job.config.width, 4, "longest first");
    store.report_epoch(job.fence(), &metrics(1, 0.5), LEASE, 2_000).await.unwrap();
    let summary = store.sweep("timed").await.unwrap();
    let rate = work(4) / 3.0 / 10.0;
    let remaining = work(4) * 2.0 / 3.0 + work(1);
    assert!((summary.work_rate.unwrap() - rate).abs() < 1e-9 * rate);
    let eta = summary.eta_seconds().unwrap();
    assert!((eta - remaining / rate).abs() < 1e-6 * eta, "eta {eta} s");
    // By epochs it would be 5 epochs x 10 s = 50 s; the narrow job's
    // epochs are cheaper than the wide one's.
    assert!(eta < 30.0, "eta {eta} s");

    let rates = store.device_rates().await.unwrap();
    assert_eq!(rates.len(), 1);
    assert_eq!((rates[0].device.as_str(), rates[0].epochs), ("cpu", 1));
    assert!((rates[0].rate() - rate).abs() < 1e-9 * rate);
}

contract_tests!(
    a_cell_gets_seeds_until_its_interval_is_narrow_enough,
    resubmitting_with_another_target_or_a_list_of_seeds,
    failures_call_for_seeds_and_cancel_ends_the_reserve,
    eta_and_device_rates_follow_the_cost_model,
);
