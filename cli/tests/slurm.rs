//! Workers launched through a real Slurm cluster: the one-node CPU cluster
//! of deploy/slurm/local-cluster.sh (slurmctld, slurmd and munge from
//! Debian), which scripts/setup.sh starts. A real sweep on a coordinator,
//! `widesweep launch slurm` with two workers; one worker is cancelled with
//! `scancel` mid-job, the other is sent the time-limit warning (SIGUSR1,
//! what `#SBATCH --signal=B:USR1@N` delivers); both hand their jobs back
//! without spending an attempt, a second launch resumes them from their
//! checkpoints, and once the sweep is done the workers leave by themselves
//! and the queue is empty.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const LONG: Duration = Duration::from_secs(300);
const EPOCHS: i64 = 12;
const JOB_NAME: &str = "widesweep-slurm-test";

fn slurm(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("{program} is not available ({e}): start the test cluster with `bash deploy/slurm/local-cluster.sh`")
    });
    assert!(out.status.success(), "{program} {args:?} failed: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The array tasks of `job` still queued or running, as `ID_TASK STATE`.
fn tasks(job: &str) -> Vec<String> {
    slurm("squeue", &["-h", "-r", "-j", job, "-o", "%i %T"]).lines().map(str::to_string).collect()
}

/// Launches `workers` CPU workers; returns the array's job id.
fn launch(cluster: &Cluster, workers: u32) -> String {
    let mut command = widesweep();
    command.args(["launch", "slurm", "--coordinator", &cluster.url()]);
    command.arg("--token-file").arg(cluster.path("worker.token"));
    command.args(["--cpu-workers", &workers.to_string(), "--cpus-per-worker", "1", "--exit-when-idle", "5"]);
    command.args(["--job-name", JOB_NAME, "--time", "30"]);
    command.arg("--log-dir").arg(cluster.path("slurm-logs"));
    command.arg("--data-dir").arg(cluster.path("data"));
    command.args(["--", "--unofficial-dataset-sizes"]);
    let out = command.output().unwrap();
    assert!(out.status.success(), "launch failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let job = stdout.split_whitespace().nth(4).expect("the job id in the launch output").trim_end_matches(':');
    assert!(job.chars().all(|c| c.is_ascii_digit()), "job id {job:?} in {stdout}");
    job.to_string()
}

/// The jobs running with a checkpoint after epoch 2 or later, as (job id, attempt).
fn checkpointed_running(cluster: &Cluster) -> Vec<(i64, i64)> {
    jobs(&cluster.db, "slurm")
        .into_iter()
        .filter(|j| j.status == "running" && j.epochs.iter().filter(|(_, a)| *a == j.attempt).count() >= 2)
        .map(|j| (j.id, j.attempt))
        .collect()
}

#[test]
fn a_sweep_runs_on_slurm_workers_that_hand_jobs_back_on_scancel_and_the_time_limit_signal() {
    let _serial = serial();
    assert!(
        slurm("sinfo", &["-h", "-o", "%T"]).lines().any(|s| s.starts_with("idle") || s.starts_with("mixed")),
        "the Slurm test cluster has no idle node: run `bash deploy/slurm/local-cluster.sh`"
    );
    let cluster = Cluster::new(None, 5);
    // Epochs long enough to act on a worker mid-job: 1,024 images each.
    widesweep_worker::data::synthetic::write_idx_dataset(&cluster.path("data/mnist"), 1024, 64).unwrap();
    std::fs::write(cluster.path("worker.token"), TOKEN).unwrap();
    let _coordinator = cluster.serve("coordinator.log");
    cluster.submit("slurm", &[1, 2], &[1, 2], EPOCHS as u32, 3);

    let started = Instant::now();
    let first = launch(&cluster, 2);
    // Both workers busy, each with a checkpoint of its current attempt.
    let held = wait_for("two workers with checkpointed jobs", LONG, || {
        let held = checkpointed_running(&cluster);
        (held.len() == 2).then_some(held)
    });
    slurm("scancel", &[&format!("{first}_0")]);
    let signalled = Instant::now();
    slurm("scancel", &["--signal=USR1", "--batch", &format!("{first}_1")]);
    // Both hand their jobs back: pending again, no attempt spent, no error.
    let handed_back = wait_for("both jobs to be handed back", LONG, || {
        let jobs = jobs(&cluster.db, "slurm");
        let back: Vec<JobState> =
            jobs.into_iter().filter(|j| held.iter().any(|(id, _)| *id == j.id) && j.status == "pending").collect();
        (back.len() == 2).then_some(back)
    });
    let hand_back_seconds = signalled.elapsed().as_secs_f64();
    for job in &handed_back {
        assert_eq!(job.attempts_spent, job.attempt - 1, "a hand-back spends no attempt: {job:?}");
        assert_eq!(job.last_error, None, "{job:?}");
    }
    wait_for("the first workers to leave", LONG, || tasks(&first).is_empty().then_some(()));

    let second = launch(&cluster, 2);
    let done = wait_for("the sweep to finish", LONG, || all_done(&cluster.db, "slurm"));
    let sweep_seconds = started.elapsed().as_secs_f64();
    for job in &done {
        assert_eq!(job.status, "succeeded", "{job:?}");
        assert_epochs_complete(job, EPOCHS);
    }
    for (id, attempt) in &held {
        let job = done.iter().find(|j| j.id == *id).unwrap();
        // Resumed from the checkpoint: the first attempt's early epochs stand.
        assert!(job.attempt > *attempt, "{job:?}");
        assert_eq!(job.epochs[0].1, *attempt, "epoch 1 was trained again: {job:?}");
        assert_eq!(job.attempts_spent, job.attempt - 1, "no attempt was spent on a lost worker: {job:?}");
    }
    // Nothing left to lease: the workers exit and the allocation ends.
    wait_for("the second workers to leave", LONG, || tasks(&second).is_empty().then_some(()));
    let logs = std::fs::read_dir(cluster.path("slurm-logs")).unwrap().count();
    assert_eq!(logs, 4, "one log per worker allocation");
    println!(
        "slurm sweep: {} jobs x {EPOCHS} epochs end to end in {sweep_seconds:.1} s; \
         scancel and SIGUSR1 to both jobs handed back in {hand_back_seconds:.1} s",
        done.len()
    );
}
