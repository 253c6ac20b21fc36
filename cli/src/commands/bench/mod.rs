mod dashboard;
mod selfcheck;
mod train;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use widesweep_coordinator::bench::loadgen::{self, LoadConfig};
use widesweep_coordinator::bench::schedule;
use widesweep_coordinator::service::{ServerConfig, serve};
use widesweep_coordinator::store::{self, DEFAULT_DB_URL};
use widesweep_proto::client::ClientOptions;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Drive an in-process coordinator with simulated workers over real gRPC.
    Coordinator(CoordinatorBenchArgs),
    /// Steady-state training images/s and peak memory of one config.
    Train(train::BenchTrainArgs),
    /// Makespan of specs on simulated devices: jobs leased in id order, as
    /// the coordinator leases them (longest first), and the lower bound.
    Schedule(ScheduleBenchArgs),
    /// CPU and memory of a `serve` process holding a large sweep while
    /// simulated workers report and simulated dashboard pages watch it.
    Dashboard(dashboard::DashboardBenchArgs),
    /// Each device's kernels against the CPU reference on a tiny network, in
    /// f32 and bf16: what every worker slot checks before it trains.
    SelfCheck(selfcheck::SelfCheckArgs),
}

#[derive(Args, Debug)]
pub struct ScheduleBenchArgs {
    /// Sweep specs, submitted in this order to a throwaway database.
    #[arg(required = true)]
    pub specs: Vec<std::path::PathBuf>,
    /// Simulated devices, each running one job at a time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub devices: u64,
    /// Each device's rate in TFLOP-equivalents per second of the cost
    /// model: the scale of the hours (their ratios do not depend on it).
    #[arg(long, default_value_t = 10.0)]
    pub tflops: f64,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
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
            tokio::task::spawn_blocking(move || train::run_bench_train(&args)).await??;
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Schedule(args) => schedule(args).await,
        BenchCommand::Dashboard(args) => dashboard::run(args).await,
        BenchCommand::SelfCheck(args) => tokio::task::spawn_blocking(move || selfcheck::run(&args)).await?,
    }
}

async fn schedule(args: ScheduleBenchArgs) -> anyhow::Result<ExitCode> {
    if !(args.tflops.is_finite() && args.tflops > 0.0) {
        anyhow::bail!("--tflops {} is invalid: give a positive rate, e.g. 10", args.tflops);
    }
    let dir = tempfile::tempdir()?;
    let store = store::open(&format!("sqlite://{}", dir.path().join("schedule.db").display())).await?;
    let mut names = Vec::new();
    for path in &args.specs {
        let (text, spec) = super::common::read_spec(path)?;
        let expansion = spec.expand(true).with_context(|| format!("invalid spec {}", path.display()))?;
        let sweep = store::NewSweep {
            name: &spec.name,
            dataset: spec.dataset,
            spec_toml: &text,
            engines: &spec.engines.defined,
            priority: 0,
            max_attempts: 3,
            jobs: &expansion.jobs,
            reserve: &[],
            seeds_target_ci: None,
            max_failed_fraction: None,
        };
        store.submit_sweep(&sweep, 0).await?;
        names.push(spec.name);
    }
    let order = schedule::lease_order(store.as_ref()).await?;
    let devices = args.devices as usize;
    let report = schedule::MakespanReport::new(&order, devices, args.tflops * 1e12);
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => {
            let r = &report;
            println!(
                "{} ({} jobs) on {} simulated devices of {} TFLOP-eq/s each:\n  \
                 id order      {:>10.1} h  ({:.3} x the bound)\n  \
                 longest first {:>10.1} h  ({:.3} x the bound)\n  \
                 lower bound   {:>10.1} h  (max(total work / devices, longest job))",
                names.join(" + "),
                r.jobs,
                r.devices,
                args.tflops,
                r.id_order_hours,
                r.id_order_hours / r.lower_bound_hours,
                r.store_order_hours,
                r.store_order_hours / r.lower_bound_hours,
                r.lower_bound_hours,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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
        pace: Duration::ZERO,
        spec: None,
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
