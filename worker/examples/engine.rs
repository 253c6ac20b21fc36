//! The engine's subcommands without the rest of the `widesweep` binary:
//! `cargo run --release -p widesweep-worker --example engine -- train ...`.
//! It compiles the CLI's own `cli/src/engine.rs`, so both stay in step.

#[path = "../../cli/src/engine.rs"]
mod engine;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Train(engine::TrainArgs),
    Model(engine::ModelArgs),
    #[command(subcommand)]
    Data(engine::DataCommand),
    #[command(subcommand)]
    Bench(engine::BenchCommand),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let result = match Cli::parse().command {
        Command::Train(args) => engine::run_train(&args),
        Command::Model(args) => engine::run_model(&args),
        Command::Data(cmd) => engine::run_data(&cmd),
        Command::Bench(cmd) => engine::run_bench(&cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
