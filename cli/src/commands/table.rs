//! `widesweep table`: a paper-style table of one or more sweeps.

use std::process::ExitCode;

use clap::Args;
use widesweep_coordinator::report::table::{parse_assignment, parse_filter};
use widesweep_coordinator::report::{Agg, Format, Metric, TableOptions, build, render};
use widesweep_coordinator::stats::Correction;

use super::results::{AxisList, SourceArgs, fetch, parse_axes};
use crate::connection::CoordinatorArgs;
use crate::terminal::shown;

#[derive(Args, Debug)]
pub struct TableArgs {
    /// Sweep names or ids; several make one table (e.g. the CIFAR-10 and CIFAR-100 halves of Table 4).
    #[arg(required = true)]
    pub sweeps: Vec<String>,
    /// Axes along the rows, comma-separated: block, l, depth, blocks_per_group, width, dropout, dataset,
    /// seed, recipe, sweep. Chosen from the axes that vary when left out.
    #[arg(long, value_name = "AXES", value_parser = parse_axes)]
    pub rows: Option<AxisList>,
    /// Axes along the columns (as --rows); "" for none.
    #[arg(long, value_name = "AXES", value_parser = parse_axes)]
    pub cols: Option<AxisList>,
    /// test_error, best_test_error, train_loss, params, epoch_seconds or gpu_hours.
    #[arg(long, default_value = "test_error")]
    pub metric: Metric,
    /// How seeds combine: median, mean, min, max, std, count or sum.
    #[arg(long, default_value = "median")]
    pub agg: Agg,
    /// text, markdown, csv, json or latex (CSV and JSON: one record per cell).
    #[arg(long, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub comparison: ComparisonArgs,
    /// Keep only jobs with one of these values, e.g. --where dropout=0 (repeatable).
    #[arg(long = "where", value_name = "AXIS=VALUES")]
    pub filters: Vec<String>,
    /// Also count jobs that a resubmitted spec no longer contains.
    #[arg(long)]
    pub include_dropped: bool,
    /// The metric alone, without parameter counts and seconds per epoch.
    #[arg(long)]
    pub bare: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

impl TableArgs {
    /// What the user typed, as table options (before any I/O).
    pub fn options(&self) -> anyhow::Result<TableOptions> {
        Ok(TableOptions {
            rows: self.rows.clone().map(|a| a.0),
            cols: self.cols.clone().map(|a| a.0),
            metric: self.metric,
            agg: self.agg,
            filters: self.filters.iter().map(|f| parse_filter(f)).collect::<Result<_, _>>()?,
            include_out_of_spec: self.include_dropped,
            extras: !self.bare,
            ..self.comparison.options()?
        })
    }
}

/// How a table compares its cells with a baseline; `table` and `run` share them.
#[derive(Args, Debug, Clone, Default)]
pub struct ComparisonArgs {
    /// Add each cell's difference to the cell with this value, e.g. block=B(3,3), with a test of it
    /// (seed by seed where the cells share seeds).
    #[arg(long, value_name = "AXIS=VALUE")]
    pub baseline: Option<String>,
    /// How the p-values of many comparisons with the baseline are adjusted: holm, bh (Benjamini-Hochberg)
    /// or none.
    #[arg(long, default_value = "holm")]
    pub correction: Correction,
    /// Refuse the table when a cell pools seeds trained under different provenance that changes results
    /// (RNG scheme, dataset files, engine or its version, kernel class), instead of flagging it with ‡.
    #[arg(long)]
    pub strict: bool,
}

impl ComparisonArgs {
    /// Default table options with these choices.
    pub fn options(&self) -> anyhow::Result<TableOptions> {
        Ok(TableOptions {
            baseline: self.baseline.as_deref().map(|b| parse_assignment(b, "--baseline")).transpose()?,
            correction: self.correction,
            strict: self.strict,
            ..TableOptions::default()
        })
    }
}

pub async fn run(args: TableArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let (rows, _) = fetch(&args.source, &args.sweeps, false).await?;
    let table = build(&rows, &options)?;
    print!("{}", shown(&render(&table, args.format)));
    Ok(ExitCode::SUCCESS)
}

/// The default table of a sweep as it stands, for `status --watch`: running
/// and pending cells are marked as such.
pub async fn live_table(coordinator: &CoordinatorArgs, sweep: &str) -> anyhow::Result<String> {
    let source = SourceArgs { coordinator: coordinator.clone(), db: None };
    let (rows, _) = fetch(&source, &[sweep.to_string()], false).await?;
    Ok(render(&build(&rows, &TableOptions::default())?, Format::Text))
}
