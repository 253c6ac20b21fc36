//! Learning curves as the sweep page draws them: per cell (the jobs that
//! differ only in their seed), the test error of each epoch as the median
//! over the seeds that reported it, with the best and worst seed as its
//! band. Summarised here, so a page receives a few points per cell and
//! epoch however many seeds and jobs the sweep has.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::report::aggregate::median;
use crate::store::{JobEpoch, ResultRow};

/// Cells drawn at most: more lines than this make a plot nobody can read.
pub(super) const CELLS_DRAWN: usize = 24;

#[derive(Serialize, Debug, PartialEq)]
pub(super) struct CurvesView {
    /// The first [`CELLS_DRAWN`] cells with a reported epoch, in job order.
    pub cells: Vec<CellCurve>,
    /// Cells with reported epochs that are not drawn.
    pub more: usize,
}

#[derive(Serialize, Debug, PartialEq)]
pub(super) struct CellCurve {
    pub label: String,
    /// In-spec jobs of the cell.
    pub jobs: usize,
    pub points: Vec<CurvePoint>,
}

/// Test error in percent at one epoch over the seeds that reported it.
#[derive(Serialize, Debug, PartialEq)]
pub(super) struct CurvePoint {
    pub epoch: u32,
    pub median: f64,
    pub best: f64,
    pub worst: f64,
    pub seeds: usize,
}

pub(super) fn curves(rows: &[ResultRow], epochs: &[JobEpoch]) -> CurvesView {
    // One pass over the epochs and one index of cells: a 100,000-job sweep
    // must not cost jobs x epochs comparisons.
    let mut errors_of: HashMap<i64, Vec<(u32, f64)>> = HashMap::new();
    for e in epochs {
        errors_of.entry(e.job_id).or_default().push((e.metrics.epoch, e.metrics.test_error * 100.0));
    }
    let mut cells: Vec<(String, usize, BTreeMap<u32, Vec<f64>>)> = Vec::new();
    let mut cell_of: HashMap<String, usize> = HashMap::new();
    for row in rows.iter().filter(|r| r.in_spec) {
        let c = &row.config;
        let label = format!("{} depth {} k={} dropout {} {}", c.block, c.depth, c.width, c.dropout, c.dataset);
        // The seed is the only field a cell's jobs may differ in.
        let key = format!("{label} {:?}", c.recipe);
        let index = *cell_of.entry(key).or_insert_with(|| {
            cells.push((label, 0, BTreeMap::new()));
            cells.len() - 1
        });
        let cell = &mut cells[index];
        cell.1 += 1;
        for (epoch, error) in errors_of.remove(&row.job_id).unwrap_or_default() {
            cell.2.entry(epoch).or_default().push(error);
        }
    }
    let reported: Vec<_> = cells.into_iter().filter(|(_, _, by_epoch)| !by_epoch.is_empty()).collect();
    let more = reported.len().saturating_sub(CELLS_DRAWN);
    let cells = reported
        .into_iter()
        .take(CELLS_DRAWN)
        .map(|(label, jobs, by_epoch)| CellCurve {
            label,
            jobs,
            points: by_epoch
                .into_iter()
                .map(|(epoch, errors)| CurvePoint {
                    epoch,
                    median: median(&errors).unwrap_or(f64::NAN),
                    best: errors.iter().copied().fold(f64::INFINITY, f64::min),
                    worst: errors.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    seeds: errors.len(),
                })
                .collect(),
        })
        .collect();
    CurvesView { cells, more }
}
