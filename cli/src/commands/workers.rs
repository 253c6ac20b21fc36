//! `widesweep workers` and `widesweep worker release ID`: the workers a
//! coordinator knows, with the quarantine it keeps them in, and lifting it.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use widesweep_proto::v1 as pb;

use crate::connection::{CoordinatorArgs, explain};
use crate::terminal::one_line;

#[derive(Args, Debug)]
pub struct WorkersArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

#[derive(Subcommand, Debug)]
pub enum WorkerCommand {
    /// Lift the quarantine the coordinator keeps a worker in, so that it
    /// leases again (after the machine is fixed).
    Release {
        /// The worker's id, as `widesweep workers` lists it.
        id: i64,
        #[command(flatten)]
        coordinator: CoordinatorArgs,
    },
}

pub async fn list(args: WorkersArgs) -> anyhow::Result<ExitCode> {
    let url = &args.coordinator.coordinator;
    let mut clients = args.coordinator.connect()?;
    let workers =
        clients.sweeps.list_workers(pb::ListWorkersRequest {}).await.map_err(|s| explain(s, url))?.into_inner().workers;
    if workers.is_empty() {
        println!("no worker heard from in the last hour");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["id", "host", "devices", "version", "seen", "jobs", "quarantine"]);
    for w in &workers {
        let seen = format!("{:.0} s ago", (w.now_ms - w.last_seen_at_ms).max(0) as f64 / 1000.0);
        let quarantine = if w.quarantine_reason.is_empty() {
            "-".to_string()
        } else {
            let left = (w.quarantined_until_ms - w.now_ms).max(0) as f64 / 60_000.0;
            format!("{:.0} min left: {}", left.ceil(), one_line(&w.quarantine_reason))
        };
        table.add_row(vec![
            w.worker_id.to_string(),
            one_line(&w.hostname).into_owned(),
            one_line(&w.devices.join(",")).into_owned(),
            one_line(&w.version).into_owned(),
            seen,
            w.running_jobs.to_string(),
            quarantine,
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

pub async fn run(command: WorkerCommand) -> anyhow::Result<ExitCode> {
    match command {
        WorkerCommand::Release { id, coordinator } => {
            let url = &coordinator.coordinator;
            let mut clients = coordinator.connect()?;
            let worker = clients
                .sweeps
                .release_worker(pb::WorkerRef { worker_id: id })
                .await
                .map_err(|s| explain(s, url))?
                .into_inner();
            println!("worker {} ({}) released: it leases again", worker.worker_id, one_line(&worker.hostname));
            Ok(ExitCode::SUCCESS)
        }
    }
}
