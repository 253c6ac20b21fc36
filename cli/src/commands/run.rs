//! `widesweep run SPEC`: the whole loop in one process. An embedded
//! coordinator (SQLite by default) serves on a loopback port, local worker
//! slots train the sweep, progress is drawn live, and the results table is
//! printed at the end. Everything is in the database, so running the same
//! command again resumes: finished cells are kept, interrupted cells
//! continue from their last checkpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use widesweep_coordinator::service::{Credentials, DEFAULT_MAX_ATTEMPTS, ServerConfig, serve};
use widesweep_coordinator::store::{self, Backend, DEFAULT_DB_URL, Store};
use widesweep_coordinator::web::WebConfig;
use widesweep_proto::client::ClientOptions;
use widesweep_proto::v1 as pb;
use widesweep_worker::agent::{self, JobOutcome, SlotEvent};

use super::common::read_spec;
use super::table::ComparisonArgs;
use super::work::SlotArgs;
use crate::signals;
use widesweep_coordinator::report::TableOptions;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Sweep spec (TOML).
    pub spec: PathBuf,
    /// Database URL: sqlite://FILE (embedded default) or postgres://USER@HOST/DB.
    #[arg(long, env = "WIDESWEEP_DB", default_value = DEFAULT_DB_URL)]
    pub db: String,
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Address of the embedded coordinator, where extra workers
    /// (`widesweep work --coordinator http://ADDR`) can join; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Address of the dashboard (live progress, the table, learning curves
    /// in a browser); `off` for none. When the address is taken, the run
    /// goes on without it.
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub http: HttpAddress,
    /// Bearer token extra workers must send (required off loopback); it
    /// grants every role. Prefer the environment or --token-file.
    #[arg(long, env = "WIDESWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, value_name = "FILE", env = "WIDESWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Directory for checkpoint files.
    #[arg(long, value_name = "DIR", default_value = "widesweep-artifacts")]
    pub artifacts: PathBuf,
    /// Seconds a lease lasts without a report or heartbeat.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lease_seconds: u64,
    /// Attempts per job before it is marked failed.
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Accept a spec that expands to more than 100,000 jobs.
    #[arg(long)]
    pub allow_large: bool,
    /// The final table's comparisons.
    #[command(flatten)]
    pub comparison: ComparisonArgs,
}

/// `--http`: an address, or `off`.
#[derive(Clone, Copy, Debug)]
pub struct HttpAddress(pub Option<SocketAddr>);

impl std::str::FromStr for HttpAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" | "none" => Ok(Self(None)),
            address => address.parse().map(|a| Self(Some(a))).map_err(|e| format!("{e}: give ADDR:PORT or off")),
        }
    }
}

/// How often the sweep's counts are refreshed.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (text, spec) = read_spec(&args.spec)?;
    // Bad table flags fail now, not after hours of training.
    let table_options = args.comparison.options()?;
    let expansion = spec.expand(args.allow_large).with_context(|| format!("invalid spec {}", args.spec.display()))?;
    let token = crate::secrets::token_from(args.token.as_deref(), args.token_file.as_deref(), "--token-file")?;
    super::common::require_token_off_loopback(args.listen, token.is_some(), "keep --listen on 127.0.0.1")?;
    let store = store::open(&args.db).await.with_context(|| format!("opening the database {}", args.db))?;
    if store.backend() == Backend::Sqlite {
        // The embedded database has no other coordinator: whatever is still
        // "running" was left by an earlier run that died without handing
        // its jobs back. Return them now rather than after their leases.
        let returned = store.reap_expired(i64::MAX).await?;
        if returned > 0 {
            eprintln!("returned {returned} jobs left running by an earlier run to the queue");
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "listening on {} (is another `widesweep run` or `serve` using it? pass --listen 127.0.0.1:0)",
            args.listen
        )
    })?;
    let address = listener.local_addr()?;
    let url = format!("http://{address}");
    let config = ServerConfig {
        lease: Duration::from_secs(args.lease_seconds),
        reap_interval: super::common::reap_interval(Duration::from_secs(args.lease_seconds)),
        artifacts_dir: args.artifacts.clone(),
        credentials: Credentials { shared: token.clone(), ..Credentials::default() },
        ..ServerConfig::default()
    };
    let dashboard = match args.http.0 {
        Some(address) => {
            super::common::require_token_off_loopback(address, token.is_some(), "keep --http on 127.0.0.1")?;
            match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => {
                    let web = WebConfig {
                        credentials: config.credentials.clone(),
                        stale_after: config.lease,
                        ..WebConfig::default()
                    };
                    let login = match &token {
                        Some(_) => " (log in with the token)",
                        None => "",
                    };
                    let page: String = spec
                        .name
                        .bytes()
                        .map(|b| match b {
                            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                                (b as char).to_string()
                            }
                            other => format!("%{other:02X}"),
                        })
                        .collect();
                    println!("dashboard at http://{0}/sweeps/{page}{login}", listener.local_addr()?);
                    Some(super::common::Dashboard::start(Arc::clone(&store), web, listener))
                }
                Err(error) => {
                    eprintln!(
                        "no dashboard: cannot listen on {address} ({error}); pass --http 127.0.0.1:0 or --http off"
                    );
                    None
                }
            }
        }
        None => None,
    };
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(Arc::clone(&store), config, listener, async {
        let _ = server_stopped.await;
    }));

    let options = ClientOptions { url: url.clone(), token, ca_pem: None };
    let mut clients = options.connect_lazy()?;
    let submitted = clients
        .sweeps
        .submit_sweep(pb::SubmitSweepRequest {
            spec_toml: text,
            allow_large: args.allow_large,
            priority: 0,
            max_attempts: args.max_attempts,
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    println!(
        "sweep {}: {} cells x {} seeds = {} jobs ({} new, {} already in the database)",
        submitted.name,
        expansion.cells.len(),
        spec.seeds.len(),
        submitted.total_cells,
        submitted.new_cells,
        submitted.existing_cells
    );
    if let Some(adaptive) = spec.adaptive {
        println!(
            "adaptive seeds: each cell grows to at most {} seeds while its 95 % interval is wider than +-{} pp ({} jobs in reserve)",
            adaptive.max, adaptive.target_ci, submitted.reserve_cells
        );
    }
    println!("coordinator at {url}; more workers can join with `widesweep work --coordinator {url}`");

    let (signal, shutdown) = agent::shutdown_channel();
    let interrupted = signal.subscribe();
    tokio::spawn(signals::graceful_then_immediate(
        signal,
        "running cells finish their epoch, checkpoint and go back to the queue",
    ));
    let (events_tx, events) = mpsc::unbounded_channel();
    let (finish_tx, finish) = agent::shutdown_channel();
    let agent_shutdown = merge(shutdown.clone(), finish);
    let worker = tokio::spawn(agent::run(args.slots.agent_config(options), agent_shutdown, Some(events_tx)));

    let progress = Progress::new(&args.slots);
    let watched = watch(&mut clients.sweeps, &submitted.name, events, &progress, &finish_tx, worker).await;
    progress.clear();
    let _ = stop_server.send(());
    let _ = server.await;
    if let Some(dashboard) = dashboard {
        dashboard.stop().await;
    }
    let summary = store.sweep(&submitted.name).await?;
    match watched? {
        _ if interrupted.is_requested() => {
            println!(
                "interrupted: {} of {} jobs finished; run the same command again to resume",
                summary.counts.succeeded + summary.counts.failed,
                summary.counts.total()
            );
            return Ok(ExitCode::from(130));
        }
        () => {}
    }
    print_results(store.as_ref(), &submitted.name, &table_options).await?;
    if summary.counts.failed > 0 {
        eprintln!(
            "{} jobs failed; their errors are in the jobs table (last_error) and in `widesweep status`",
            summary.counts.failed
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A shutdown requested by either of two signals.
fn merge(a: agent::Shutdown, b: agent::Shutdown) -> agent::Shutdown {
    let (signal, merged) = agent::shutdown_channel();
    tokio::spawn(async move {
        tokio::select! {
            _ = a.requested() => {}
            _ = b.requested() => {}
        }
        signal.request();
        // Keep the sender alive so that receivers see the request, not a close.
        std::future::pending::<()>().await;
    });
    merged
}

/// Follows the sweep until no job is pending or running (then stops the
/// local slots) or until the agent ends (after a Ctrl-C).
async fn watch(
    sweeps: &mut widesweep_proto::client::SweepClient,
    sweep: &str,
    mut events: mpsc::UnboundedReceiver<SlotEvent>,
    progress: &Progress,
    finish: &agent::ShutdownSignal,
    mut worker: tokio::task::JoinHandle<Result<(), agent::AgentError>>,
) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(POLL);
    let mut finishing = false;
    loop {
        tokio::select! {
            joined = &mut worker => {
                joined.context("the local worker panicked")??;
                // Drain what the slots said last.
                while let Ok(event) = events.try_recv() {
                    progress.on_event(event);
                }
                return Ok(());
            }
            Some(event) = events.recv() => progress.on_event(event),
            _ = ticker.tick() => {
                let status = sweeps
                    .get_sweep(pb::GetSweepRequest { sweep: sweep.to_string() })
                    .await
                    .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                    .into_inner();
                progress.on_status(&status);
                if !finishing && status.pending + status.running == 0 {
                    finishing = true;
                    finish.request();
                }
            }
        }
    }
}

/// The live display: one bar for the sweep, one per slot.
struct Progress {
    multi: MultiProgress,
    sweep: ProgressBar,
    slots: std::sync::Mutex<HashMap<usize, ProgressBar>>,
    devices: Vec<String>,
}

impl Progress {
    fn new(slots: &SlotArgs) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let sweep = multi.add(ProgressBar::new(0));
        sweep.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30.cyan/blue}] {pos}/{len} jobs  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        sweep.set_prefix("sweep");
        Self {
            multi,
            sweep,
            slots: std::sync::Mutex::default(),
            devices: slots.devices.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn hidden(&self) -> bool {
        self.multi.is_hidden()
    }

    fn on_status(&self, s: &pb::SweepStatus) {
        self.sweep.set_length(s.total);
        self.sweep.set_position(s.succeeded + s.failed + s.cancelled);
        let eta = super::common::eta(s).map(|eta| format!(", ETA {eta}")).unwrap_or_default();
        let failed = if s.failed > 0 { format!(", {} failed", s.failed) } else { String::new() };
        self.sweep.set_message(format!("{} running, {} pending{failed}{eta}", s.running, s.pending));
    }

    fn slot_bar(&self, slot: usize) -> ProgressBar {
        let mut slots = self.slots.lock().expect("progress lock");
        slots
            .entry(slot)
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(1));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>8} [{bar:30.green/white}] epoch {pos}/{len}  {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(self.devices.get(slot).cloned().unwrap_or_else(|| format!("slot {slot}")));
                bar
            })
            .clone()
    }

    fn on_event(&self, event: SlotEvent) {
        match event {
            SlotEvent::Started { slot, label, epochs, resumed_after, .. } => {
                let bar = self.slot_bar(slot);
                bar.set_length(epochs as u64);
                bar.set_position(resumed_after as u64);
                let resumed =
                    if resumed_after > 0 { format!(" (resumed after epoch {resumed_after})") } else { String::new() };
                bar.set_message(format!("{label}{resumed}"));
                if resumed_after > 0 && self.hidden() {
                    println!("{label}: resuming from the checkpoint of epoch {resumed_after}");
                }
            }
            SlotEvent::Epoch { slot, metrics, .. } => {
                let bar = self.slot_bar(slot);
                bar.set_position(metrics.epoch as u64);
                let label = bar.message().split("  test error").next().unwrap_or_default().to_string();
                bar.set_message(format!("{label}  test error {:.2}%", metrics.test_error * 100.0));
            }
            SlotEvent::Finished { slot, label, outcome, .. } => {
                let line = match &outcome {
                    JobOutcome::Succeeded { test_error, epochs } => {
                        format!("{label}: test error {:.2}% after {epochs} epochs", test_error * 100.0)
                    }
                    JobOutcome::Failed { error, requeued, .. } => {
                        format!("{label}: failed{}: {error}", if *requeued { " (will retry)" } else { "" })
                    }
                    JobOutcome::Released { epochs_done } => {
                        format!("{label}: back in the queue after {epochs_done} epochs")
                    }
                    JobOutcome::Dropped { reason } => format!("{label}: dropped ({reason})"),
                };
                if self.hidden() {
                    println!("{line}");
                } else {
                    let _ = self.multi.println(line);
                }
                let bar = self.slot_bar(slot);
                bar.set_position(0);
                bar.set_message("waiting for a job");
            }
        }
    }

    fn clear(&self) {
        for bar in self.slots.lock().expect("progress lock").values() {
            bar.finish_and_clear();
        }
        self.sweep.finish_and_clear();
    }
}

async fn print_results(store: &dyn Store, sweep: &str, options: &TableOptions) -> anyhow::Result<()> {
    let summary = store.sweep(sweep).await?;
    println!("{}", widesweep_coordinator::report::default_table(store, sweep, options).await?);
    println!(
        "sweep {}: {} succeeded, {} failed, {} cancelled of {} jobs",
        summary.name,
        summary.counts.succeeded,
        summary.counts.failed,
        summary.counts.cancelled,
        summary.counts.total()
    );
    Ok(())
}
