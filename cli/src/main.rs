//! `widesweep`: the one binary. Each subcommand lives in its own module
//! under `commands/`; this file parses arguments, sets up logging, and
//! turns errors into a message with its whole context chain and an exit
//! code.

mod commands;
mod connection;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "widesweep", version, about = "Ablation studies of Wide Residual Networks", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the coordinator: the job queue and its gRPC services.
    Serve(commands::serve::ServeArgs),
    /// Submit a sweep spec to a coordinator (idempotent).
    Submit(commands::sweeps::SubmitArgs),
    /// Show sweeps and their progress.
    Status(commands::sweeps::StatusArgs),
    /// Cancel a sweep: its pending and running jobs are cancelled.
    Cancel(commands::sweeps::SteerArgs),
    /// Pause a sweep: no new jobs are leased; running jobs finish.
    Pause(commands::sweeps::SteerArgs),
    /// Resume a paused sweep.
    Resume(commands::sweeps::SteerArgs),
    /// Validate and expand a spec without a database: cells, parameters, costs.
    Plan(commands::plan::PlanArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WIDESWEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Submit(args) => commands::sweeps::submit(args).await,
            Command::Status(args) => commands::sweeps::status(args).await,
            Command::Cancel(args) => commands::sweeps::steer(args, commands::sweeps::Steer::Cancel).await,
            Command::Pause(args) => commands::sweeps::steer(args, commands::sweeps::Steer::Pause).await,
            Command::Resume(args) => commands::sweeps::steer(args, commands::sweeps::Steer::Resume).await,
            Command::Plan(args) => commands::plan::run(args),
            Command::Bench(command) => commands::bench::run(command).await,
        }
    })
}
