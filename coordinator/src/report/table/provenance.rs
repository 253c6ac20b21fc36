//! Cells whose seeds were trained under provenance that changes results
//! ([`Provenance::comparable`]): found per cell, then noted under the table
//! or, with `--strict`, refused.

use super::{AxisValues, Cell, Table, describe};
use crate::report::ReportError;
use crate::report::metric::Metric;
use crate::store::{Provenance, ResultRow};

/// The comparable provenance fields in which the results of a cell's jobs
/// differ (those with a value of the metric and a recorded provenance).
pub(super) fn provenance_differences(jobs: &[&ResultRow], metric: Metric) -> Vec<&'static str> {
    let recorded: Vec<&Provenance> =
        jobs.iter().filter(|j| metric.value(j).is_some()).filter_map(|j| j.provenance.as_ref()).collect();
    let mut fields: Vec<&'static str> = Vec::new();
    for other in recorded.iter().skip(1) {
        for field in recorded[0].differences(other) {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    fields
}

/// Notes the cells whose seeds were trained under provenance that changes
/// results, or with `strict` refuses the table.
pub(super) fn check_provenance(
    table: &Table,
    values: &AxisValues,
    strict: bool,
    notes: &mut Vec<String>,
) -> Result<(), ReportError> {
    let describe =
        |r: usize, c: usize| describe(values, &table.row_axes, &table.rows[r].key, &table.col_axes, &table.columns[c]);
    let mixed: Vec<(String, &Cell)> = table
        .rows
        .iter()
        .enumerate()
        .flat_map(|(r, row)| row.cells.iter().enumerate().map(move |(c, cell)| (r, c, cell)))
        .filter(|(_, _, cell)| !cell.provenance_differs.is_empty())
        .map(|(r, c, cell)| (describe(r, c), cell))
        .collect();
    let Some((first, cell)) = mixed.first() else { return Ok(()) };
    if strict {
        return Err(ReportError::Incomparable {
            cell: first.clone(),
            fields: cell.provenance_differs.join(", "),
            cells: mixed.len(),
        });
    }
    let list: Vec<String> =
        mixed.iter().map(|(place, cell)| format!("{place} ({})", cell.provenance_differs.join(", "))).collect();
    notes.push(format!(
        "‡ {} cell(s) pool seeds trained under different provenance, which changes results: {}; \
         `widesweep export SWEEP` lists each job's, `widesweep rerun SWEEP --incomparable` re-trains the \
         odd ones out, --strict refuses such a table",
        mixed.len(),
        list.join("; ")
    ));
    Ok(())
}
