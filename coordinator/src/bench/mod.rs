//! Benchmark tools that measure the coordinator rather than serve it
//! (`widesweep bench coordinator`, `bench schedule`, `bench dashboard`).
//!
//! - [`loadgen`]: simulated workers that measure the coordinator's throughput.
//! - [`schedule`]: the makespan of a sweep on simulated devices, in the
//!   store's own lease order.

pub mod loadgen;
pub mod schedule;
