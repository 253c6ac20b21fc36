//! Results: the paper-style tables, exports, plots and read-only SQL that
//! researchers read a sweep through.
//!
//! - [`aggregate`]: median, mean, std... over seeds (pure functions).
//! - [`axis`], [`metric`]: what a table is laid out along, and what its cells measure.
//! - [`table`]: which jobs go in which cell ([`table::build`]), refusing cells that would pool
//!   jobs differing in more than their seed.
//! - [`render`]: the table as text, Markdown, CSV, JSON or LaTeX.
//! - [`export`]: one row per job (or per job and epoch) as CSV or JSON lines.
//! - [`plot`]: learning curves and a metric against an axis, as SVG or PNG.
//! - [`sql`]: one user statement, read-only by construction, with a timeout and a row cap.
//!
//! Everything here works on [`ResultRow`]s, whether they come from the
//! database ([`Store::sweep_results`]) or from a coordinator (the
//! `ListResults` rpc): aggregation happens on the client, in one place.

pub mod aggregate;
pub mod axis;
pub mod export;
pub mod metric;
pub mod plot;
pub mod render;
pub mod rerun;
pub mod sql;
pub mod table;

pub use aggregate::Agg;
pub use axis::{Axis, AxisValue};
pub use metric::Metric;
pub use render::{Format, render};
pub use table::{Table, TableOptions, build};

impl ReportError {
    /// Whether the reader of the output went away (`widesweep export | head`):
    /// not a failure worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            ReportError::Io(e) => Some(e),
            ReportError::Csv(e) => match e.kind() {
                csv::ErrorKind::Io(e) => Some(e),
                _ => None,
            },
            _ => None,
        };
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

use crate::store::{ResultRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown {what} {name}: valid {plural} are {valid}")]
    UnknownName { what: &'static str, plural: &'static str, name: String, valid: String },
    #[error("invalid {axis} value {value:?}: {reason}")]
    BadAxisValue { axis: &'static str, value: String, reason: String },
    #[error("axis {axis} is named twice: name each axis once, in --rows or in --cols")]
    AxisTwice { axis: &'static str },
    #[error("{flag} {text:?} is not AXIS=VALUE (axes: {valid})")]
    BadAssignment { flag: &'static str, text: String, valid: String },
    #[error("{flag} {axis}={value} matches nothing: the values of {axis} are {valid}")]
    NoSuchValue { flag: &'static str, axis: &'static str, value: String, valid: String },
    #[error(
        "--baseline names {axis}, which is neither a row axis ({rows}) nor a column axis ({cols}): add it to --rows or --cols"
    )]
    BaselineAxis { axis: &'static str, rows: String, cols: String },
    #[error(
        "cell {cell} would pool jobs that differ in {axis} ({values}), not only in their seed: \
         name {axis} in --rows or --cols, or keep one value with --where {axis}=VALUE"
    )]
    MixedCell { cell: String, axis: &'static str, values: String },
    #[error(
        "cell {cell} pools seeds trained under different {fields} ({cells} such cell(s) in all), so its seeds are \
         not samples of one distribution: re-train the odd ones out with `widesweep rerun SWEEP --incomparable`, \
         or leave out --strict to see the table with those cells flagged"
    )]
    Incomparable { cell: String, fields: String, cells: usize },
    #[error("nothing to tabulate: {reason}")]
    NoJobs { reason: String },
    #[error("{what} {axis} has no numeric values to plot along: {reason}")]
    PlotAxis { what: &'static str, axis: &'static str, reason: String },
    #[error("cannot draw the plot: {0}")]
    Plot(String),
    #[error("output file {path}: {reason}")]
    OutputFile { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing CSV")]
    Csv(#[from] csv::Error),
    #[error("writing output")]
    Io(#[from] std::io::Error),
}

/// The table `widesweep run` prints when its sweep finishes: `options`
/// (by default rows and columns from the axes that vary, median test error
/// ± std over seeds, parameters and seconds per epoch), as text.
pub async fn default_table(store: &dyn Store, sweep: &str, options: &TableOptions) -> Result<String, ReportError> {
    let rows = store.sweep_results(sweep).await?;
    let table = build(&rows, options)?;
    Ok(render(&table, Format::Text))
}

/// Every job of the named sweeps, in the order given.
pub async fn load_rows(store: &dyn Store, sweeps: &[String]) -> Result<Vec<ResultRow>, ReportError> {
    let mut rows = Vec::new();
    for sweep in sweeps {
        rows.extend(store.sweep_results(sweep).await?);
    }
    Ok(rows)
}
