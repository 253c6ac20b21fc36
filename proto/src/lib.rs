//! The widesweep gRPC API, package `widesweep.v1`.
//!
//! - `SweepService`: what users and the CLI call (submit, inspect, steer sweeps).
//! - `WorkerService`: what worker slots call (register, lease, report, complete).
//!
//! The `.proto` files under `widesweep/v1/` are the source of truth and
//! document every field. These generated types stop at the gRPC layer: the
//! coordinator and the worker convert them to their own domain types, and
//! the recipe, which both share (widesweep-arch), converts here, once.

pub mod v1 {
    tonic::include_proto!("widesweep.v1");
}

/// Hex SHA-256 of `widesweep/v1/sweep.proto` then `widesweep/v1/worker.proto`,
/// as this build compiled them (`GetVersion` serves it).
pub const PROTO_SHA256: &str = env!("WIDESWEEP_PROTO_SHA256");

pub mod client;
pub use job::CellConfigError;
mod job;
mod metrics;
mod recipe;
