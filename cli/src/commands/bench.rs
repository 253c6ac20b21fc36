use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use widesweep_coordinator::loadgen::{self, LoadConfig};
use widesweep_coordinator::service::{ServerConfig, serve};
use widesweep_coordinator::store::{self, DEFAULT_DB_URL};
use widesweep_proto::client::ClientOptions;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Drive an in-process coordinator with simulated workers over real gRPC.
    Coordinator(CoordinatorBenchArgs),
    /// Steady-state training images/s and peak memory of one config.
    Train(crate::engine::BenchTrainArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct CoordinatorBenchArgs {
    /// Database URL (a new sweep named bench-<time> is added to it).
    #[arg(long, default_value = DEFAULT_DB_URL)]
    pub db: String,
    /// Concurrent simulated workers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub workers: u64,
    /// Jobs in the queue.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub jobs: u64,
    /// Epoch reports per job (the last is the completion).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub epochs: u32,
    /// Stop after this many seconds even if jobs remain.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Coordinator(args) => coordinator(args).await,
        BenchCommand::Train(args) => {
            tokio::task::spawn_blocking(move || crate::engine::run_bench_train(&args)).await??;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn coordinator(args: CoordinatorBenchArgs) -> anyhow::Result<ExitCode> {
    let store = store::open(&args.db).await.with_context(|| format!("opening the database {}", args.db))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let artifacts = std::env::temp_dir().join(format!("widesweep-bench-{}", std::process::id()));
    let config = ServerConfig { artifacts_dir: artifacts.clone(), ..ServerConfig::default() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(store, config, listener, async {
        let _ = stopped.await;
    }));
    let load = LoadConfig {
        workers: args.workers as usize,
        jobs: args.jobs as usize,
        epochs: args.epochs,
        duration: Duration::from_secs(args.seconds),
    };
    let report = loadgen::run(&ClientOptions { url, ..ClientOptions::default() }, &load).await;
    let _ = stop.send(());
    server.await??;
    let _ = std::fs::remove_dir_all(&artifacts);
    let report = report.map_err(|s| anyhow::anyhow!("benchmark failed: {}", s.message()))?;
    match args.format {
        ReportFormat::Text => print!("{}", report.to_text()),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}
