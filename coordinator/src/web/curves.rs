//! Learning curves as the sweep page draws them: per cell (the jobs that
//! differ only in their seed), the test error of each epoch as the median
//! over the seeds that reported it, with the best and worst seed as its
//! band. Summarised here, so a page receives a few points per cell and
//! epoch however many seeds and jobs the sweep has.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::report::aggregate::median;
use crate::report::axis::{recipe_key, recipe_labels};
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
    // Cells that differ in their recipe (training axes) are labelled by
    // the fields that differ, as the tables' recipe axis is.
    let recipes: Vec<String> = rows.iter().filter(|r| r.in_spec).map(|r| recipe_key(&r.config.recipe)).collect();
    let labels = recipe_labels(&recipes);
    let mut cells: Vec<(String, usize, BTreeMap<u32, Vec<f64>>)> = Vec::new();
    let mut cell_of: HashMap<String, usize> = HashMap::new();
    for (row, recipe) in rows.iter().filter(|r| r.in_spec).zip(&recipes) {
        let c = &row.config;
        let mut label = format!("{} depth {} k={} dropout {} {}", c.block, c.depth, c.width, c.dropout, c.dataset);
        if labels.len() > 1 {
            label = format!("{label} {}", labels[recipe]);
        }
        // The seed is the only field a cell's jobs may differ in.
        let key = format!("{label} {recipe}");
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

#[cfg(test)]
mod tests {
    use widesweep_arch::{EpochMetrics, JobConfig, Recipe};

    use super::*;
    use crate::store::JobStatus;

    fn row(job_id: i64, lr: f64, seed: u64) -> ResultRow {
        ResultRow {
            job_id,
            sweep: "s".into(),
            cell_hash: format!("{job_id}"),
            config: JobConfig {
                block: "B(3,3)".parse().unwrap(),
                deepening: 2,
                blocks_per_group: 1,
                depth: 10,
                width: 1,
                dropout: 0.0,
                dataset: widesweep_arch::Dataset::Mnist,
                seed,
                recipe: Recipe { lr, ..Recipe::default() },
                engine: widesweep_arch::CANDLE.into(),
                params: Default::default(),
            },
            depth_convention: "conv-layers".into(),
            params: 1,
            forward_macs: 1,
            work: 1.0,
            in_spec: true,
            status: JobStatus::Succeeded,
            attempt: 1,
            epochs_done: 1,
            final_train_loss: None,
            final_train_error: None,
            final_test_loss: None,
            final_test_error: None,
            best_test_error: None,
            train_seconds: None,
            mean_epoch_seconds: None,
            recorded_seconds: 0.0,
            created_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            last_error: None,
            provenance: None,
        }
    }

    fn epoch(job_id: i64, test_error: f64) -> JobEpoch {
        let metrics = EpochMetrics {
            epoch: 1,
            train_loss: 1.0,
            train_error: 0.5,
            test_loss: 1.0,
            test_error,
            lr: 0.1,
            epoch_seconds: 1.0,
            images_per_second: 1.0,
        };
        JobEpoch { job_id, metrics }
    }

    #[test]
    fn cells_that_differ_in_their_recipe_are_told_apart_by_it() {
        let rows = [row(1, 0.05, 1), row(2, 0.05, 2), row(3, 0.1, 1)];
        let epochs = [epoch(1, 0.2), epoch(2, 0.3), epoch(3, 0.4)];
        let view = curves(&rows, &epochs);
        let labels: Vec<&str> = view.cells.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            ["B(3,3) depth 10 k=1 dropout 0 mnist lr=0.05", "B(3,3) depth 10 k=1 dropout 0 mnist lr=0.1"]
        );
        assert_eq!(view.cells[0].points[0].seeds, 2);
        // One recipe: no recipe in the labels.
        let view = curves(&rows[..2], &epochs[..2]);
        assert_eq!(view.cells[0].label, "B(3,3) depth 10 k=1 dropout 0 mnist");
    }
}
