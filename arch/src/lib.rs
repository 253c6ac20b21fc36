//! The Wide Residual Network family (Zagoruyko & Komodakis, "Wide Residual
//! Networks", BMVC 2016, arXiv:1605.07146) described as plain data.
//!
//! - [`BlockPattern`]: the kernel sizes of the convolutions in one block, B(3,3), B(1,3,1), ...
//! - [`Dataset`]: the datasets widesweep trains on, with their input channels and classes.
//! - [`JobConfig`]: one job's network, dataset, seed, recipe and engine, as stored and as trained.
//! - [`CommandEngine`], [`Params`]: a lab's own training command and the free-form axes it takes.
//! - [`EpochMetrics`]: one epoch's numbers, from the trainer to the reports.
//! - [`Precision`]: the arithmetic a network trains in (f32, or bf16 mixed precision).
//! - [`Recipe`]: how a network is trained (epochs, batch, schedule, SGD), with
//!   the one validation the coordinator and the worker both apply.
//! - [`WrnConfig`]: one network of the family, validated once in [`WrnConfig::new`].
//! - [`JobWork`]: the cost model, a job's work in FLOP-equivalents from its plan and recipe.
//! - [`NetworkPlan`]: every layer of that network with its shapes, from which parameter
//!   counts, multiply-accumulates and activation sizes are derived.
//!
//! The key design choice: the architecture is defined once, here, with no
//! dependency on a tensor library. The coordinator reads the plan to report
//! parameter counts and costs without linking candle; the worker walks the
//! same plan to instantiate its candle model. Both consumers therefore agree
//! by construction, and a test on each side checks the exact counts of the
//! paper's reference table.

/// serde for a type as its text form, the one specs, the CLI and the
/// database use: `Display` out, `FromStr` in (a bad value's error is the
/// parse error, which says what would be valid).
macro_rules! serde_as_text {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_as_text;

mod block;
mod config;
mod cost;
mod dataset;
mod engine;
mod job;
mod metrics;
mod plan;
mod precision;
mod recipe;

pub use block::{BlockPattern, MAX_CONVS_PER_BLOCK, ParseBlockError};
pub use config::{ConfigError, MAX_BLOCKS_PER_GROUP, MAX_WIDTH, WrnConfig};
pub use cost::{JobWork, MEMORY_FLOPS_PER_ELEMENT};
pub use dataset::{Dataset, ParseDatasetError};
pub use engine::{CANDLE, CommandEngine, DEFAULT_GRACE_SECONDS, DEFAULT_HEARTBEAT_SECONDS, ParamValue, Params};
pub use job::JobConfig;
pub use metrics::{EpochMetrics, MAX_EPOCH_SECONDS, MAX_IMAGES_PER_SECOND, MAX_LR, MetricsError};
pub use plan::{BlockPlan, ConvSpec, GroupPlan, HeadSpec, NetworkPlan};
pub use precision::{ParsePrecisionError, Precision};
pub use recipe::{
    DEFAULT_BN_RECALIBRATION_BATCHES, MAX_BATCH_SIZE, MAX_BN_RECALIBRATION_BATCHES, MAX_EPOCHS, MIN_BATCH_SIZE, Recipe,
    RecipeError, SHORT_RECIPE_EPOCHS, WrittenRecipe,
};

/// Side length of the square images every network sees. Greyscale 28x28
/// datasets are zero-padded to this size so that the three groups run at
/// 32x32, 16x16 and 8x8 exactly as on CIFAR.
pub const IMAGE_SIZE: usize = 32;

/// Base channel count of the stem convolution and of group 1 before widening.
pub const BASE_WIDTH: usize = 16;

/// A `u32` (as specs, the database and the gRPC messages carry counts) as a
/// `usize` (as the trainer indexes): lossless, because widesweep builds only
/// for targets whose `usize` has at least 32 bits (checked at compile time
/// below). Use this rather than a bare `as`, which would also compile for a
/// narrowing.
pub const fn widen(n: u32) -> usize {
    n as usize
}

const _: () = assert!(usize::BITS >= u32::BITS, "widesweep needs a usize of at least 32 bits");
