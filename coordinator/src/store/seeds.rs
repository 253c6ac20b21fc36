//! Adaptive seeds: which reserve jobs a sweep's cells need next.
//!
//! A cell's jobs differ only in their seed. Once none of its jobs is
//! pending or running, the cell is decided when at least two seeds
//! succeeded and the 95 % t-interval of their mean final test error is no
//! wider than the sweep's target (in percentage points); an undecided cell
//! gets its lowest reserve seed. One seed at a time: each new result
//! narrows the interval, and the cell is judged again when it arrives.
//!
//! The decision is a pure function of the rows, so the store only has to
//! read them under the sweep's lock and apply the answer.

use std::collections::BTreeMap;

use super::{JobStatus, Result, StoreError};
use crate::stats::{LEVEL, mean_interval};

/// What the decision needs of one job of an adaptive sweep (in the spec or
/// in reserve).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SeedRow {
    pub id: i64,
    pub seed: i64,
    pub status: JobStatus,
    pub reserve: bool,
    /// Final test error as a fraction, for succeeded jobs.
    pub final_test_error: Option<f64>,
    /// The job's canonical configuration: the cell is this without its seed.
    pub config_json: String,
}

/// The reserve jobs to add, one for each finished cell whose interval is
/// still wider than `target_ci` percentage points, in cell order.
pub(super) fn reserve_jobs_to_add(rows: Vec<SeedRow>, target_ci: f64) -> Result<Vec<i64>> {
    let mut cells: BTreeMap<String, Vec<SeedRow>> = BTreeMap::new();
    for row in rows {
        cells.entry(cell_key(&row.config_json)?).or_default().push(row);
    }
    let mut add = Vec::new();
    for jobs in cells.values() {
        let (reserve, active): (Vec<&SeedRow>, Vec<&SeedRow>) = jobs.iter().partition(|job| job.reserve);
        let Some(next) = reserve.iter().min_by_key(|job| job.seed) else { continue };
        if active.iter().any(|job| matches!(job.status, JobStatus::Pending | JobStatus::Running)) {
            continue;
        }
        if !decided(&active, target_ci) {
            add.push(next.id);
        }
    }
    Ok(add)
}

/// Whether the finished jobs of a cell pin its mean test error to within
/// +-`target_ci` percentage points at 95 %.
fn decided(jobs: &[&SeedRow], target_ci: f64) -> bool {
    let errors: Vec<f64> = jobs
        .iter()
        .filter(|job| job.status == JobStatus::Succeeded)
        .filter_map(|job| job.final_test_error.map(|e| e * 100.0))
        .collect();
    mean_interval(&errors, LEVEL).is_some_and(|interval| interval.half_width() <= target_ci)
}

/// A job's configuration without its seed: the same for every job of a
/// cell. The stored JSON has sorted keys, so equal cells give equal text.
fn cell_key(config_json: &str) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(config_json)
        .map_err(|e| StoreError::Corrupt(format!("config_json {config_json:?}: {e}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| StoreError::Corrupt(format!("config_json {config_json:?} is not an object")))?;
    object.remove("seed");
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, cell: &str, seed: i64, status: JobStatus, reserve: bool, error: Option<f64>) -> SeedRow {
        SeedRow {
            id,
            seed,
            status,
            reserve,
            final_test_error: error,
            config_json: format!(r#"{{"block":"{cell}","seed":{seed}}}"#),
        }
    }

    use JobStatus::{Failed, Pending, Running, Succeeded};

    #[test]
    fn a_finished_cell_wider_than_the_target_gets_its_lowest_reserve_seed() {
        // 10 %, 11 %, 12 %: mean 11, half-width t(0.975, 2) * 1 / sqrt(3) = 2.484 pp.
        let rows = vec![
            job(1, "a", 1, Succeeded, false, Some(0.10)),
            job(2, "a", 2, Succeeded, false, Some(0.11)),
            job(3, "a", 3, Succeeded, false, Some(0.12)),
            job(5, "a", 5, Pending, true, None),
            job(4, "a", 4, Pending, true, None),
        ];
        assert_eq!(reserve_jobs_to_add(rows.clone(), 2.0).unwrap(), vec![4]);
        assert_eq!(reserve_jobs_to_add(rows, 2.5).unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn a_cell_waits_for_its_running_jobs_and_needs_two_successes() {
        let running = vec![
            job(1, "a", 1, Succeeded, false, Some(0.10)),
            job(2, "a", 2, Running, false, None),
            job(3, "a", 3, Pending, true, None),
        ];
        assert!(reserve_jobs_to_add(running, 0.1).unwrap().is_empty());
        // One success and one failure: no interval yet, so the next seed runs.
        let failed = vec![
            job(1, "a", 1, Succeeded, false, Some(0.10)),
            job(2, "a", 2, Failed, false, None),
            job(3, "a", 3, Pending, true, None),
        ];
        assert_eq!(reserve_jobs_to_add(failed, 100.0).unwrap(), vec![3]);
    }

    #[test]
    fn cells_are_judged_apart_and_a_cell_without_reserve_is_left_alone() {
        let rows = vec![
            job(1, "a", 1, Succeeded, false, Some(0.10)),
            job(2, "a", 2, Succeeded, false, Some(0.30)),
            job(3, "b", 1, Succeeded, false, Some(0.20)),
            job(4, "b", 2, Succeeded, false, Some(0.20)),
            job(5, "b", 3, Pending, true, None),
            job(6, "c", 1, Succeeded, false, Some(0.10)),
            job(7, "c", 2, Succeeded, false, Some(0.90)),
        ];
        // a has no reserve left; b is decided (both seeds agree); c has none either.
        assert!(reserve_jobs_to_add(rows, 0.5).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_configuration_is_an_error() {
        let mut row = job(1, "a", 1, Succeeded, false, Some(0.1));
        row.config_json = "not json".to_string();
        assert!(matches!(reserve_jobs_to_add(vec![row], 1.0), Err(StoreError::Corrupt(_))));
    }
}
