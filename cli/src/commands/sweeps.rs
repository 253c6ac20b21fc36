use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use tokio_stream::StreamExt;
use widesweep_coordinator::service::DEFAULT_MAX_ATTEMPTS;
use widesweep_proto::v1 as pb;

use super::common::{eta, read_spec};
use crate::connection::{CoordinatorArgs, explain};
use crate::terminal::{one_line, shown};

#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Sweep spec (TOML).
    pub spec: PathBuf,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    /// Accept a spec that expands to more than 100,000 jobs.
    #[arg(long)]
    pub allow_large: bool,
    /// Priority relative to other sweeps; higher is leased first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Attempts per job before it is marked failed.
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    // Validate here first: errors then name the file, and nothing is sent.
    let (text, spec) = read_spec(&args.spec)?;
    spec.expand(args.allow_large).with_context(|| format!("invalid spec {}", args.spec.display()))?;
    let url = &args.coordinator.coordinator;
    let mut clients = args.coordinator.connect()?;
    let outcome = clients
        .sweeps
        .submit_sweep(pb::SubmitSweepRequest {
            spec_toml: text,
            allow_large: args.allow_large,
            priority: args.priority,
            max_attempts: args.max_attempts,
        })
        .await
        .map_err(|s| explain(s, url))?
        .into_inner();
    println!(
        "sweep {} (id {}): {} new jobs, {} already queued, {} no longer in the spec; {} jobs in all",
        outcome.name,
        outcome.sweep_id,
        outcome.new_cells,
        outcome.existing_cells,
        outcome.dropped_cells,
        outcome.total_cells
    );
    if outcome.reserve_cells + outcome.added_cells > 0 {
        println!(
            "adaptive seeds: {} jobs held in reserve{}",
            outcome.reserve_cells,
            if outcome.added_cells > 0 {
                format!(", {} added now to cells whose interval is still too wide", outcome.added_cells)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A sweep's name or id; all sweeps when left out.
    pub sweep: Option<String>,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    /// Follow the sweep's progress until it finishes, with its table as results arrive.
    #[arg(long, requires = "sweep")]
    pub watch: bool,
    /// With --watch: the progress line only, without the table.
    #[arg(long, requires = "watch")]
    pub no_table: bool,
}

fn describe(s: &pb::SweepStatus) -> String {
    let eta = eta(s).map(|eta| format!(", ETA {eta}")).unwrap_or_default();
    format!(
        "sweep {} (id {}, {}, {}): {} jobs: {} pending, {} running, {} succeeded, {} failed, {} cancelled; epochs {}/{}{}",
        one_line(&s.name),
        s.sweep_id,
        s.state,
        s.dataset,
        s.total,
        s.pending,
        s.running,
        s.succeeded,
        s.failed,
        s.cancelled,
        s.epochs_done,
        s.epochs_total,
        eta
    ) + &adaptive(s).map(|a| format!("; {a}")).unwrap_or_default()
}

/// The adaptive seeds' part of a status line, for sweeps that have them.
pub(crate) fn adaptive(s: &pb::SweepStatus) -> Option<String> {
    s.seeds_target_ci.filter(|_| s.state != "cancelled").map(|target| {
        if s.pending + s.running == 0 {
            format!(
                "adaptive seeds: every cell's 95 % interval is within +-{target} pp or at the seed limit; \
                 {} reserve seeds not needed",
                s.reserve
            )
        } else {
            format!(
                "adaptive seeds: {} held in reserve, added to a cell while its 95 % interval is wider than +-{target} pp",
                s.reserve
            )
        }
    })
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let url = &args.coordinator.coordinator;
    let mut clients = args.coordinator.connect()?;
    let Some(sweep) = args.sweep else {
        let sweeps =
            clients.sweeps.list_sweeps(pb::ListSweepsRequest {}).await.map_err(|s| explain(s, url))?.into_inner();
        if sweeps.sweeps.is_empty() {
            println!("no sweeps yet: submit one with `widesweep submit SPEC`");
            return Ok(ExitCode::SUCCESS);
        }
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "id",
            "sweep",
            "state",
            "dataset",
            "jobs",
            "pending",
            "running",
            "succeeded",
            "failed",
            "cancelled",
            "reserve",
            "ETA",
        ]);
        for s in &sweeps.sweeps {
            let eta = eta(s).unwrap_or_else(|| "-".to_string());
            table.add_row(vec![
                s.sweep_id.to_string(),
                one_line(&s.name).into_owned(),
                s.state.clone(),
                s.dataset.clone(),
                s.total.to_string(),
                s.pending.to_string(),
                s.running.to_string(),
                s.succeeded.to_string(),
                s.failed.to_string(),
                s.cancelled.to_string(),
                if s.seeds_target_ci.is_some() { s.reserve.to_string() } else { "-".to_string() },
                eta,
            ]);
        }
        println!("{table}");
        return Ok(ExitCode::SUCCESS);
    };
    if args.watch {
        let mut stream = clients
            .sweeps
            .watch_sweep(pb::WatchSweepRequest { sweep, interval_ms: 1000 })
            .await
            .map_err(|s| explain(s, url))?
            .into_inner();
        // The table is printed again when a job starts, ends or fails, not
        // at every epoch report.
        let mut shown_states = None;
        while let Some(update) = stream.next().await {
            let update = update.map_err(|s| explain(s, url))?;
            println!("{}", describe(&update));
            let states = (update.running, update.succeeded, update.failed, update.cancelled);
            if !args.no_table && shown_states != Some(states) {
                shown_states = Some(states);
                match super::table::live_table(&args.coordinator, &update.name).await {
                    Ok(table) => print!("{}", shown(&table)),
                    Err(error) => println!("(no table: {error:#})"),
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let s = clients.sweeps.get_sweep(pb::GetSweepRequest { sweep }).await.map_err(|s| explain(s, url))?.into_inner();
    println!("{}", describe(&s));
    if !s.pause_reason.is_empty() {
        println!("paused by the coordinator: {}", one_line(&s.pause_reason));
    }
    if !s.error_groups.is_empty() {
        println!("failed attempts by cause:");
        for g in &s.error_groups {
            println!(
                "  {} attempts of {} jobs, {} error, on {}: {}",
                g.attempts,
                g.jobs,
                g.error_class,
                one_line(&g.workers.join(", ")),
                shown(&g.error).replace('\n', "\n    ")
            );
        }
    }
    for e in &s.errors {
        let place = match (e.hostname.is_empty(), e.worker_id) {
            (true, _) => String::new(),
            (false, 0) => format!(", on {}", one_line(&e.hostname)),
            (false, id) => format!(", on {} (worker {id})", one_line(&e.hostname)),
        };
        let class = if e.error_class.is_empty() { String::new() } else { format!(", {} error", e.error_class) };
        println!(
            "  job {} (seed {}, {}, attempt {} of {}{class}{place}): {}",
            e.job_id,
            e.seed,
            e.status,
            e.attempts_spent,
            e.max_attempts,
            shown(&e.error).replace('\n', "\n    ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct SteerArgs {
    /// The sweep's name or id.
    pub sweep: String,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

pub enum Steer {
    Cancel,
    Pause,
    Resume,
}

pub async fn steer(args: SteerArgs, action: Steer) -> anyhow::Result<ExitCode> {
    let url = &args.coordinator.coordinator;
    let mut clients = args.coordinator.connect()?;
    let request = pb::SweepRef { sweep: args.sweep };
    let status = match action {
        Steer::Cancel => clients.sweeps.cancel_sweep(request).await,
        Steer::Pause => clients.sweeps.pause_sweep(request).await,
        Steer::Resume => clients.sweeps.resume_sweep(request).await,
    }
    .map_err(|s| explain(s, url))?
    .into_inner();
    println!("{}", describe(&status));
    Ok(ExitCode::SUCCESS)
}
