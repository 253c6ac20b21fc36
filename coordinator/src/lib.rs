//! The widesweep coordinator: turns sweep specs into a durable queue of
//! training jobs and serves it to workers over gRPC.
//!
//! - [`spec`]: parse, validate and expand sweep specs (TOML) into cells and jobs.
//! - [`plan`]: the `widesweep plan` report: cells with parameter counts and costs.
//! - [`store`]: the job queue on SQLite or PostgreSQL, with leases and fencing.
//! - [`service`]: the gRPC `SweepService` and `WorkerService`, auth, checkpoint storage, the reaper.
//! - [`report`]: tables, exports, plots and read-only SQL over a sweep's results.
//! - [`loadgen`]: simulated workers that measure the coordinator's throughput.
//!
//! The coordinator never links candle: parameter counts come from the
//! shared architecture plan in `widesweep-arch`.

pub mod loadgen;
pub mod plan;
pub mod report;
pub mod schedule;
pub mod service;
pub mod spec;
pub mod store;
pub mod web;
