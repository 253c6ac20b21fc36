//! The widesweep coordinator: turns sweep specs into a durable queue of
//! training jobs and serves it to workers over gRPC.
//!
//! - [`spec`]: parse, validate and expand sweep specs (TOML) into cells and jobs.
//! - [`plan`]: the `widesweep plan` report: cells with parameter counts and costs.
//! - [`store`]: the job queue on SQLite or PostgreSQL, with leases and fencing, by
//!   concern (submission, leases, checkpoints, reads).
//! - [`stats`]: confidence intervals and significance tests, below both the store
//!   (adaptive seeds) and the reports.
//! - [`service`]: the gRPC `SweepService` and `WorkerService`, auth, checkpoint storage, the reaper.
//! - [`report`]: tables, exports, plots and read-only SQL over a sweep's results.
//! - [`web`]: the read-only dashboard (HTML, JSON, live updates).
//! - [`cpu`]: the bounded pool that CPU-heavy handlers run on, off the async runtime.
//! - [`net`]: connection limits and idle timeouts on both ports.
//! - [`bench`]: tools that measure the coordinator (simulated workers, makespans).
//!
//! The coordinator never links candle: parameter counts come from the
//! shared architecture plan in `widesweep-arch`.

pub mod bench;
pub mod cpu;
pub mod net;
pub mod plan;
pub mod report;
pub mod service;
pub mod spec;
pub mod stats;
pub mod store;
pub mod web;
