//! `widesweep run`: a sweep start to finish in one process, its table, and
//! resuming after Ctrl-C with the same command.

mod common;

use std::time::Duration;

use common::*;

const EPOCHS: u32 = 3;
const RESUMABLE_EPOCHS: u32 = 6;

fn write_spec(cluster: &Cluster, name: &str, epochs: u32) -> std::path::PathBuf {
    let spec = cluster.path(&format!("{name}.toml"));
    std::fs::write(&spec, tiny_spec(name, "mnist", &[1], &[1, 2, 3], epochs)).unwrap();
    spec
}

#[test]
fn run_trains_every_cell_prints_the_table_and_a_rerun_trains_nothing() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let spec = write_spec(&cluster, "local", EPOCHS);
    let out = run_command(&cluster, &spec).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("3 new"), "{stdout}");
    let jobs = all_done(&cluster.db, "local").expect("every job ended");
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert_eq!(job.status, "succeeded", "{job:?}");
        assert_eq!(job.epochs.len(), EPOCHS as usize);
    }
    assert!(stdout.contains("3 succeeded"), "{stdout}");

    let again = run_command(&cluster, &spec).output().unwrap();
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "{stdout}\n{}", text(&again.stderr));
    assert!(stdout.contains("0 new, 3 already in the database"), "{stdout}");
    assert_eq!(jobs, common::jobs(&cluster.db, "local"), "a rerun of a finished sweep must change nothing");
}

/// A slot whose fastest kernels disagree with the CPU reference (forced:
/// their gradient perturbed) says so and trains on candle's generic
/// operators instead; the sweep still finishes.
#[test]
fn a_slot_whose_kernels_fail_the_self_check_trains_on_generic_operators() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let spec = cluster.path("checked.toml");
    std::fs::write(&spec, tiny_spec("checked", "mnist", &[1], &[1, 2], 2)).unwrap();
    let out = run_command(&cluster, &spec).args(["--self-check", "fail-fastest"]).output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("self-check FAILED") && stderr.contains("DISAGREED"), "{stderr}");
    assert!(stderr.contains("falling back to candle's generic operators"), "{stderr}");
    assert!(stderr.contains("candle's generic CPU operators (NCHW, f32)"), "the kernels it trains with: {stderr}");
    let jobs = all_done(&cluster.db, "checked").expect("every job ended");
    assert!(jobs.iter().all(|job| job.status == "succeeded" && job.epochs.len() == 2), "{jobs:?}");
}

/// `--slots-per-gpu 2`: two lease loops on one device, both training.
#[test]
fn two_slots_share_a_device() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let spec = cluster.path("shared.toml");
    std::fs::write(&spec, tiny_spec("shared", "mnist", &[1], &[1, 2, 3, 4], 2)).unwrap();
    let out = run_command(&cluster, &spec)
        .env("WIDESWEEP_LOG", "warn,widesweep_worker::agent=info")
        .args(["--slots-per-gpu", "2"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let trained_by = |slot: &str| stderr.lines().any(|l| l.contains("job succeeded") && l.contains(slot));
    assert!(trained_by("slot=0") && trained_by("slot=1"), "both slots trained: {stderr}");
    let jobs = all_done(&cluster.db, "shared").expect("every job ended");
    assert!(jobs.iter().all(|job| job.status == "succeeded" && job.attempts_spent == 1), "{jobs:?}");

    let bad = run_command(&cluster, &spec).args(["--slots-per-gpu", "0"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("from 1 to 16, or auto"), "{}", text(&bad.stderr));
}

/// `--slots-per-gpu auto` with room for one job at a time: the slots that
/// lease a job beside a running one hand it back (no attempt spent) and
/// lease again when the running job ends; every job trains once.
#[test]
fn auto_slots_admit_only_the_jobs_that_fit_in_the_device_memory() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let spec = cluster.path("tight.toml");
    std::fs::write(&spec, tiny_spec("tight", "mnist", &[1], &[1, 2, 3], 2)).unwrap();
    // A tiny job is estimated at 256 MiB and a little: 85 % of 400 MiB
    // holds one, not two.
    let out = run_command(&cluster, &spec)
        .env("WIDESWEEP_LOG", "warn,widesweep_worker::agent=info")
        .args(["--slots-per-gpu", "auto", "--device-memory-mib", "400"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("slots share the device's memory") && stderr.contains("budget_mib=340"), "{stderr}");
    assert!(stderr.contains("no room for the job beside the device's running jobs"), "{stderr}");
    let jobs = all_done(&cluster.db, "tight").expect("every job ended");
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert_eq!(job.status, "succeeded", "{job:?}");
        assert_eq!(job.attempts_spent, 1, "a job handed back for room spends no attempt: {job:?}");
        assert_eq!(job.epochs.len(), 2, "{job:?}");
    }
}

#[test]
fn ctrl_c_hands_jobs_back_and_the_same_command_resumes_them() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    // Long enough that Ctrl-C after epoch 2 leaves the job half done.
    let spec = write_spec(&cluster, "resumable", RESUMABLE_EPOCHS);
    let mut first = spawn(run_command(&cluster, &spec), cluster.path("first.log"));
    wait_for("a job to be half done", Duration::from_secs(120), || {
        jobs(&cluster.db, "resumable").into_iter().find(|j| j.status == "running" && j.epochs.len() >= 2)
    });
    first.signal("INT");
    let status = first.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "{}", first.log_text());
    assert!(first.log_text().contains("run the same command again to resume"), "{}", first.log_text());
    let after_interrupt = jobs(&cluster.db, "resumable");
    assert!(after_interrupt.iter().all(|j| j.status != "running"), "jobs handed back: {after_interrupt:?}");
    let interrupted: Vec<_> =
        after_interrupt.iter().filter(|j| j.status == "pending" && !j.epochs.is_empty()).cloned().collect();
    assert!(!interrupted.is_empty(), "some job stopped half way: {after_interrupt:?}");

    let second = run_command(&cluster, &spec).output().unwrap();
    assert!(second.status.success(), "{}\n{}", text(&second.stdout), text(&second.stderr));
    let jobs = all_done(&cluster.db, "resumable").expect("every job ended");
    for job in &jobs {
        assert_eq!(job.status, "succeeded", "{job:?}");
        assert_eq!(job.attempts_spent, 1, "handing back must not spend an attempt: {job:?}");
        let numbers: Vec<i64> = job.epochs.iter().map(|(e, _)| *e).collect();
        assert_eq!(numbers, (1..=RESUMABLE_EPOCHS as i64).collect::<Vec<_>>());
    }
    for before in &interrupted {
        let after = jobs.iter().find(|j| j.id == before.id).unwrap();
        // The epochs done before Ctrl-C were kept, not retrained.
        assert_eq!(after.epochs[0].1, before.epochs[0].1, "{before:?} -> {after:?}");
        assert!(after.attempt > before.attempt);
    }
}

/// Training axes on real runs: the dataset (synthetic MNIST against Debian's
/// real Fashion-MNIST), the learning rate and the epochs vary per cell; every
/// job trains its own recipe on its own data, and the table is laid out
/// along those axes.
#[test]
fn a_sweep_over_dataset_lr_and_epochs_trains_each_cell_its_own_way() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let spec = cluster.path("training.toml");
    let toml = "name = \"training\"\ndataset = \"mnist\"\nseeds = [1]\n\n[recipe]\nbatch_size = 32\nlr_milestones = []\n\
                train_subset = 128\ntest_subset = 32\n\n[grid]\nblock = [\"B(3,3)\"]\nblocks_per_group = [1]\nwidth = [1]\n\
                dataset = [\"mnist\", \"fashion-mnist\"]\nlr = [0.05, 0.1]\nepochs = [1, 2]\n";
    std::fs::write(&spec, toml).unwrap();
    let out = run_command(&cluster, &spec).output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("8 new"), "{stdout}");
    let jobs = all_done(&cluster.db, "training").expect("every job ended");
    assert_eq!(jobs.len(), 8);
    assert!(jobs.iter().all(|job| job.status == "succeeded"), "{jobs:?}");
    let mut epochs: Vec<usize> = jobs.iter().map(|job| job.epochs.len()).collect();
    epochs.sort_unstable();
    assert_eq!(epochs, [1, 1, 1, 1, 2, 2, 2, 2], "each job trains its own cell's epochs");
    for header in ["dataset", "epochs", "mnist", "fashion-mnist", "lr=0.05", "lr=0.1"] {
        assert!(stdout.contains(header), "the table is laid out along the training axes ({header}):\n{stdout}");
    }
    assert!(!stdout.contains("recipe"), "the recipe axis is not needed:\n{stdout}");
}
