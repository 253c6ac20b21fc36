//! `widesweep rerun SWEEP`: finished jobs trained again under the current
//! build and data, as new attempts (the earlier results stay in the
//! attempts history).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use widesweep_coordinator::report::rerun::select;
use widesweep_coordinator::report::table::parse_filter;
use widesweep_proto::v1 as pb;

use super::results::{SourceArgs, fetch};
use crate::connection::{CoordinatorArgs, explain};

#[derive(Args, Debug)]
pub struct RerunArgs {
    /// The sweep's name or id.
    pub sweep: String,
    /// Only the finished jobs with one of these values, e.g. --where seed=2 (repeatable).
    #[arg(long = "where", value_name = "AXIS=VALUES")]
    pub filters: Vec<String>,
    /// Only the jobs of cells whose seeds were trained under provenance that changes results (the cells a
    /// table flags with ‡) that differ from their cell's newest result.
    #[arg(long)]
    pub incomparable: bool,
    /// List the jobs that would be requeued, and requeue none.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

pub async fn run(args: RerunArgs) -> anyhow::Result<ExitCode> {
    let filters = args.filters.iter().map(|f| parse_filter(f)).collect::<Result<Vec<_>, _>>()?;
    let source = SourceArgs { coordinator: args.coordinator.clone(), db: None };
    let (rows, _) = fetch(&source, std::slice::from_ref(&args.sweep), false).await?;
    let chosen = select(&rows, &filters, args.incomparable)?;
    if chosen.is_empty() {
        println!("no finished job of {} matches: nothing to re-train", args.sweep);
        return Ok(ExitCode::SUCCESS);
    }
    let list = chosen.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(", ");
    if args.dry_run {
        println!("would re-train {} job(s): {list}", chosen.len());
        return Ok(ExitCode::SUCCESS);
    }
    let url = &args.coordinator.coordinator;
    let mut clients = args.coordinator.connect()?;
    let requeued = clients
        .sweeps
        .rerun_jobs(pb::JobsRef { sweep: args.sweep.clone(), job_ids: chosen, new_sweep: String::new() })
        .await
        .map_err(|s| explain(s, url))
        .with_context(|| format!("re-training jobs of {}", args.sweep))?
        .into_inner()
        .job_ids;
    let list = requeued.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(", ");
    println!(
        "{} job(s) of {} back in the queue to be trained again: {list}; the earlier results stay in the attempts \
         table",
        requeued.len(),
        args.sweep
    );
    Ok(ExitCode::SUCCESS)
}
