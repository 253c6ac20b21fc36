//! The Wide Residual Network family (Zagoruyko & Komodakis, "Wide Residual
//! Networks", BMVC 2016, arXiv:1605.07146) described as plain data.
//!
//! - [`BlockPattern`]: the kernel sizes of the convolutions in one block, B(3,3), B(1,3,1), ...
//! - [`Dataset`]: the datasets widesweep trains on, with their input channels and classes.
//! - [`WrnConfig`]: one network of the family, validated once in [`WrnConfig::new`].
//! - [`NetworkPlan`]: every layer of that network with its shapes, from which parameter
//!   counts, multiply-accumulates and activation sizes are derived.
//!
//! The key design choice: the architecture is defined once, here, with no
//! dependency on a tensor library. The coordinator reads the plan to report
//! parameter counts and costs without linking candle; the worker walks the
//! same plan to instantiate its candle model. Both consumers therefore agree
//! by construction, and a test on each side checks the exact counts of the
//! paper's reference table.

mod block;
mod config;
mod dataset;
mod plan;

pub use block::{BlockPattern, ParseBlockError};
pub use config::{ConfigError, MAX_BLOCKS_PER_GROUP, MAX_WIDTH, WrnConfig};
pub use dataset::{Dataset, ParseDatasetError};
pub use plan::{BlockPlan, ConvSpec, GroupPlan, HeadSpec, NetworkPlan};

/// Side length of the square images every network sees. Greyscale 28x28
/// datasets are zero-padded to this size so that the three groups run at
/// 32x32, 16x16 and 8x8 exactly as on CIFAR.
pub const IMAGE_SIZE: usize = 32;

/// Base channel count of the stem convolution and of group 1 before widening.
pub const BASE_WIDTH: usize = 16;
