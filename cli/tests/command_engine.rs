//! The command engine with real processes: a coordinator, workers, and a
//! small numpy trainer (examples/engines/numpy_mlp.py) learning real
//! Fashion-MNIST through the `widesweep` Python package of this tree. The
//! trainer's `fault` param makes it crash, hang, ignore a stop or break the
//! protocol, one cell each.
//!
//! Needs Python 3 with numpy (`WIDESWEEP_PYTHON`, else the virtual
//! environment scripts/setup.sh --tests makes) and Debian's Fashion-MNIST.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(180);

fn python() -> String {
    std::env::var("WIDESWEEP_PYTHON").unwrap_or_else(|_| "/opt/widesweep-python/bin/python".to_string())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A spec of one cell per `cases` entry (a TOML inline table of params),
/// trained by the numpy trainer for `epochs` epochs.
fn spec(name: &str, epochs: u32, engine_extra: &str, cases: &[&str]) -> String {
    let repo = repo();
    let trainer = repo.join("examples/engines/numpy_mlp.py");
    let mut text = format!(
        "name = \"{name}\"\ndataset = \"fashion-mnist\"\nseeds = [1]\n\n[recipe]\nepochs = {epochs}\nbatch_size = 50\n\
         lr = 0.05\nlr_milestones = []\nmomentum = 0.9\nweight_decay = 5e-4\ntrain_subset = 2000\ntest_subset = 1000\n\n\
         [engine]\ncommand = [{python:?}, {trainer:?}]\n{engine_extra}\n\
         env = {{ PYTHONPATH = {src:?}, FASHION_MNIST_DIR = \"/usr/share/datasets/fashion-mnist\", \
         OMP_NUM_THREADS = \"1\", OPENBLAS_NUM_THREADS = \"1\" }}\n",
        python = python(),
        trainer = trainer.display().to_string(),
        src = repo.join("python/src").display().to_string(),
    );
    for case in cases {
        text.push_str(&format!("\n[[case]]\nblock = \"B(3,3)\"\nblocks_per_group = 1\nwidth = 1\nparams = {case}\n"));
    }
    text
}

fn submit(cluster: &Cluster, name: &str, text: &str, max_attempts: u32) {
    let path = cluster.path(&format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let mut command = widesweep();
    command.arg("submit").arg(&path).args(["--max-attempts", &max_attempts.to_string()]);
    cluster.client_args(&mut command, TOKEN);
    let out = command.output().unwrap();
    assert!(out.status.success(), "submit failed: {}", text_of(&out.stderr));
}

fn text_of(bytes: &[u8]) -> String {
    text(bytes)
}

fn wait_for_epochs(cluster: &Cluster, sweep: &str, epochs: usize) -> JobState {
    wait_for(&format!("{epochs} epochs of {sweep}"), LONG, || {
        jobs(&cluster.db, sweep).into_iter().next().filter(|j| j.epochs.len() >= epochs)
    })
}

/// A command's job runs, learns, and when its worker is SIGKILLed it resumes
/// elsewhere from the checkpoint the command handed over, ending with the
/// numbers of an uninterrupted run; on both backends.
fn killed_worker_resumes(cluster: Cluster) {
    let _coordinator = cluster.serve("coordinator.log");
    submit(&cluster, "reference", &spec("reference", 4, "", &["{ hidden = 32, check_env = true }"]), 3);
    // The worker's token in its environment must not reach the command
    // (the trainer's check_env fails the job if it does).
    let mut with_token = cluster.work_command("first", TOKEN);
    with_token.env("WIDESWEEP_TOKEN", TOKEN);
    let mut first = spawn(with_token, cluster.path("first.log"));
    let reference = wait_for("the reference run", LONG, || all_done(&cluster.db, "reference")).remove(0);
    assert_eq!(reference.status, "succeeded", "{reference:?}\n{}", first.log_text());
    assert_epochs_complete(&reference, 4);
    let error = reference.final_test_error.unwrap();
    assert!(error < 0.35, "the MLP learned Fashion-MNIST (chance is 0.9): test error {error}");

    // The same cell, slowed down so that the kill lands mid-run.
    submit(&cluster, "killed", &spec("killed", 4, "", &["{ hidden = 32, sleep = 1.0 }"]), 3);
    let before = wait_for_epochs(&cluster, "killed", 2);
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert_eq!(before.attempt, 1);
    let second = cluster.work("second");
    let job = wait_for("the killed job to finish elsewhere", LONG, || all_done(&cluster.db, "killed")).remove(0);
    assert_eq!(job.status, "succeeded", "{job:?}\n{}", second.log_text());
    assert_eq!(job.attempt, 2);
    assert_epochs_complete(&job, 4);
    assert_eq!(job.epochs[0].1, 1, "epoch 1 was retrained: the checkpoint was not used ({:?})", job.epochs);
    assert_eq!(job.epochs.last().unwrap().1, 2);
    assert_eq!(job.final_train_loss, reference.final_train_loss, "resumed != uninterrupted");
    assert_eq!(job.final_test_error, reference.final_test_error);
}

#[test]
fn a_command_job_learns_and_resumes_after_its_worker_is_killed_on_sqlite() {
    let _serial = serial();
    killed_worker_resumes(Cluster::new(None, 3));
}

#[test]
fn a_command_job_learns_and_resumes_after_its_worker_is_killed_on_postgres() {
    let _serial = serial();
    let db = fresh_postgres();
    killed_worker_resumes(Cluster::new(Some(db), 3));
}

#[test]
fn sigterm_hands_a_command_job_back_without_spending_an_attempt() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let _coordinator = cluster.serve("coordinator.log");
    submit(&cluster, "stopped", &spec("stopped", 5, "", &["{ sleep = 1.0 }"]), 3);
    let mut worker = cluster.work("worker");
    wait_for_epochs(&cluster, "stopped", 1);
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", worker.log_text());
    let job = jobs(&cluster.db, "stopped").remove(0);
    assert_eq!((job.status.as_str(), job.attempts_spent), ("pending", 0), "{job:?}\n{}", worker.log_text());

    let again = cluster.work("again");
    let job = wait_for("the job to finish", LONG, || all_done(&cluster.db, "stopped")).remove(0);
    assert_eq!(job.status, "succeeded", "{job:?}\n{}", again.log_text());
    assert_eq!(job.attempts_spent, 1, "only the finishing attempt counts: {job:?}");
    assert_epochs_complete(&job, 5);
    assert_eq!(job.epochs[0].1, 1, "the first attempt's epochs stand: {:?}", job.epochs);
}

#[test]
fn a_command_that_ignores_the_stop_is_killed_after_its_grace() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let _coordinator = cluster.serve("coordinator.log");
    submit(&cluster, "stubborn", &spec("stubborn", 3, "grace_seconds = 2", &["{ fault = \"ignore_stop\" }"]), 3);
    let mut worker = cluster.work("worker");
    wait_for_epochs(&cluster, "stubborn", 1);
    let asked = std::time::Instant::now();
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    assert!(took >= Duration::from_secs(2), "killed before its grace: {took:?}");
    assert!(worker.log_text().contains("ignored the stop request"), "{}", worker.log_text());
    let job = jobs(&cluster.db, "stubborn").remove(0);
    assert_eq!((job.status.as_str(), job.attempts_spent), ("pending", 0), "{job:?}");
}

/// Every way a command can go wrong gets a clear error, retried or not as
/// it deserves, and the record stays consistent: no epoch past the last,
/// none twice.
#[test]
fn failing_commands_get_clear_errors_and_a_consistent_record() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let _coordinator = cluster.serve("coordinator.log");
    let faults = ["crash", "do_not_retry", "hang", "garbage", "twice", "past_last", "exit_early"];
    let cases: Vec<String> = faults.iter().map(|f| format!("{{ fault = \"{f}\" }}")).collect();
    let cases: Vec<&str> = cases.iter().map(String::as_str).collect();
    submit(&cluster, "faults", &spec("faults", 3, "heartbeat_seconds = 3", &cases), 2);
    let worker = cluster.work("worker");
    let jobs = wait_for("every faulty job to end", LONG, || all_done(&cluster.db, "faults"));
    let expected = [
        ("crash", 2, "failed with exit status 1 after epoch 2"),
        ("do_not_retry", 1, "exit status 3 (do not retry)"),
        ("hang", 2, "killed as hung"),
        ("garbage", 1, "not a message"),
        ("twice", 1, "reported epoch 1 twice"),
        ("past_last", 1, "past the job's last (3)"),
        ("exit_early", 1, "exited with status 0 after epoch 1 of 3"),
    ];
    for (job, (fault, attempts, message)) in jobs.iter().zip(expected) {
        let error = job.last_error.clone().unwrap_or_default();
        assert_eq!(job.status, "failed", "{fault}: {job:?}\n{}", worker.log_text());
        assert_eq!(job.attempts_spent, attempts, "{fault}: {job:?}");
        assert!(error.contains(message), "{fault}: the error should say {message:?}: {error}");
        assert!(job.epochs.iter().all(|(e, _)| (1..=3).contains(e)), "{fault}: {:?}", job.epochs);
    }
    let crash = &jobs[0].last_error.clone().unwrap();
    assert!(crash.contains("injected crash after epoch 1"), "stderr's last lines are in the error: {crash}");
    let do_not_retry = &jobs[1].last_error.clone().unwrap();
    assert!(do_not_retry.contains("this cell cannot train"), "{do_not_retry}");
}

/// A command whose worker lost its lease (frozen past it) cannot write:
/// its next report is refused, the worker kills it, and the attempt that
/// holds the lease finishes the job alone.
#[test]
fn a_stale_command_from_an_expired_lease_cannot_write() {
    let _serial = serial();
    let cluster = Cluster::new(None, 3);
    let _coordinator = cluster.serve("coordinator.log");
    submit(&cluster, "stale", &spec("stale", 5, "", &["{ sleep = 1.0 }"]), 3);
    let mut frozen = cluster.work("frozen");
    wait_for_epochs(&cluster, "stale", 1);
    frozen.signal("STOP");
    let rescuer = cluster.work("rescuer");
    wait_for("the rescuer to lease the job", LONG, || jobs(&cluster.db, "stale").into_iter().find(|j| j.attempt == 2));
    frozen.signal("CONT");
    let job = wait_for("the job to finish", LONG, || all_done(&cluster.db, "stale")).remove(0);
    assert_eq!(job.status, "succeeded", "{job:?}\n{}", rescuer.log_text());
    assert_eq!(job.attempt, 2);
    assert_epochs_complete(&job, 5);
    wait_for("the frozen worker to drop its job", LONG, || frozen.log_text().contains("lease").then_some(()));
    let resumed_at = job.epochs.iter().find(|(_, attempt)| *attempt == 2).unwrap().0;
    assert!(
        job.epochs.iter().filter(|(_, a)| *a == 1).all(|(e, _)| *e < resumed_at),
        "a stale epoch overwrote the new attempt: {:?}",
        job.epochs
    );
    assert!(frozen.is_running(), "a fenced-off worker keeps serving: {}", frozen.log_text());
}

/// An allocation's end (`--deadline`) stops a command the way SIGTERM does:
/// once another epoch could not finish and checkpoint in time, the command
/// is told (a signal and `stop` in the reply), checkpoints, exits, and the
/// job goes back with no attempt spent; the worker then leaves.
#[test]
fn the_allocation_s_deadline_hands_a_command_job_back() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let _coordinator = cluster.serve("coordinator.log");
    submit(&cluster, "deadline", &spec("deadline", 100, "", &["{ sleep = 1.0 }"]), 3);
    // 40 s: an epoch of about a second fits until 30 s (the checkpoint
    // margin) plus a quarter of an epoch before the end.
    let mut command = cluster.work_command("worker", TOKEN);
    command.args(["--deadline", "40s"]);
    let mut worker = spawn(command, cluster.path("worker.log"));
    let status = worker.wait_exit(Duration::from_secs(90));
    assert!(status.success(), "{}", worker.log_text());
    let job = jobs(&cluster.db, "deadline").remove(0);
    assert_eq!((job.status.as_str(), job.attempts_spent), ("pending", 0), "{job:?}\n{}", worker.log_text());
    assert!(!job.epochs.is_empty() && job.epochs.len() < 100, "{job:?}");
    assert!(
        worker.log_text().contains("the allocation ends before the next epoch could finish"),
        "{}",
        worker.log_text()
    );
}
