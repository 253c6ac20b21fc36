//! The widesweep training engine: Wide Residual Networks (Zagoruyko &
//! Komodakis, BMVC 2016, arXiv:1605.07146) trained with candle on CUDA or the CPU.
//!
//! - [`agent`]: the lease loop of `widesweep work`: slots, reports, checkpoints.
//! - [`wrn`]: the model, built from the `widesweep-arch` plan.
//! - [`kernels`]: the CPU's convolution and batch-norm kernels with their backward passes.
//! - [`data`]: dataset readers, download/import, normalisation and augmentation.
//! - [`train`]: the recipe, the optimizer, the training loop and checkpoints.
//! - [`rng`]: the seeded streams behind every random number.
//! - [`device`]: parsing `cpu` / `cuda:N`.
//! - [`selfcheck`]: a slot's kernels against the CPU reference before they train.
//!
//! The key design choice: nothing random comes from candle. candle's CPU
//! generator cannot be seeded, so initial weights, data order, augmentation
//! and dropout masks are drawn from ChaCha streams keyed by (seed, epoch,
//! step); with candle's deterministic CPU kernels that makes a run, and a run
//! resumed from a checkpoint, bit-identical on the CPU.

/// The tensor library, re-exported so that callers use the same version.
pub use candle_core as candle;

pub mod agent;
pub mod data;
pub mod device;
pub mod kernels;
pub mod rng;
pub mod selfcheck;
pub mod train;
pub mod wrn;
