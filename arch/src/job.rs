//! One job's training, as the coordinator stores it and a worker receives
//! it: the network, the dataset, the seed and the recipe. One definition
//! for both sides; its one wire conversion is in widesweep-proto.

use crate::{BlockPattern, CANDLE, ConfigError, Dataset, Params, Recipe, WrnConfig, widen};

/// What a worker needs to train a job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobConfig {
    pub block: BlockPattern,
    /// Convolutions per block, l (the block's; kept for tables and SQL).
    pub deepening: u32,
    pub blocks_per_group: u32,
    /// Depth as the spec counted it (conv-layers or nominal).
    pub depth: u32,
    pub width: u32,
    pub dropout: f64,
    pub dataset: Dataset,
    pub seed: u64,
    pub recipe: Recipe,
    /// [`CANDLE`], or the name of a command engine the sweep defines.
    pub engine: String,
    /// The free-form parameters of a command engine's cell.
    pub params: Params,
}

impl JobConfig {
    /// The network, validated ([`WrnConfig::new`]) for the job's dataset.
    pub fn wrn(&self) -> Result<WrnConfig, ConfigError> {
        WrnConfig::new(
            self.block.clone(),
            widen(self.blocks_per_group),
            widen(self.width),
            self.dropout,
            self.dataset.in_channels(),
            self.dataset.num_classes(),
        )
    }

    /// Whether the worker trains the job itself (else a command does).
    pub fn is_candle(&self) -> bool {
        self.engine == CANDLE
    }

    /// `WRN-16-4 B(3,3) seed 1`, with the dropout when there is some, and
    /// the engine and its parameters when a command trains it.
    pub fn label(&self) -> String {
        let dropout = if self.dropout > 0.0 { format!(" dropout {}", self.dropout) } else { String::new() };
        let mut label = format!("WRN-{}-{} {}{dropout} seed {}", self.depth, self.width, self.block, self.seed);
        if !self.is_candle() {
            label.push_str(&format!(" [{}]", self.engine));
        }
        for (name, value) in &self.params {
            label.push_str(&format!(" {name}={value}"));
        }
        label
    }
}
