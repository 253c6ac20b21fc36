//! `widesweep launch`: start workers through a cluster's scheduler.

pub mod slurm;

use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::connection::CoordinatorArgs;

#[derive(Subcommand, Debug)]
pub enum LaunchCommand {
    /// Submit workers as a Slurm job array (sbatch); --dry-run prints the script.
    Slurm(LaunchSlurmArgs),
}

#[derive(Args, Debug)]
pub struct LaunchSlurmArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
}

pub fn run(command: LaunchCommand) -> anyhow::Result<ExitCode> {
    match command {
        LaunchCommand::Slurm(args) => launch_slurm(args),
    }
}

fn launch_slurm(args: LaunchSlurmArgs) -> anyhow::Result<ExitCode> {
    let allocation = args.slurm.allocation().map_err(anyhow::Error::msg)?;
    let absolute = |path: &std::path::Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(file) = &args.coordinator.token_file {
        anyhow::ensure!(file.is_file(), "--token-file {}: no such file (the workers read it)", file.display());
    }
    let connection = slurm::WorkerConnection {
        coordinator: args.coordinator.coordinator.clone(),
        token_file: args.coordinator.token_file.as_deref().map(absolute),
        tls_ca: args.coordinator.tls_ca.as_deref().map(absolute),
    };
    let binary = match &args.slurm.binary {
        Some(path) => absolute(path),
        None => std::env::current_exe().context("finding this widesweep binary (or pass --binary)")?,
    };
    let mut slurm_args = args.slurm.clone();
    slurm_args.log_dir = absolute(&slurm_args.log_dir);
    slurm_args.data_dir = absolute(&slurm_args.data_dir);
    let script = slurm::render(&slurm_args, &allocation, &connection, &binary.display().to_string());
    if slurm_args.dry_run {
        print!("{script}");
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&slurm_args.log_dir)
        .with_context(|| format!("creating the log directory {}", slurm_args.log_dir.display()))?;
    let mut sbatch = Command::new("sbatch");
    sbatch.arg("--parsable").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A token given as --token or WIDESWEEP_TOKEN reaches the workers through
    // the job's environment (sbatch exports the submitting one), never the script.
    if let Some(token) = &args.coordinator.token {
        sbatch.env("WIDESWEEP_TOKEN", token);
    }
    let mut child = sbatch.spawn().context("running sbatch (is this a Slurm login node?)")?;
    child.stdin.take().expect("piped stdin").write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "sbatch refused the script: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let job = String::from_utf8_lossy(&output.stdout).trim().split(';').next().unwrap_or_default().to_string();
    println!(
        "submitted Slurm job array {job}: {} workers ({}); logs in {}; watch with `squeue -j {job}`",
        allocation.workers,
        if allocation.gpus > 0 {
            format!("{} GPUs each", allocation.gpus)
        } else {
            format!("{} CPUs each", allocation.cpus)
        },
        slurm_args.log_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
