//! Training: the paper's recipe (Zagoruyko & Komodakis, BMVC 2016, section 4),
//! the loop, and checkpoints.
//!
//! - [`Recipe`]: epochs, batch, learning-rate schedule, SGD settings; the
//!   type and its validation live in `widesweep-arch`, shared with the
//!   coordinator, so a recipe it accepts is one this worker accepts.
//! - [`optimizer`]: SGD with Nesterov momentum and weight decay.
//! - [`trainer`]: one run: epochs, metrics, evaluation, an observer per epoch.
//! - [`checkpoint`]: the whole training state in one safetensors file.
//! - [`bench`]: steady-state training throughput on synthetic data.

pub mod bench;
pub mod checkpoint;
pub mod optimizer;
pub mod trainer;

pub use checkpoint::CheckpointError;
pub use trainer::{EpochMetrics, EpochObserver, RunSpec, Trainer};
pub use widesweep_arch::{Recipe, RecipeError};

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("the training set has {images} images, fewer than one batch of {batch}")]
    TooFewImages { images: usize, batch: usize },
    #[error("{dataset} images have {found} channels but the network takes {expected}")]
    Channels { dataset: String, found: usize, expected: usize },
    #[error("the loss diverged to {loss} in epoch {epoch}")]
    Diverged { epoch: usize, loss: f64 },
    #[error("aborted in epoch {epoch} at step {step}")]
    Aborted { epoch: usize, step: usize },
    #[error("tensor computation failed")]
    Candle(#[from] candle_core::Error),
}
