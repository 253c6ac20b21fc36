//! The whole state of a run in one safetensors file: weights, BN running
//! statistics, SGD momentum buffers, and in the metadata the cell (config,
//! dataset, seed, recipe), the epochs done, the metrics so far and the RNG
//! position. The RNG needs no tensor: every stream is keyed by (seed, epoch,
//! step), so the epoch counter is its whole state.
//!
//! Tensor keys: `model.<name>` for every model tensor (names mirror the
//! module tree, e.g. `model.group1.block0.conv0.weight`) and
//! `momentum.<name>` for each parameter's momentum buffer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::Recipe;
use super::optimizer::Sgd;
use super::trainer::{EpochMetrics, RunSpec};
use crate::wrn::Wrn;

pub const FORMAT: &str = "widesweep-checkpoint";
pub const FORMAT_VERSION: u32 = 1;
/// How the RNG position is recorded; bump if the stream keys ever change.
pub const RNG_SCHEME: &str =
    "chacha8 streams keyed by (seed, epoch, step, purpose); dropout masks splitmix64(layer key, index)";

/// What to tell a user resuming a checkpoint whose random draws were made
/// another way (`found`, the checkpoint's scheme; `None` in files that
/// predate the field): the run goes on, with this version's draws, so it
/// is not the run an uninterrupted job of that version would have been.
/// Only dropout's masks changed so far, so runs without dropout resume
/// exactly.
pub fn rng_scheme_note(found: Option<&str>, dropout: f64) -> Option<String> {
    if found == Some(RNG_SCHEME) || dropout == 0.0 {
        return None;
    }
    Some(format!(
        "the checkpoint's dropout masks were drawn by an older scheme ({}); the run continues with this version's \
         masks, so from here on it is not bit-identical to an uninterrupted run of the version that wrote it",
        found.unwrap_or("not recorded")
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write checkpoint {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("checkpoint {path} is corrupt or not a safetensors file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path} is not a widesweep checkpoint: {message}")]
    NotACheckpoint { path: PathBuf, message: String },
    #[error("checkpoint {path} has format version {found}; this build reads version {FORMAT_VERSION}")]
    Version { path: PathBuf, found: String },
    #[error("checkpoint {path} belongs to another cell: its {field} is {found}, this run's is {expected}")]
    Mismatch { path: PathBuf, field: &'static str, found: String, expected: String },
}

/// The cell a checkpoint was written for, as stored in its metadata.
///
/// Checkpoints written before the recipe was shared with the coordinator
/// hold a recipe without `train_subset`, `test_subset` and
/// `checkpoint_every`: those read back as their defaults (serde), and the
/// subset that run trained on is the record's own `train_subset`, which is
/// therefore still written and is what a resume compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CellRecord {
    network: String,
    block: String,
    blocks_per_group: usize,
    width: usize,
    dropout: f64,
    in_channels: usize,
    num_classes: usize,
    dataset: String,
    seed: u64,
    train_subset: Option<usize>,
    recipe: Recipe,
}

impl CellRecord {
    fn of(spec: &RunSpec) -> Self {
        let c = &spec.config;
        Self {
            network: c.name(),
            block: c.block.to_string(),
            blocks_per_group: c.blocks_per_group,
            width: c.width,
            dropout: c.dropout,
            in_channels: c.in_channels,
            num_classes: c.num_classes,
            dataset: spec.dataset.to_string(),
            seed: spec.seed,
            train_subset: spec.recipe.train_subset_len(),
            recipe: spec.recipe.clone(),
        }
    }

    fn architecture(&self) -> String {
        format!(
            "{} (N = {}, dropout {}, {} input channels, {} classes)",
            self.network, self.blocks_per_group, self.dropout, self.in_channels, self.num_classes
        )
    }

    /// The first field in which `self` (the checkpoint's) differs from
    /// `run` (this run's). The number of epochs may differ: a run can be
    /// extended. The recipe's subsets and checkpoint period are not
    /// compared there: the training subset is compared as the record's
    /// `train_subset` (the only place older checkpoints have it), and the
    /// test subset and the checkpoint period do not change the training.
    fn first_difference(&self, run: &CellRecord) -> Option<(&'static str, String, String)> {
        if self.architecture() != run.architecture() {
            return Some(("architecture", self.architecture(), run.architecture()));
        }
        let pairs: [(&'static str, String, String); 3] = [
            ("dataset", self.dataset.clone(), run.dataset.clone()),
            ("seed", self.seed.to_string(), run.seed.to_string()),
            ("train_subset", format!("{:?}", self.train_subset), format!("{:?}", run.train_subset)),
        ];
        if let Some(diff) = pairs.into_iter().find(|(_, a, b)| a != b) {
            return Some(diff);
        }
        let comparable = Recipe {
            epochs: run.recipe.epochs,
            train_subset: run.recipe.train_subset,
            test_subset: run.recipe.test_subset,
            checkpoint_every: run.recipe.checkpoint_every,
            ..self.recipe.clone()
        };
        (comparable != run.recipe).then(|| {
            let json = |r: &Recipe| serde_json::to_string(r).unwrap_or_default();
            ("recipe", json(&self.recipe), json(&run.recipe))
        })
    }
}

/// The non-tensor part of a run's state.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointState {
    pub epochs_done: usize,
    pub history: Vec<EpochMetrics>,
}

fn model_key(name: &str) -> String {
    format!("model.{name}")
}

fn momentum_key(name: &str) -> String {
    format!("momentum.{name}")
}

/// Writes the state atomically (a temporary file renamed over `path`), so a
/// crash mid-write never leaves a truncated checkpoint behind.
pub fn save(
    path: &Path,
    spec: &RunSpec,
    model: &Wrn,
    optimizer: &Sgd,
    state: &CheckpointState,
) -> Result<(), CheckpointError> {
    let write_err = |message: String| CheckpointError::Write { path: path.into(), message };
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in model.store().all() {
        tensors
            .push((model_key(&name), var.as_tensor().to_device(&Device::Cpu).map_err(|e| write_err(e.to_string()))?));
    }
    for (name, buffer) in optimizer.momentum_buffers() {
        tensors.push((momentum_key(name), buffer.to_device(&Device::Cpu).map_err(|e| write_err(e.to_string()))?));
    }
    let metadata: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("cell", json(&CellRecord::of(spec))),
        ("epochs_done", state.epochs_done.to_string()),
        ("history", json(&state.history)),
        ("rng", RNG_SCHEME.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(e.to_string()))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(tensors, Some(metadata), &tmp).map_err(|e| write_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(e.to_string()))
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("metadata serialises to JSON")
}

/// Loads the state at `path` into `model` and `optimizer` after checking
/// that it was written for the same cell.
pub fn load(path: &Path, spec: &RunSpec, model: &Wrn, optimizer: &mut Sgd) -> Result<CheckpointState, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read { path: path.into(), source })?;
    let corrupt = |message: String| CheckpointError::Corrupt { path: path.into(), message };
    let not_ours = |message: &str| CheckpointError::NotACheckpoint { path: path.into(), message: message.to_string() };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let meta = header.metadata().clone().ok_or_else(|| not_ours("it has no metadata"))?;
    let field = |key: &str| meta.get(key).cloned().ok_or_else(|| not_ours(&format!("metadata lacks {key:?}")));
    if field("format")? != FORMAT {
        return Err(not_ours("its format is not widesweep-checkpoint"));
    }
    let version = field("format_version")?;
    if version != FORMAT_VERSION.to_string() {
        return Err(CheckpointError::Version { path: path.into(), found: version });
    }
    let cell: CellRecord =
        serde_json::from_str(&field("cell")?).map_err(|e| corrupt(format!("unreadable cell metadata: {e}")))?;
    if let Some((field, found, expected)) = cell.first_difference(&CellRecord::of(spec)) {
        return Err(CheckpointError::Mismatch { path: path.into(), field, found, expected });
    }
    if let Some(note) = rng_scheme_note(meta.get("rng").map(String::as_str), spec.config.dropout) {
        tracing::warn!(path = %path.display(), "{note}");
    }
    let epochs_done: usize = field("epochs_done")?.parse().map_err(|e| corrupt(format!("bad epochs_done: {e}")))?;
    let history: Vec<EpochMetrics> =
        serde_json::from_str(&field("history")?).map_err(|e| corrupt(format!("bad history: {e}")))?;

    // Read every tensor before changing any, so a refused file leaves the model untouched.
    let read = |key: &str, var: &candle_core::Var| -> Result<Tensor, CheckpointError> {
        let view = tensors.tensor(key).map_err(|e| corrupt(format!("tensor {key}: {e}")))?;
        let tensor = view.load(var.device()).map_err(|e| corrupt(format!("tensor {key}: {e}")))?;
        if tensor.dims() != var.dims() || tensor.dtype() != var.dtype() {
            return Err(corrupt(format!(
                "tensor {key} is {:?} {:?}, the model's is {:?} {:?}",
                tensor.dtype(),
                tensor.dims(),
                var.dtype(),
                var.dims()
            )));
        }
        Ok(tensor)
    };
    let mut loaded = Vec::new();
    for (name, var) in model.store().all() {
        loaded.push((read(&model_key(&name), &var)?, var));
    }
    let mut momentum = HashMap::new();
    for (name, var) in model.store().params() {
        let key = momentum_key(&name);
        if tensors.names().iter().any(|n| **n == key) {
            momentum.insert(name, read(&key, &var)?);
        }
    }
    for (tensor, var) in loaded {
        var.set(&tensor).map_err(|e| corrupt(e.to_string()))?;
    }
    optimizer.load_momentum(|name, _| Ok(momentum.remove(name))).map_err(|e| corrupt(e.to_string()))?;
    Ok(CheckpointState { epochs_done, history })
}

#[cfg(test)]
mod tests {
    use widesweep_arch::{Dataset, WrnConfig};

    use super::*;

    /// The cell metadata of a checkpoint written by the worker before the
    /// recipe was shared (its own recipe type: usize fields, no subsets, no
    /// checkpoint period), for WRN-10-1 on CIFAR-10, seed 7, 1024 images.
    const OLD_CELL: &str = r#"{"network":"WRN-10-1 B(3,3)","block":"B(3,3)","blocks_per_group":1,"width":1,"dropout":0.0,"in_channels":3,"num_classes":10,"dataset":"cifar10","seed":7,"train_subset":1024,"recipe":{"epochs":3,"batch_size":32,"lr":0.05,"lr_milestones":[1,2],"lr_gamma":0.2,"momentum":0.9,"nesterov":true,"weight_decay":0.0005,"reset_momentum_on_drop":true,"augment":true,"precision":"f32"}}"#;

    fn run(recipe: Recipe) -> CellRecord {
        let config = WrnConfig::new("B(3,3)".parse().unwrap(), 1, 1, 0.0, 3, 10).unwrap();
        CellRecord::of(&RunSpec { config, dataset: Dataset::Cifar10, recipe, seed: 7 })
    }

    fn same_recipe() -> Recipe {
        Recipe {
            epochs: 3,
            batch_size: 32,
            lr: 0.05,
            lr_milestones: vec![1, 2],
            train_subset: 1024,
            ..Recipe::default()
        }
    }

    #[test]
    fn an_old_checkpoints_cell_still_reads_and_matches_its_run() {
        let old: CellRecord = serde_json::from_str(OLD_CELL).unwrap();
        assert_eq!(old.recipe.train_subset, 0, "not recorded in the old recipe: the default");
        assert_eq!(old.first_difference(&run(same_recipe())), None);
        // A longer run, another test subset or checkpoint period: the same training.
        let extended = Recipe { epochs: 5, test_subset: 500, checkpoint_every: 2, ..same_recipe() };
        assert_eq!(old.first_difference(&run(extended)), None);
    }

    /// A checkpoint from before the dropout masks became a hash resumes
    /// with a warning when the cell has dropout, silently without.
    #[test]
    fn an_older_rng_scheme_is_noted_when_dropout_draws_from_it() {
        let old = "chacha8 streams keyed by (seed, epoch, step, purpose)";
        assert_eq!(rng_scheme_note(Some(RNG_SCHEME), 0.3), None);
        assert_eq!(rng_scheme_note(Some(old), 0.0), None);
        let note = rng_scheme_note(Some(old), 0.3).expect("noted");
        assert!(note.contains(old) && note.contains("not bit-identical"), "{note}");
        assert!(rng_scheme_note(None, 0.3).unwrap().contains("not recorded"));
    }

    #[test]
    fn a_checkpoint_of_another_recipe_or_subset_is_refused() {
        let old: CellRecord = serde_json::from_str(OLD_CELL).unwrap();
        let new: CellRecord = serde_json::from_str(&json(&run(same_recipe()))).unwrap();
        for checkpoint in [old, new] {
            let field = |recipe: Recipe| checkpoint.first_difference(&run(recipe)).map(|(field, _, _)| field);
            assert_eq!(field(Recipe { lr: 0.1, ..same_recipe() }), Some("recipe"));
            assert_eq!(field(Recipe { batch_size: 64, ..same_recipe() }), Some("recipe"));
            assert_eq!(field(Recipe { augment: false, ..same_recipe() }), Some("recipe"));
            assert_eq!(field(Recipe { train_subset: 2048, ..same_recipe() }), Some("train_subset"));
            assert_eq!(field(Recipe { train_subset: 0, ..same_recipe() }), Some("train_subset"));
            assert_eq!(field(same_recipe()), None);
        }
    }
}
