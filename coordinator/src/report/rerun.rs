//! Which finished jobs `widesweep rerun` hands back to the queue.

use std::collections::HashMap;

use super::ReportError;
use super::axis::Axis;
use super::table::filter;
use crate::store::{JobConfig, JobStatus, Provenance, ResultRow};

/// The finished (succeeded or failed) jobs of `rows` that match every
/// filter; with `incomparable`, only those of cells whose results differ
/// in provenance that changes results ([`crate::store::Provenance::comparable`])
/// and that differ from the cell's newest result (the current build and
/// data, which the re-runs will match).
pub fn select(
    rows: &[ResultRow],
    filters: &[(Axis, Vec<String>)],
    incomparable: bool,
) -> Result<Vec<i64>, ReportError> {
    let finished: Vec<&ResultRow> =
        rows.iter().filter(|r| r.in_spec && matches!(r.status, JobStatus::Succeeded | JobStatus::Failed)).collect();
    let chosen = filter(finished, filters)?;
    if !incomparable {
        return Ok(chosen.iter().map(|r| r.job_id).collect());
    }
    // A cell is its jobs' configuration but for the seed (a job's hash
    // covers its seed too).
    let mut cells: HashMap<String, Vec<(&ResultRow, &Provenance)>> = HashMap::new();
    for row in chosen.iter().filter(|r| r.status == JobStatus::Succeeded) {
        if let Some(provenance) = &row.provenance {
            let cell = format!("{:?}", JobConfig { seed: 0, ..row.config.clone() });
            cells.entry(cell).or_default().push((row, provenance));
        }
    }
    let mut ids = Vec::new();
    for jobs in cells.values() {
        let (_, reference) = jobs.iter().max_by_key(|(r, _)| (r.finished_at_ms, r.job_id)).expect("a cell has a job");
        ids.extend(jobs.iter().filter(|(_, p)| !reference.differences(p).is_empty()).map(|(r, _)| r.job_id));
    }
    ids.sort_unstable();
    Ok(ids)
}
