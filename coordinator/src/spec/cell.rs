use serde::Serialize;
use sha2::{Digest, Sha256};
use widesweep_arch::{BlockPattern, CANDLE, ConfigError, Dataset, JobWork, Params, WrnConfig, widen};

use super::{DepthConvention, Recipe, Training};

/// One cell of a sweep: a network configuration and how it trains,
/// trained once per seed.
#[derive(Clone, Debug, PartialEq)]
pub struct CellConfig {
    pub block: BlockPattern,
    pub blocks_per_group: u32,
    /// Depth in the spec's convention: 3*N*l + 4 for conv-layers, the
    /// nominal depth for the paper's Table 2 convention.
    pub depth: u32,
    pub width: u32,
    pub dropout: f64,
    /// The dataset and recipe: the spec's, or the cell's values of its
    /// training axes written over them.
    pub training: Training,
}

impl CellConfig {
    pub fn wrn(&self, dataset: Dataset) -> Result<WrnConfig, ConfigError> {
        WrnConfig::new(
            self.block.clone(),
            widen(self.blocks_per_group),
            widen(self.width),
            self.dropout,
            dataset.in_channels(),
            dataset.num_classes(),
        )
    }

    /// Depth as convolution layers are counted (3*N*l + 4), whatever the
    /// spec's convention.
    pub fn conv_depth(&self) -> u32 {
        conv_layers(self.blocks_per_group, &self.block)
    }
}

/// 3 * N * l + 4 for N blocks per group of `block`. A spec's cells have
/// N <= MAX_BLOCKS_PER_GROUP and l <= MAX_CONVS_PER_BLOCK (at most 9604
/// layers), so the count always fits.
pub(super) fn conv_layers(blocks_per_group: u32, block: &BlockPattern) -> u32 {
    let layers = 3 * widen(blocks_per_group) * block.deepening() + 4;
    u32::try_from(layers).expect("a cell's depth fits u32: N <= 200 and l <= 16")
}

/// One job: a cell, a seed, and everything else that defines the run.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub cell: CellConfig,
    pub seed: u64,
    pub depth_convention: DepthConvention,
    /// Parameter count of the network (analytic, from the shared plan).
    pub params: u64,
    /// Forward multiply-accumulates per image.
    pub forward_macs: u64,
    /// The cost model's work of the whole run, in FLOP-equivalents
    /// ([`JobWork`]): what leasing orders by.
    pub work: f64,
    /// Hex SHA-256 of [`JobSpec::canonical_json`].
    pub cell_hash: String,
}

/// The hashed form. Keys are serialised in sorted order (serde_json's map
/// is a BTreeMap), so the hash does not depend on the order of fields in
/// the spec. `format` versions the canonical form itself. The engine and
/// the params are left out for candle's cells, which have none: a sweep
/// submitted before engines existed keeps its hashes.
#[derive(Serialize)]
struct Canonical<'a> {
    format: u32,
    block: String,
    blocks_per_group: u32,
    width: u32,
    dropout: f64,
    dataset: &'a str,
    seed: u64,
    recipe: &'a Recipe,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<&'a str>,
    #[serde(skip_serializing_if = "Params::is_empty")]
    params: &'a Params,
}

impl JobSpec {
    pub fn new(cell: CellConfig, seed: u64, depth_convention: DepthConvention) -> Result<Self, ConfigError> {
        let dataset = cell.training.dataset;
        let plan = cell.wrn(dataset)?.plan();
        let mut job = Self {
            params: plan.param_count(),
            forward_macs: plan.forward_macs(),
            work: JobWork::of(&plan, &cell.training.recipe, dataset).total(),
            cell,
            seed,
            depth_convention,
            cell_hash: String::new(),
        };
        job.cell_hash = hex::encode(Sha256::digest(job.canonical_json().as_bytes()));
        Ok(job)
    }

    /// The dataset the job trains on (its cell's).
    pub fn dataset(&self) -> Dataset {
        self.cell.training.dataset
    }

    /// The recipe the job trains by (its cell's).
    pub fn recipe(&self) -> &Recipe {
        &self.cell.training.recipe
    }

    /// Every hyperparameter that changes the training run, as JSON with
    /// sorted keys. The depth convention is not part of it: it only names
    /// the depth, while blocks_per_group fixes the network.
    pub fn canonical_json(&self) -> String {
        let canonical = Canonical {
            format: 1,
            block: self.cell.block.to_string(),
            blocks_per_group: self.cell.blocks_per_group,
            width: self.cell.width,
            dropout: self.cell.dropout,
            dataset: self.dataset().name(),
            seed: self.seed,
            recipe: self.recipe(),
            engine: Some(self.cell.training.engine.as_str()).filter(|engine| *engine != CANDLE),
            params: &self.cell.training.params,
        };
        let value = serde_json::to_value(&canonical).expect("canonical config serialises");
        serde_json::to_string(&value).expect("JSON value serialises")
    }
}
