use crate::{BlockPattern, Dataset, NetworkPlan};

/// One Wide Residual Network: block pattern, N blocks per group, width k,
/// dropout between convolutions, and the input/output of its dataset.
#[derive(Clone, PartialEq, Debug)]
pub struct WrnConfig {
    pub block: BlockPattern,
    pub blocks_per_group: usize,
    pub width: usize,
    pub dropout: f64,
    pub in_channels: usize,
    pub num_classes: usize,
}

/// Widest network accepted; k = 64 is already ~1.5 billion parameters at WRN-28.
pub const MAX_WIDTH: usize = 64;
/// Most blocks per group accepted (WRN-1000 territory for B(3,3)).
pub const MAX_BLOCKS_PER_GROUP: usize = 200;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("width k = {0} is invalid: use an integer from 1 to {MAX_WIDTH}")]
    Width(usize),
    #[error("blocks_per_group = {0} is invalid: use an integer from 1 to {MAX_BLOCKS_PER_GROUP}")]
    BlocksPerGroup(usize),
    #[error("dropout = {0} is invalid: use a probability in [0, 1)")]
    Dropout(f64),
    #[error(
        "depth {depth} does not divide into whole {block} blocks (depth = 3 * N * {l} + 4); nearest valid depths: {below}, {above}"
    )]
    Depth { depth: usize, block: BlockPattern, l: usize, below: String, above: usize },
    #[error("in_channels = {0} and num_classes = {1} must both be at least 1")]
    Io(usize, usize),
}

impl WrnConfig {
    /// Validates every field once; a constructed config always has a plan.
    pub fn new(
        block: BlockPattern,
        blocks_per_group: usize,
        width: usize,
        dropout: f64,
        in_channels: usize,
        num_classes: usize,
    ) -> Result<Self, ConfigError> {
        if width == 0 || width > MAX_WIDTH {
            return Err(ConfigError::Width(width));
        }
        if blocks_per_group == 0 || blocks_per_group > MAX_BLOCKS_PER_GROUP {
            return Err(ConfigError::BlocksPerGroup(blocks_per_group));
        }
        if !(0.0..1.0).contains(&dropout) || dropout.is_nan() {
            return Err(ConfigError::Dropout(dropout));
        }
        if in_channels == 0 || num_classes == 0 {
            return Err(ConfigError::Io(in_channels, num_classes));
        }
        Ok(Self { block, blocks_per_group, width, dropout, in_channels, num_classes })
    }

    /// WRN-depth-k with basic B(3,3) blocks for `dataset`, no dropout: the
    /// networks of the paper's tables 4 to 6.
    pub fn wrn(depth: usize, width: usize, dataset: Dataset) -> Result<Self, ConfigError> {
        let block = BlockPattern::basic();
        let n = Self::blocks_for_depth(depth, &block)?;
        Self::new(block, n, width, 0.0, dataset.in_channels(), dataset.num_classes())
    }

    pub fn wrn_16_4(dataset: Dataset) -> Self {
        Self::wrn(16, 4, dataset).expect("WRN-16-4 is a valid config")
    }

    pub fn wrn_28_10(dataset: Dataset) -> Self {
        Self::wrn(28, 10, dataset).expect("WRN-28-10 is a valid config")
    }

    /// Blocks per group N for a network of `depth` conv layers made of
    /// `block`: depth = 3 * N * l + 4. When depth does not divide exactly the
    /// error names the nearest valid depths.
    pub fn blocks_for_depth(depth: usize, block: &BlockPattern) -> Result<usize, ConfigError> {
        let per_block = 3 * block.deepening();
        if depth > 4 && (depth - 4).is_multiple_of(per_block) {
            return Ok((depth - 4) / per_block);
        }
        let n_below = depth.saturating_sub(4) / per_block;
        let below = if n_below >= 1 { (n_below * per_block + 4).to_string() } else { "none".to_string() };
        let above = (n_below + 1) * per_block + 4;
        Err(ConfigError::Depth { depth, block: block.clone(), l: block.deepening(), below, above })
    }

    /// The paper's depth convention: 3 * N * l + 4 (the stem convolution, the
    /// block convolutions, and three for the shortcut projections and the
    /// classifier as the paper counts them).
    pub fn depth(&self) -> usize {
        3 * self.blocks_per_group * self.block.deepening() + 4
    }

    /// Channels of the three groups: 16k, 32k, 64k.
    pub fn group_widths(&self) -> [usize; 3] {
        [16 * self.width, 32 * self.width, 64 * self.width]
    }

    /// "WRN-28-10 B(3,3)" style name for logs and tables.
    pub fn name(&self) -> String {
        format!("WRN-{}-{} {}", self.depth(), self.width, self.block)
    }

    pub fn plan(&self) -> NetworkPlan {
        NetworkPlan::of(self)
    }
}
