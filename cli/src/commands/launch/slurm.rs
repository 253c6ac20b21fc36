//! `widesweep launch slurm`: an sbatch script that runs workers as a job
//! array, one array task per worker allocation, each running one
//! `widesweep work` on its node (all its GPUs, as Slurm exposes them in
//! CUDA_VISIBLE_DEVICES) or on one GPU, or on CPUs.
//!
//! What the script does for a cluster's sake:
//! - the worker exits when no job is left (`--exit-when-idle`), so the
//!   allocation ends with the work;
//! - `--signal=B:USR1@N` warns the worker N seconds before the time limit:
//!   it checkpoints and hands its jobs back without spending an attempt
//!   (the worker also reads the time left from squeue and leases no job it
//!   could not checkpoint in time);
//! - `--requeue` lets Slurm requeue a preempted allocation; the preempted
//!   worker's SIGTERM is the same graceful hand-back;
//! - no secret is written into the script (sbatch scripts are readable by
//!   other users on many clusters): the worker reads its token from a file
//!   named by path, or from WIDESWEEP_TOKEN, which sbatch passes on from the
//!   submitting shell's environment.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// What one worker (one array task) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkerPer {
    /// One worker per node with all of the node's GPUs (`--gpus-per-node`).
    Node,
    /// One worker per GPU.
    Gpu,
}

#[derive(Args, Clone, Debug)]
pub struct SlurmArgs {
    /// GPUs in all, e.g. 32; with --gpus-per-node 8 that is 4 nodes.
    #[arg(long, conflicts_with = "cpu_workers")]
    pub gpus: Option<u32>,
    /// GPUs of each node to use (with --worker-per node, one worker uses them all).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub gpus_per_node: u32,
    /// One worker per node (all its GPUs) or one per GPU.
    #[arg(long, value_enum, default_value_t = WorkerPer::Node)]
    pub worker_per: WorkerPer,
    /// CPU-only workers instead of GPUs: this many, each with --cpus-per-worker CPUs.
    #[arg(long, conflicts_with = "gpus")]
    pub cpu_workers: Option<u32>,
    /// CPUs of each worker (data loading for GPUs; training for --cpu-workers).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cpus_per_worker: u32,
    /// Memory per worker allocation, as sbatch takes it (e.g. 64G); Slurm's default when left out.
    #[arg(long)]
    pub mem: Option<String>,
    #[arg(long)]
    pub partition: Option<String>,
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long)]
    pub qos: Option<String>,
    /// Time limit of each worker allocation, as sbatch takes it (e.g. 24:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// Node features, as sbatch's --constraint (e.g. a100|h100).
    #[arg(long)]
    pub constraint: Option<String>,
    /// At most this many worker allocations at once (the job array's %N).
    #[arg(long)]
    pub max_concurrent: Option<u32>,
    /// Let Slurm requeue a preempted worker allocation.
    #[arg(long)]
    pub requeue: bool,
    /// Seconds before the time limit at which the worker is told (SIGUSR1)
    /// to checkpoint and hand its jobs back: more than an epoch takes.
    #[arg(long, default_value_t = 300)]
    pub signal_before: u32,
    /// A worker exits after this many seconds without a job to lease.
    #[arg(long, default_value_t = 120)]
    pub exit_when_idle: u64,
    /// An extra `#SBATCH` line, e.g. --sbatch '--mail-type=END' (repeatable).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub extra: Vec<String>,
    /// Name of the Slurm job array.
    #[arg(long, default_value = "widesweep-worker")]
    pub job_name: String,
    /// Where each worker's log goes (a shared directory), as %x-%A_%a.out.
    #[arg(long, default_value = "widesweep-logs")]
    pub log_dir: PathBuf,
    /// The widesweep binary the compute nodes run (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The datasets on the compute nodes (`widesweep data fetch`).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Print the script instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
    /// More arguments for each `widesweep work`, after `--`.
    #[arg(last = true)]
    pub work_args: Vec<String>,
}

/// How many array tasks and what each asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub workers: u32,
    /// GPUs per array task; 0 for CPU workers.
    pub gpus: u32,
    pub cpus: u32,
}

impl SlurmArgs {
    /// The workers the options ask for, or why they do not make sense.
    pub fn allocation(&self) -> Result<Allocation, String> {
        match (self.gpus, self.cpu_workers) {
            (Some(0), _) => Err("--gpus 0: give at least one GPU, or --cpu-workers N".into()),
            (Some(gpus), None) => match self.worker_per {
                WorkerPer::Gpu => Ok(Allocation { workers: gpus, gpus: 1, cpus: self.cpus_per_worker }),
                WorkerPer::Node if gpus % self.gpus_per_node != 0 => Err(format!(
                    "--gpus {gpus} is not a whole number of nodes of --gpus-per-node {}: give a multiple, \
                     or --worker-per gpu",
                    self.gpus_per_node
                )),
                WorkerPer::Node => Ok(Allocation {
                    workers: gpus / self.gpus_per_node,
                    gpus: self.gpus_per_node,
                    cpus: self.cpus_per_worker,
                }),
            },
            (None, Some(0)) => Err("--cpu-workers 0: give at least one worker".into()),
            (None, Some(workers)) => Ok(Allocation { workers, gpus: 0, cpus: self.cpus_per_worker }),
            (None, None) => Err("say what to run on: --gpus N (with --gpus-per-node), or --cpu-workers N".into()),
            (Some(_), Some(_)) => unreachable!("clap refuses --gpus with --cpu-workers"),
        }
    }
}

/// How the worker reaches the coordinator, as the script names it.
#[derive(Clone, Debug)]
pub struct WorkerConnection {
    pub coordinator: String,
    /// A path, never the token itself.
    pub token_file: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
}

/// The sbatch script.
pub fn render(args: &SlurmArgs, allocation: &Allocation, connection: &WorkerConnection, binary: &str) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut sbatch = |line: String| {
        let _ = writeln!(s, "#SBATCH {line}");
    };
    sbatch(format!("--job-name={}", args.job_name));
    let last = allocation.workers - 1;
    sbatch(match args.max_concurrent {
        Some(cap) => format!("--array=0-{last}%{cap}"),
        None => format!("--array=0-{last}"),
    });
    sbatch("--nodes=1".into());
    sbatch("--ntasks=1".into());
    sbatch(format!("--cpus-per-task={}", allocation.cpus));
    if allocation.gpus > 0 {
        sbatch(format!("--gres=gpu:{}", allocation.gpus));
    }
    if let Some(mem) = &args.mem {
        sbatch(format!("--mem={mem}"));
    }
    for (flag, value) in [
        ("partition", &args.partition),
        ("account", &args.account),
        ("qos", &args.qos),
        ("time", &args.time),
        ("constraint", &args.constraint),
    ] {
        if let Some(value) = value {
            sbatch(format!("--{flag}={value}"));
        }
    }
    // B: only the batch shell, which `exec` makes the worker itself.
    sbatch(format!("--signal=B:USR1@{}", args.signal_before));
    if args.requeue {
        sbatch("--requeue".into());
    }
    sbatch("--open-mode=append".into());
    sbatch(format!("--output={}/%x-%A_%a.out", args.log_dir.display()));
    for line in &args.extra {
        sbatch(line.trim_start_matches("#SBATCH").trim().to_string());
    }
    s.push_str("\n# Written by `widesweep launch slurm`. No secret is in this file: the worker\n");
    s.push_str("# reads its token from the file named below or from WIDESWEEP_TOKEN.\n");
    s.push_str("set -euo pipefail\n");
    s.push_str("# Training threads: the CPUs Slurm gave this task, not the whole node's.\n");
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    let devices = if allocation.gpus > 0 { "all" } else { "cpu" };
    // One option per line: the script is read by people too.
    let mut command = vec![
        format!("{} work", quote(binary)),
        format!("--coordinator {}", quote(&connection.coordinator)),
        format!("--devices {devices}"),
        format!("--data-dir {}", quote(&args.data_dir.display().to_string())),
        format!("--exit-when-idle {}", args.exit_when_idle),
    ];
    if let Some(file) = &connection.token_file {
        command.push(format!("--token-file {}", quote(&file.display().to_string())));
    }
    if let Some(ca) = &connection.tls_ca {
        command.push(format!("--tls-ca {}", quote(&ca.display().to_string())));
    }
    if !args.work_args.is_empty() {
        command.push(args.work_args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "));
    }
    let _ = writeln!(s, "exec {}", command.join(" \\\n    "));
    s
}

/// `text` as one shell word.
fn quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        slurm: SlurmArgs,
    }

    fn args(line: &[&str]) -> SlurmArgs {
        Cli::try_parse_from(std::iter::once("launch").chain(line.iter().copied())).unwrap().slurm
    }

    fn connection() -> WorkerConnection {
        WorkerConnection {
            coordinator: "https://coord:7070".into(),
            token_file: Some("/home/me/worker.token".into()),
            tls_ca: None,
        }
    }

    #[test]
    fn gpus_become_array_tasks_per_node_or_per_gpu() {
        let per_node = args(&["--gpus", "32", "--gpus-per-node", "8"]).allocation().unwrap();
        assert_eq!(per_node, Allocation { workers: 4, gpus: 8, cpus: 8 });
        let per_gpu = args(&["--gpus", "32", "--gpus-per-node", "8", "--worker-per", "gpu"]).allocation().unwrap();
        assert_eq!(per_gpu, Allocation { workers: 32, gpus: 1, cpus: 8 });
        let cpu = args(&["--cpu-workers", "2", "--cpus-per-worker", "1"]).allocation().unwrap();
        assert_eq!(cpu, Allocation { workers: 2, gpus: 0, cpus: 1 });
        assert!(args(&["--gpus", "12", "--gpus-per-node", "8"]).allocation().unwrap_err().contains("multiple"));
        assert!(args(&[]).allocation().unwrap_err().contains("--cpu-workers"));
    }

    #[test]
    fn the_script_carries_the_cluster_options_and_no_secret() {
        let a = args(&[
            "--gpus",
            "16",
            "--gpus-per-node",
            "8",
            "--partition",
            "gpu",
            "--account",
            "lab",
            "--qos",
            "high",
            "--time",
            "24:00:00",
            "--constraint",
            "h100",
            "--max-concurrent",
            "1",
            "--requeue",
            "--sbatch",
            "--mail-type=END",
            "--",
            "--scratch-dir",
            "/tmp/my scratch",
        ]);
        let script = render(&a, &a.allocation().unwrap(), &connection(), "/opt/widesweep");
        for line in [
            "#SBATCH --array=0-1%1",
            "#SBATCH --gres=gpu:8",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=lab",
            "#SBATCH --qos=high",
            "#SBATCH --time=24:00:00",
            "#SBATCH --constraint=h100",
            "#SBATCH --signal=B:USR1@300",
            "#SBATCH --requeue",
            "#SBATCH --mail-type=END",
            "exec /opt/widesweep work",
            "--devices all",
            "--token-file /home/me/worker.token",
            "--exit-when-idle 120",
            "'/tmp/my scratch'",
        ] {
            assert!(script.contains(line), "{line:?} missing from:\n{script}");
        }
        assert!(!script.contains("--token "), "no token on the command line:\n{script}");
    }
}
