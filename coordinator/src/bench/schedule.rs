//! The makespan of a sweep on simulated devices: how long `devices` workers
//! take to run every job when each idle worker leases the next job, with
//! each job's duration its cost-model work at one device rate.
//!
//! All jobs are pending from the start and a lease order does not depend
//! on the time it is asked at, so the workers' leases follow one fixed
//! order and the simulation is greedy list scheduling in that order. The
//! order is either the store's own ([`lease_order`], longest first within
//! a sweep) or the jobs' ids (the order before longest-first leasing).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::store::{LeaseToken, Result, Store};

/// Seconds until `devices` workers, each taking the next job of `order`
/// whenever it is idle, have run every job.
pub fn makespan(order: &[f64], devices: usize) -> f64 {
    assert!(devices > 0, "at least one device");
    // The earliest-free device first; equal times by device number.
    let mut free: BinaryHeap<Reverse<(OrderedSeconds, usize)>> =
        (0..devices).map(|d| Reverse((OrderedSeconds(0.0), d))).collect();
    let mut end: f64 = 0.0;
    for &seconds in order {
        let Reverse((OrderedSeconds(at), device)) = free.pop().expect("devices > 0");
        let done = at + seconds;
        end = end.max(done);
        free.push(Reverse((OrderedSeconds(done), device)));
    }
    end
}

/// No schedule on `devices` devices ends sooner than this: the devices
/// cannot share out more than all the work, and the longest job runs on one.
pub fn lower_bound(durations: &[f64], devices: usize) -> f64 {
    let total: f64 = durations.iter().sum();
    let longest = durations.iter().copied().fold(0.0, f64::max);
    (total / devices as f64).max(longest)
}

/// Seconds ordered as numbers (`f64::total_cmp`), for the heap.
#[derive(Clone, Copy, Debug)]
struct OrderedSeconds(f64);

impl PartialEq for OrderedSeconds {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for OrderedSeconds {}

impl PartialOrd for OrderedSeconds {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedSeconds {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Every pending job of the store in the order workers lease them, as
/// (job id, cost-model work). Leases them all: for a throwaway database.
pub async fn lease_order(store: &dyn Store) -> Result<Vec<(i64, f64)>> {
    let worker = store.register_worker("simulation", &[], "schedule", 0).await?;
    let mut order = Vec::new();
    while let Some(job) = store.lease_job(worker, "simulated", LeaseToken::generate().digest(), i64::MAX / 4, 0).await?
    {
        order.push(job.job_id);
    }
    let mut work = std::collections::HashMap::new();
    for sweep in store.list_sweeps().await? {
        for row in store.sweep_results(&sweep.name).await? {
            work.insert(row.job_id, row.work);
        }
    }
    Ok(order.into_iter().map(|id| (id, work[&id])).collect())
}

/// Makespans of one set of jobs on `devices` devices.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MakespanReport {
    pub jobs: usize,
    pub devices: usize,
    /// Hours when jobs are leased in id order.
    pub id_order_hours: f64,
    /// Hours when jobs are leased as the store leases them.
    pub store_order_hours: f64,
    /// max(total work / devices, longest job), in hours.
    pub lower_bound_hours: f64,
}

impl MakespanReport {
    /// `order` is the store's lease order as (job id, work); `rate` turns
    /// work into seconds.
    pub fn new(order: &[(i64, f64)], devices: usize, rate: f64) -> Self {
        let store_order: Vec<f64> = order.iter().map(|(_, work)| work / rate).collect();
        let mut by_id = order.to_vec();
        by_id.sort_by_key(|(id, _)| *id);
        let id_order: Vec<f64> = by_id.iter().map(|(_, work)| work / rate).collect();
        let hours = |seconds: f64| seconds / 3600.0;
        Self {
            jobs: order.len(),
            devices,
            id_order_hours: hours(makespan(&id_order, devices)),
            store_order_hours: hours(makespan(&store_order, devices)),
            lower_bound_hours: hours(lower_bound(&store_order, devices)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_scheduling_gives_each_job_to_the_first_idle_device() {
        // Two devices: 1 and 1 start at 0, 4 starts at 1 (ends 5), 1 at 1.
        assert_eq!(makespan(&[1.0, 1.0, 4.0, 1.0], 2), 5.0);
        // Longest first: 4 | 1 1 1 -> 4.
        assert_eq!(makespan(&[4.0, 1.0, 1.0, 1.0], 2), 4.0);
        assert_eq!(lower_bound(&[1.0, 1.0, 4.0, 1.0], 2), 4.0);
        assert_eq!(lower_bound(&[3.0, 3.0, 3.0, 3.0], 2), 6.0);
        assert_eq!(makespan(&[], 3), 0.0);
    }

    #[test]
    fn the_report_compares_id_order_with_the_store_order() {
        // The store leased 3 (longest) first; by id the long job comes last.
        let order = [(3, 4.0 * 3600.0), (1, 3600.0), (2, 3600.0)];
        let report = MakespanReport::new(&order, 2, 1.0);
        assert_eq!(report.store_order_hours, 4.0);
        assert_eq!(report.id_order_hours, 5.0);
        assert_eq!(report.lower_bound_hours, 4.0);
    }
}
