//! The whole loop under faults, with real processes on loopback: workers
//! killed or frozen mid-job, the coordinator killed and restarted, and a
//! training failure. Tiny models on tiny synthetic data and short leases
//! keep each test to seconds.

mod common;

use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(120);
const EPOCHS: i64 = 5;

/// Waits until job `index` of `sweep` has at least `epochs` epochs recorded.
fn wait_for_epochs(cluster: &Cluster, sweep: &str, index: usize, epochs: usize) -> JobState {
    wait_for(&format!("{epochs} epochs of {sweep}"), LONG, || {
        jobs(&cluster.db, sweep).get(index).filter(|j| j.epochs.len() >= epochs).cloned()
    })
}

#[test]
fn a_killed_worker_s_job_resumes_elsewhere_from_its_checkpoint_with_the_same_result() {
    let _serial = serial();
    let cluster = Cluster::new(None, 3);
    let _coordinator = cluster.serve("coordinator.log");
    // The reference: the same cell trained without interruption.
    cluster.submit("reference", &[1], &[7], EPOCHS as u32, 3);
    let mut first = cluster.work("first");
    let reference = wait_for("the reference run", LONG, || all_done(&cluster.db, "reference")).remove(0);
    assert_eq!(reference.status, "succeeded");

    cluster.submit("killed", &[1], &[7], EPOCHS as u32, 3);
    let before = wait_for_epochs(&cluster, "killed", 0, 2);
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert_eq!(before.attempt, 1);

    let second = cluster.work("second");
    let job = wait_for("the killed job to finish elsewhere", LONG, || all_done(&cluster.db, "killed")).remove(0);
    assert_eq!(job.status, "succeeded", "{job:?}\n{}", second.log_text());
    assert_eq!(job.attempt, 2, "the job should have been leased a second time");
    assert_epochs_complete(&job, EPOCHS);
    // Resumed, not restarted: the first attempt's early epochs stand.
    assert_eq!(job.epochs[0].1, 1, "epoch 1 was retrained: the checkpoint was not used ({:?})", job.epochs);
    assert_eq!(job.epochs.last().unwrap().1, 2);
    // Bit-identical to the uninterrupted run on CPU.
    assert_eq!(job.final_train_loss, reference.final_train_loss);
    assert_eq!(job.final_test_error, reference.final_test_error);
}

#[test]
fn a_frozen_worker_is_fenced_off_after_its_lease_is_taken() {
    let _serial = serial();
    let cluster = Cluster::new(None, 3);
    let _coordinator = cluster.serve("coordinator.log");
    cluster.submit("frozen", &[1], &[3], EPOCHS as u32, 3);
    let mut frozen = cluster.work("frozen");
    wait_for_epochs(&cluster, "frozen", 0, 1);
    frozen.signal("STOP");

    let rescuer = cluster.work("rescuer");
    // The lease expires, the reaper requeues the job, the rescuer takes it.
    wait_for("the rescuer to lease the job", LONG, || jobs(&cluster.db, "frozen").into_iter().find(|j| j.attempt == 2));
    frozen.signal("CONT");

    let job = wait_for("the job to finish", LONG, || all_done(&cluster.db, "frozen")).remove(0);
    assert_eq!(job.status, "succeeded", "{job:?}\n{}", rescuer.log_text());
    assert_eq!(job.attempt, 2);
    assert_epochs_complete(&job, EPOCHS);
    // Whatever the frozen worker sent after waking was refused, and it says so.
    wait_for("the frozen worker to drop its job", LONG, || frozen.log_text().contains("lease is gone").then_some(()));
    assert!(frozen.is_running(), "a fenced-off worker keeps serving: {}", frozen.log_text());
    let late_epochs: Vec<_> = job.epochs.iter().filter(|(_, attempt)| *attempt == 1).map(|(e, _)| *e).collect();
    let resumed_at = job.epochs.iter().find(|(_, attempt)| *attempt == 2).unwrap().0;
    assert!(late_epochs.iter().all(|e| *e < resumed_at), "stale epochs overwrote the new attempt: {:?}", job.epochs);
}

#[test]
fn workers_ride_out_a_coordinator_killed_and_restarted_mid_sweep() {
    let _serial = serial();
    let cluster = Cluster::new(None, 10);
    let mut coordinator = cluster.serve("coordinator-1.log");
    cluster.submit("restart", &[1], &[1, 2, 3], EPOCHS as u32, 3);
    let _a = cluster.work("a");
    let _b = cluster.work("b");
    wait_for_epochs(&cluster, "restart", 0, 2);
    coordinator.signal("KILL");
    coordinator.wait_exit(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    let _coordinator = cluster.serve("coordinator-2.log");

    let jobs = wait_for("the sweep to finish", LONG, || all_done(&cluster.db, "restart"));
    assert_eq!(jobs.len(), 3, "every cell exactly once");
    for job in &jobs {
        assert_eq!(job.status, "succeeded", "{job:?}");
        assert_epochs_complete(job, EPOCHS);
    }
}

#[test]
fn a_failing_job_is_retried_then_failed_and_the_rest_goes_on() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    // This worker's copy of Fashion-MNIST is corrupt; its MNIST is fine.
    corrupt_dataset(&cluster.path("data/fashion-mnist"));
    let _coordinator = cluster.serve("coordinator.log");
    let spec = cluster.path("broken.toml");
    std::fs::write(&spec, tiny_spec("broken", "fashion-mnist", &[1], &[1], 2)).unwrap();
    let out = widesweep()
        .arg("submit")
        .arg(&spec)
        .args(["--coordinator", &cluster.url(), "--token", TOKEN, "--max-attempts", "2", "--priority", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    cluster.submit("healthy", &[1], &[1, 2], 2, 2);
    let _worker = cluster.work("worker");

    let failed = wait_for("the broken job to fail", LONG, || all_done(&cluster.db, "broken")).remove(0);
    assert_eq!(failed.status, "failed");
    // Unreadable data is the machine's error: it spends none of the job's
    // attempts; alone, the worker retries it, up to three times the job's
    // attempts (its machine errors are bounded on their own).
    assert_eq!(failed.attempts_spent, 0, "machine errors spend no attempt");
    let error = failed.last_error.clone().unwrap();
    assert!(error.starts_with("a machine error on 1 host(s) (6 attempts)"), "{error}");
    assert!(error.contains("fashion-mnist/train-images-idx3-ubyte.gz"), "the error names the file: {error}");
    let status = cluster.status("broken");
    assert!(text(&status.stdout).contains(&error), "status should show the error: {}", text(&status.stdout));

    let healthy = wait_for("the healthy sweep to finish", LONG, || all_done(&cluster.db, "healthy"));
    assert!(healthy.iter().all(|j| j.status == "succeeded"), "{healthy:?}");
}

#[test]
fn sigterm_hands_the_job_back_with_a_checkpoint_and_exits_0() {
    let _serial = serial();
    let cluster = Cluster::new(None, 10);
    let _coordinator = cluster.serve("coordinator.log");
    cluster.submit("term", &[1], &[5], EPOCHS as u32, 3);
    let mut first = cluster.work("first");
    wait_for_epochs(&cluster, "term", 0, 2);
    first.signal("TERM");
    let status = first.wait_exit(LONG);
    assert!(status.success(), "a worker stopped by SIGTERM exits 0: {status:?}\n{}", first.log_text());
    let handed_back = jobs(&cluster.db, "term").remove(0);
    assert_eq!(handed_back.status, "pending", "{handed_back:?}");
    assert_eq!(handed_back.attempts_spent, 0, "handing back spends no attempt");

    let _second = cluster.work("second");
    let job = wait_for("the job to finish", LONG, || all_done(&cluster.db, "term")).remove(0);
    assert_eq!(job.status, "succeeded", "{job:?}");
    assert_eq!(job.attempts_spent, 1);
    assert_epochs_complete(&job, EPOCHS);
    // Every epoch the first worker finished was kept: the second resumed after them.
    let first_attempt: Vec<i64> = job.epochs.iter().filter(|(_, a)| *a == 1).map(|(e, _)| *e).collect();
    assert_eq!(first_attempt, (1..=handed_back.epochs.len() as i64).collect::<Vec<_>>(), "{job:?}");
}

/// The black-hole machine: a worker whose copy of the dataset is corrupt
/// fails every job it touches, at once. Its errors are the machine's, so
/// they spend none of the jobs' attempts, and a job it failed goes to the
/// healthy worker instead of back to it: every job succeeds, and `status`
/// groups the failures under one cause naming the broken worker.
fn a_broken_machine_cannot_eat_the_sweep(db: Option<String>) {
    let _serial = serial();
    let cluster = Cluster::new(db, 5);
    corrupt_dataset(&cluster.path("broken-data/mnist"));
    let _coordinator = cluster.serve("coordinator.log");
    cluster.submit("chaos", &[1, 2], &[1, 2], 2, 2);
    // The healthy worker registers first (worker 1): the broken one
    // (worker 2) then never works alone.
    let _healthy = cluster.work("healthy");
    wait_for("the healthy worker to lease", LONG, || {
        jobs(&cluster.db, "chaos").iter().any(|j| j.status != "pending").then_some(())
    });
    // It quarantines itself after machine errors on 2 different jobs and,
    // in an allocation that ends when idle, leaves with status 75.
    let extra = ["--quarantine-after", "2", "--exit-when-idle", "600"];
    let mut broken = work_with_data(&cluster, "broken", &cluster.path("broken-data"), &extra);
    let left = broken.wait_exit(LONG);
    assert_eq!(left.code(), Some(75), "{}", broken.log_text());
    assert!(broken.log_text().contains("quarantined"), "{}", broken.log_text());
    // It told the coordinator why: `widesweep workers` shows it, and a
    // user lifts it.
    let workers = |args: &[&str]| {
        let mut command = widesweep();
        command.args(args);
        cluster.client_args(&mut command, TOKEN);
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let listed = workers(&["workers"]);
    let row =
        listed.lines().find(|line| line.contains("a slot quarantined itself")).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("│ 2 ") && row.contains("mnist/train-images-idx3-ubyte.gz"), "{row}");
    assert!(workers(&["worker", "release", "2"]).contains("worker 2"), "released");
    assert!(!workers(&["workers"]).contains("quarantined itself"), "released: no quarantine shown");

    let done = wait_for("the sweep to finish", LONG, || all_done(&cluster.db, "chaos"));
    for job in &done {
        assert_eq!(job.status, "succeeded", "no job fails for good: {job:?}");
        assert_eq!(job.attempts_spent, 1, "only the successful attempt is spent: {job:?}");
    }
    let status = text(&cluster.status("chaos").stdout);
    let cause = status.lines().find(|line| line.contains("machine error, on")).unwrap_or_else(|| panic!("{status}"));
    assert!(cause.contains("(worker 2)") && !cause.contains("(worker 1)"), "the broken worker is named: {cause}");
    assert!(cause.contains("mnist/train-images-idx3-ubyte.gz"), "the cause names the file: {cause}");
    let groups = status.lines().filter(|line| line.contains(" error, on ")).count();
    assert_eq!(groups, 1, "one cause: {status}");
    eprintln!("{cause}");
}

#[test]
fn a_broken_machine_cannot_eat_the_sweep_on_sqlite() {
    a_broken_machine_cannot_eat_the_sweep(None);
}

#[test]
fn a_broken_machine_cannot_eat_the_sweep_on_postgres() {
    a_broken_machine_cannot_eat_the_sweep(Some(fresh_postgres()));
}

/// A machine error that goes away (a dataset still being copied): the one
/// worker, alone, quarantines its slot, waits, and then the job succeeds,
/// with none of its attempts spent on the machine's errors.
fn a_transient_machine_error_is_waited_out(db: Option<String>) {
    let _serial = serial();
    let cluster = Cluster::new(db, 5);
    let data = cluster.path("late-data");
    let mnist = data.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    std::fs::write(mnist.join("train-images-idx3-ubyte.gz"), b"still copying").unwrap();
    let _coordinator = cluster.serve("coordinator.log");
    cluster.submit("late", &[1], &[1], 2, 2);
    let worker = work_with_data(&cluster, "late", &data, &["--quarantine-after", "1", "--quarantine-seconds", "3"]);
    wait_for("the slot to quarantine itself", LONG, || worker.log_text().contains("quarantined").then_some(()));
    // The copy finishes while the slot waits.
    widesweep_worker::data::synthetic::write_idx_dataset(&mnist, 128, 32).unwrap();
    let done = wait_for("the job to succeed", LONG, || all_done(&cluster.db, "late")).remove(0);
    assert_eq!(done.status, "succeeded", "{done:?}");
    assert_eq!(done.attempts_spent, 1, "the machine's errors spent no attempt: {done:?}");
    assert!(done.attempt >= 2, "it failed before it succeeded: {done:?}");
}

#[test]
fn a_transient_machine_error_is_waited_out_on_sqlite() {
    a_transient_machine_error_is_waited_out(None);
}

#[test]
fn a_transient_machine_error_is_waited_out_on_postgres() {
    a_transient_machine_error_is_waited_out(Some(fresh_postgres()));
}

/// Writes the four files of an IDX dataset in `dir`, none of them readable.
fn corrupt_dataset(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::write(dir.join(name), b"not gzip at all").unwrap();
    }
}

/// A worker named `name` whose datasets are in `data` (not the cluster's).
fn work_with_data(cluster: &Cluster, name: &str, data: &std::path::Path, extra: &[&str]) -> Proc {
    let mut command = widesweep();
    command.args(["work", "--devices", "cpu"]).args(extra);
    cluster.client_args(&mut command, TOKEN);
    command.arg("--data-dir").arg(data).arg("--unofficial-dataset-sizes");
    command.arg("--scratch-dir").arg(cluster.path(&format!("scratch-{name}")));
    spawn(command, cluster.path(&format!("{name}.log")))
}
