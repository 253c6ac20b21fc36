//! `widesweep`: the one binary, as a library so that tests can check
//! command lines (e.g. those of docker-compose.yml) against the real
//! parser. Each subcommand lives in its own module under `commands/`.

pub mod commands;
mod connection;
mod secrets;
mod signals;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "widesweep", version, about = "Ablation studies of Wide Residual Networks", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the coordinator: the job queue and its gRPC services.
    Serve(commands::serve::ServeArgs),
    /// Run a sweep here, start to finish: an embedded coordinator, local
    /// worker slots, live progress, then the results table. Run it again
    /// to resume.
    Run(commands::run::RunArgs),
    /// Run a worker: one slot per device, leasing jobs from a coordinator.
    Work(commands::work::WorkArgs),
    /// Start workers through a cluster's scheduler (Slurm).
    #[command(subcommand)]
    Launch(commands::launch::LaunchCommand),
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
    /// Train finished jobs again under the current build and data (e.g. the odd ones out of cells a table flags).
    Rerun(commands::rerun::RerunArgs),
    /// Re-train sampled finished jobs and report whether each reproduced its recorded result.
    Verify(commands::verify::VerifyArgs),
    /// The workers a coordinator knows: host, devices, jobs, quarantine.
    Workers(commands::workers::WorkersArgs),
    /// Act on one worker (release it from quarantine).
    #[command(subcommand)]
    Worker(commands::workers::WorkerCommand),
    /// A paper-style table of sweeps: median over seeds ± std, parameters, seconds per epoch.
    Table(commands::table::TableArgs),
    /// Run one read-only SQL statement against the database.
    Sql(commands::sql::SqlArgs),
    /// Every job (or, with --epochs, every epoch) of sweeps as CSV or JSON lines.
    Export(commands::export::ExportArgs),
    /// Learning curves, or a metric against an axis, as SVG or PNG.
    Plot(commands::plot::PlotArgs),
    /// Validate and expand a spec without a database: cells, parameters, costs.
    Plan(commands::plan::PlanArgs),
    /// Train one cell directly and print every epoch.
    Train(commands::train::TrainArgs),
    /// Size and cost of one network: parameters, MACs, activation memory.
    Model(commands::model::ModelArgs),
    /// Datasets: fetch and verify.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Benchmarks of the coordinator and of training.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

impl Cli {
    /// Log level when WIDESWEEP_LOG is not set: the long-running services
    /// say what they do; commands that draw progress bars stay quiet.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Serve(_) | Command::Work(_) => "info",
            _ => "warn",
        }
    }
}

/// Training is CPU- or GPU-bound synchronous work: it runs on a blocking
/// thread so that the runtime stays responsive.
async fn blocking(work: impl FnOnce() -> anyhow::Result<()> + Send + 'static) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(work).await??;
    Ok(ExitCode::SUCCESS)
}

/// Runs the parsed command on a fresh runtime.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Run(args) => commands::run::run(args).await,
            Command::Work(args) => commands::work::run(args).await,
            Command::Launch(command) => commands::launch::run(command),
            Command::Submit(args) => commands::sweeps::submit(args).await,
            Command::Status(args) => commands::sweeps::status(args).await,
            Command::Cancel(args) => commands::sweeps::steer(args, commands::sweeps::Steer::Cancel).await,
            Command::Pause(args) => commands::sweeps::steer(args, commands::sweeps::Steer::Pause).await,
            Command::Resume(args) => commands::sweeps::steer(args, commands::sweeps::Steer::Resume).await,
            Command::Workers(args) => commands::workers::list(args).await,
            Command::Rerun(args) => commands::rerun::run(args).await,
            Command::Verify(args) => commands::verify::run(args).await,
            Command::Worker(command) => commands::workers::run(command).await,
            Command::Table(args) => commands::table::run(args).await,
            Command::Sql(args) => commands::sql::run(args).await,
            Command::Export(args) => commands::export::run(args).await,
            Command::Plot(args) => commands::plot::run(args).await,
            Command::Plan(args) => commands::plan::run(args).await,
            Command::Bench(command) => commands::bench::run(command).await,
            Command::Train(args) => blocking(move || commands::train::run_train(&args)).await,
            Command::Model(args) => blocking(move || commands::model::run_model(&args)).await,
            Command::Data(command) => blocking(move || commands::data::run_data(&command)).await,
        }
    })
}
