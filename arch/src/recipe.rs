//! The training recipe, defined and validated once for the whole workspace:
//! the coordinator reads it from a spec, hashes it into every cell's
//! identity, stores it and sends it to workers; the worker trains with it
//! and records it in its checkpoints. One type and one [`Recipe::validate`]
//! mean that a recipe the coordinator accepts is one a worker accepts.
//!
//! Integer fields are `u32`, as the database and the gRPC messages carry
//! them. Deserialising one (from a spec's TOML, a checkpoint's JSON) reads
//! any integer first and refuses a value that does not fit, with the
//! field's name and range: a spec's `epochs = 4294967296` is an error, never
//! a silently different recipe.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::{Dataset, Precision, widen};

/// Most epochs a recipe may ask for.
pub const MAX_EPOCHS: u32 = 10_000;
/// Fewest images per batch: batch norm needs two samples to normalise.
pub const MIN_BATCH_SIZE: u32 = 2;
/// Most images per batch.
pub const MAX_BATCH_SIZE: u32 = 65_536;
/// Most batches a batch-norm re-estimation may run.
pub const MAX_BN_RECALIBRATION_BATCHES: u32 = 10_000;
/// Recipes of at most this many epochs are short: batch norm's running
/// statistics (momentum 0.1, a window of about ten steps) still lag the
/// weights when training stops, so a spec that does not say otherwise
/// re-estimates them before each evaluation.
pub const SHORT_RECIPE_EPOCHS: u32 = 10;
/// Batches a short recipe re-estimates batch norm's statistics on when its
/// spec does not say: the exact average of 50 batches' statistics is within
/// noise of the whole training set's for the batch sizes WRNs train with,
/// at the cost of 50 forward passes per epoch.
pub const DEFAULT_BN_RECALIBRATION_BATCHES: u32 = 50;
/// Where the paper's learning-rate drops fall, in percent of the epochs
/// (60, 120 and 160 of 200): a recipe without `lr_milestones` drops there.
const MILESTONE_PERCENTS: [u32; 3] = [30, 60, 80];

/// The training recipe of a cell. Defaults are the paper's CIFAR recipe
/// (Zagoruyko & Komodakis, BMVC 2016, section 4, and the official code):
/// SGD, Nesterov momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 x0.2
/// at epochs 60, 120, 160, 200 epochs.
///
/// The serialised form is part of every cell's identity (the coordinator
/// hashes its canonical JSON): fields that were added later are left out
/// at their default so that older hashes stand. Change a field, its serde
/// attributes or its default and every stored sweep looks new.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "WrittenRecipe")]
pub struct Recipe {
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    /// The learning rate is multiplied by `lr_gamma` after each of these
    /// epochs, i.e. at the start of the 0-based epoch of the same number:
    /// strictly increasing, from 1 to `epochs - 1`. Where a recipe does not
    /// give them, they are the paper's, scaled to the epochs
    /// ([`Recipe::scaled_milestones`]).
    pub lr_milestones: Vec<u32>,
    pub lr_gamma: f64,
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 penalty on every parameter, BN and biases included.
    pub weight_decay: f64,
    /// Zero the momentum buffers at each learning-rate drop. The official
    /// code does this, because it builds a fresh optimizer at every
    /// milestone; turn it off to keep momentum across drops as PyTorch's
    /// MultiStepLR would.
    pub reset_momentum_on_drop: bool,
    /// Train on N images of the training set only (the same ones for every
    /// seed), for quick studies; 0 = all.
    pub train_subset: u32,
    /// Evaluate each epoch on the first N test images only; 0 = all.
    /// Left out of the serialised form when 0, so that the hashes of
    /// cells written before this field existed do not change.
    #[serde(skip_serializing_if = "is_zero")]
    pub test_subset: u32,
    /// Random reflect-padded crops and horizontal flips of training images
    /// (the paper's augmentation). Left out when true, for the same reason
    /// as `test_subset`.
    #[serde(skip_serializing_if = "is_true")]
    pub augment: bool,
    /// Upload a checkpoint every N epochs; 0 disables periodic checkpoints.
    /// It changes how often a run is saved, not the run.
    pub checkpoint_every: u32,
    /// f32, or bf16 mixed precision (see [`Precision`]). Left out at f32,
    /// for the same reason as `test_subset`; checkpoints written before
    /// this field existed read back as f32, which they trained in.
    #[serde(skip_serializing_if = "Precision::is_default")]
    pub precision: Precision,
    /// Precise batch norm: before each evaluation, re-estimate every batch
    /// norm's running statistics as the exact average over this many
    /// un-augmented training batches (drawn by the seed), in place of the
    /// momentum average that lags the weights; 0 = off. Left out when 0,
    /// for the same reason as `test_subset`. A spec's short recipes
    /// ([`SHORT_RECIPE_EPOCHS`]) default to [`DEFAULT_BN_RECALIBRATION_BATCHES`].
    #[serde(skip_serializing_if = "is_zero")]
    pub bn_recalibration_batches: u32,
}

/// A recipe as written (a spec's `[recipe]`, a stored JSON record): the
/// fields whose default depends on the others are `None` when not given.
/// Integers are range-checked here, before they are narrowed.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WrittenRecipe {
    #[serde(deserialize_with = "de_epochs")]
    epochs: u32,
    #[serde(deserialize_with = "de_batch_size")]
    batch_size: u32,
    lr: f64,
    #[serde(deserialize_with = "de_lr_milestones")]
    lr_milestones: Option<Vec<u32>>,
    lr_gamma: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    reset_momentum_on_drop: bool,
    #[serde(deserialize_with = "de_train_subset")]
    train_subset: u32,
    #[serde(deserialize_with = "de_test_subset")]
    test_subset: u32,
    augment: bool,
    #[serde(deserialize_with = "de_checkpoint_every")]
    checkpoint_every: u32,
    precision: Precision,
    #[serde(deserialize_with = "de_bn_recalibration_batches")]
    bn_recalibration_batches: Option<u32>,
}

impl Default for WrittenRecipe {
    fn default() -> Self {
        let r = Recipe::default();
        Self {
            epochs: r.epochs,
            batch_size: r.batch_size,
            lr: r.lr,
            lr_milestones: None,
            lr_gamma: r.lr_gamma,
            momentum: r.momentum,
            nesterov: r.nesterov,
            weight_decay: r.weight_decay,
            reset_momentum_on_drop: r.reset_momentum_on_drop,
            train_subset: r.train_subset,
            test_subset: r.test_subset,
            augment: r.augment,
            checkpoint_every: r.checkpoint_every,
            precision: r.precision,
            bn_recalibration_batches: None,
        }
    }
}

impl WrittenRecipe {
    /// The recipe a spec means: what it does not give takes the defaults
    /// that fit its epochs (milestones at 30/60/80 %; precise batch norm
    /// for short recipes).
    pub fn for_spec(self) -> Recipe {
        let bn = self.bn_recalibration_batches.unwrap_or(Recipe::default_bn_recalibration_batches(self.epochs));
        Recipe { bn_recalibration_batches: bn, ..Recipe::from(self) }
    }
}

/// A stored recipe: records written before precise batch norm existed
/// trained without it.
impl From<WrittenRecipe> for Recipe {
    fn from(w: WrittenRecipe) -> Self {
        Recipe {
            lr_milestones: w.lr_milestones.unwrap_or_else(|| Recipe::scaled_milestones(w.epochs)),
            epochs: w.epochs,
            batch_size: w.batch_size,
            lr: w.lr,
            lr_gamma: w.lr_gamma,
            momentum: w.momentum,
            nesterov: w.nesterov,
            weight_decay: w.weight_decay,
            reset_momentum_on_drop: w.reset_momentum_on_drop,
            train_subset: w.train_subset,
            test_subset: w.test_subset,
            augment: w.augment,
            checkpoint_every: w.checkpoint_every,
            precision: w.precision,
            bn_recalibration_batches: w.bn_recalibration_batches.unwrap_or(0),
        }
    }
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 128,
            lr: 0.1,
            lr_milestones: vec![60, 120, 160],
            lr_gamma: 0.2,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            reset_momentum_on_drop: true,
            train_subset: 0,
            test_subset: 0,
            augment: true,
            checkpoint_every: 1,
            precision: Precision::F32,
            bn_recalibration_batches: 0,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Why a recipe was refused. Every message names the field as a spec
/// writes it (`recipe.batch_size`), the bad value and what would be valid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RecipeError {
    /// An integer outside its field's range, including one too large for
    /// the field's type (checked before it is narrowed).
    #[error("{field} = {value} is invalid: {valid}")]
    OutOfRange { field: &'static str, value: i128, valid: String },
    #[error("recipe.lr = {0} is invalid: use a finite learning rate > 0")]
    Lr(f64),
    #[error("recipe.lr_gamma = {0} is invalid: use a factor in (0, 1]")]
    LrGamma(f64),
    #[error("recipe.momentum = {0} is invalid: use a value in [0, 1)")]
    Momentum(f64),
    #[error("recipe.nesterov = true needs momentum > 0: set recipe.momentum, or recipe.nesterov = false")]
    NesterovWithoutMomentum,
    #[error("recipe.weight_decay = {0} is invalid: use a finite value >= 0")]
    WeightDecay(f64),
    #[error("recipe.lr_milestones = {milestones:?} is invalid: {reason}")]
    LrMilestones { milestones: Vec<u32>, reason: String },
    #[error(
        "recipe.train_subset = {train_subset} is smaller than one batch (recipe.batch_size = {batch_size}): use 0 (every image) or at least {batch_size}"
    )]
    TrainSubsetBelowBatch { train_subset: u32, batch_size: u32 },
    #[error(
        "recipe.batch_size = {batch_size} is more than the {images} training images of {dataset}: use at most {images}"
    )]
    BatchLargerThanDataset { batch_size: u32, dataset: Dataset, images: usize },
}

impl RecipeError {
    /// The field at fault, as a spec names it: `recipe.epochs`.
    pub fn field(&self) -> &'static str {
        match self {
            RecipeError::OutOfRange { field, .. } => field,
            RecipeError::Lr(_) => "recipe.lr",
            RecipeError::LrGamma(_) => "recipe.lr_gamma",
            RecipeError::Momentum(_) => "recipe.momentum",
            RecipeError::NesterovWithoutMomentum => "recipe.nesterov",
            RecipeError::WeightDecay(_) => "recipe.weight_decay",
            RecipeError::LrMilestones { .. } => "recipe.lr_milestones",
            RecipeError::TrainSubsetBelowBatch { .. } => "recipe.train_subset",
            RecipeError::BatchLargerThanDataset { .. } => "recipe.batch_size",
        }
    }
}

/// An integer field of the recipe and the values it takes. The same bounds
/// check a deserialised value before it is narrowed to `u32` and a
/// constructed recipe in [`Recipe::validate`], so both say the same.
#[derive(Clone, Copy)]
struct Bounds {
    field: &'static str,
    min: u32,
    max: u32,
    /// What the range means, appended to the error.
    note: &'static str,
}

impl Bounds {
    fn check(self, value: impl Into<i128>) -> Result<u32, RecipeError> {
        let value = value.into();
        u32::try_from(value).ok().filter(|v| (self.min..=self.max).contains(v)).ok_or_else(|| self.error(value))
    }

    fn error(self, value: i128) -> RecipeError {
        RecipeError::OutOfRange {
            field: self.field,
            value,
            valid: format!("use an integer from {} to {}{}", self.min, self.max, self.note),
        }
    }
}

const EPOCHS: Bounds = Bounds { field: "recipe.epochs", min: 1, max: MAX_EPOCHS, note: "" };
const BATCH_SIZE: Bounds = Bounds {
    field: "recipe.batch_size",
    min: MIN_BATCH_SIZE,
    max: MAX_BATCH_SIZE,
    note: " (batch norm needs two samples per batch)",
};
const TRAIN_SUBSET: Bounds =
    Bounds { field: "recipe.train_subset", min: 0, max: u32::MAX, note: " (0 trains on every image)" };
const TEST_SUBSET: Bounds =
    Bounds { field: "recipe.test_subset", min: 0, max: u32::MAX, note: " (0 evaluates on every test image)" };
const BN_RECALIBRATION_BATCHES: Bounds = Bounds {
    field: "recipe.bn_recalibration_batches",
    min: 0,
    max: MAX_BN_RECALIBRATION_BATCHES,
    note: " (0 keeps batch norm's momentum statistics)",
};
const CHECKPOINT_EVERY: Bounds =
    Bounds { field: "recipe.checkpoint_every", min: 0, max: u32::MAX, note: " (0 turns periodic checkpoints off)" };
/// Only the type's range: the real bound, `epochs - 1`, is checked by
/// [`Recipe::validate`] once the whole recipe is known.
const LR_MILESTONE: Bounds = Bounds {
    field: "recipe.lr_milestones",
    min: 1,
    max: MAX_EPOCHS - 1,
    note: ", strictly increasing and below recipe.epochs",
};

impl Recipe {
    /// Every rule that does not depend on the dataset. [`Recipe::validate_for`]
    /// adds the one that does; the boundaries (a spec, a leased job, a run)
    /// call that.
    pub fn validate(&self) -> Result<(), RecipeError> {
        EPOCHS.check(self.epochs)?;
        BATCH_SIZE.check(self.batch_size)?;
        TRAIN_SUBSET.check(self.train_subset)?;
        TEST_SUBSET.check(self.test_subset)?;
        CHECKPOINT_EVERY.check(self.checkpoint_every)?;
        BN_RECALIBRATION_BATCHES.check(self.bn_recalibration_batches)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(RecipeError::Lr(self.lr));
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0 && self.lr_gamma <= 1.0) {
            return Err(RecipeError::LrGamma(self.lr_gamma));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(RecipeError::Momentum(self.momentum));
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err(RecipeError::NesterovWithoutMomentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(RecipeError::WeightDecay(self.weight_decay));
        }
        let milestones = |reason: String| RecipeError::LrMilestones { milestones: self.lr_milestones.clone(), reason };
        if self.lr_milestones.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(milestones("use strictly increasing epochs".to_string()));
        }
        if self.lr_milestones.first() == Some(&0) {
            return Err(milestones("milestones count epochs from 1; 0 is invalid".to_string()));
        }
        if let Some(&last) = self.lr_milestones.last()
            && last >= self.epochs
        {
            return Err(milestones(format!(
                "milestone {last} is not before the last epoch (recipe.epochs = {}); use milestones from 1 to {}",
                self.epochs,
                self.epochs - 1
            )));
        }
        if self.train_subset != 0 && self.train_subset < self.batch_size {
            return Err(RecipeError::TrainSubsetBelowBatch {
                train_subset: self.train_subset,
                batch_size: self.batch_size,
            });
        }
        Ok(())
    }

    /// [`Recipe::validate`], and one batch fits in `dataset`'s training set.
    pub fn validate_for(&self, dataset: Dataset) -> Result<(), RecipeError> {
        self.validate()?;
        let images = dataset.train_size();
        if widen(self.batch_size) > images {
            return Err(RecipeError::BatchLargerThanDataset { batch_size: self.batch_size, dataset, images });
        }
        Ok(())
    }

    /// Precise batch norm's default for a recipe of `epochs` that does not
    /// say: on for short recipes, off for long ones such as the paper's.
    pub fn default_bn_recalibration_batches(epochs: u32) -> u32 {
        if epochs <= SHORT_RECIPE_EPOCHS { DEFAULT_BN_RECALIBRATION_BATCHES } else { 0 }
    }

    /// The paper's drops (epochs 60, 120 and 160 of 200) at the same shares
    /// of `epochs`, rounded to the nearest epoch; drops that would fall on
    /// the same epoch, on 0 or on the last epoch are left out. 200 epochs
    /// give exactly the paper's schedule.
    pub fn scaled_milestones(epochs: u32) -> Vec<u32> {
        let mut milestones: Vec<u32> = Vec::new();
        for percent in MILESTONE_PERCENTS {
            let epoch = u32::try_from((u64::from(epochs) * u64::from(percent) + 50) / 100).unwrap_or(u32::MAX);
            if epoch >= 1 && epoch < epochs && milestones.last().is_none_or(|last| *last < epoch) {
                milestones.push(epoch);
            }
        }
        milestones
    }

    /// Learning rate during 0-based `epoch`: lr * gamma^(milestones passed).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let drops = self.lr_milestones.iter().filter(|m| widen(**m) <= epoch).count();
        // At most MAX_EPOCHS milestones in a valid recipe: the count fits an i32.
        self.lr * self.lr_gamma.powi(i32::try_from(drops).unwrap_or(i32::MAX))
    }

    /// Whether the learning rate drops at the start of 0-based `epoch`.
    pub fn drops_at(&self, epoch: usize) -> bool {
        epoch > 0 && self.lr_milestones.iter().any(|m| widen(*m) == epoch)
    }

    /// Training images one epoch of `dataset` trains on: the subset (or
    /// the whole split) cut to whole batches, as the trainer drops the last
    /// partial batch.
    pub fn train_images_per_epoch(&self, dataset: Dataset) -> usize {
        let batch = widen(self.batch_size).max(1);
        let images = self.train_subset_len().map_or(dataset.train_size(), |n| n.min(dataset.train_size()));
        images / batch * batch
    }

    /// The number of training images to use, `None` for all of them.
    pub fn train_subset_len(&self) -> Option<usize> {
        (self.train_subset > 0).then(|| widen(self.train_subset))
    }

    /// The number of test images to evaluate on, `None` for all of them.
    pub fn test_subset_len(&self) -> Option<usize> {
        (self.test_subset > 0).then(|| widen(self.test_subset))
    }
}

/// Any integer a self-describing format holds, widened to i128 so that a
/// value out of a field's range can be named exactly in the error.
struct AnyInteger;

impl Visitor<'_> for AnyInteger {
    type Value = i128;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(v.into())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<i128, E> {
        Ok(v)
    }
}

/// An integer as [`AnyInteger`] reads it, for the elements of a list.
struct Wide(i128);

impl<'de> Deserialize<'de> for Wide {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u32(AnyInteger).map(Wide)
    }
}

fn narrow<'de, D: Deserializer<'de>>(deserializer: D, bounds: Bounds) -> Result<u32, D::Error> {
    let value = deserializer.deserialize_u32(AnyInteger)?;
    // Only what does not fit u32 is refused here; validate() checks the
    // rest of the range, with the same message.
    u32::try_from(value).map_err(|_| de::Error::custom(bounds.error(value)))
}

fn de_epochs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    narrow(deserializer, EPOCHS)
}

fn de_batch_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    narrow(deserializer, BATCH_SIZE)
}

fn de_train_subset<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    narrow(deserializer, TRAIN_SUBSET)
}

fn de_test_subset<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    narrow(deserializer, TEST_SUBSET)
}

fn de_checkpoint_every<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    narrow(deserializer, CHECKPOINT_EVERY)
}

fn de_bn_recalibration_batches<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    narrow(deserializer, BN_RECALIBRATION_BATCHES).map(Some)
}

fn de_lr_milestones<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u32>>, D::Error> {
    Vec::<Wide>::deserialize(deserializer)?
        .into_iter()
        .map(|Wide(value)| u32::try_from(value).map_err(|_| de::Error::custom(LR_MILESTONE.error(value))))
        .collect::<Result<_, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_papers_schedule() {
        let r = Recipe::default();
        r.validate_for(Dataset::Cifar10).unwrap();
        assert_eq!(r.lr_at(0), 0.1);
        assert_eq!(r.lr_at(59), 0.1);
        assert!((r.lr_at(60) - 0.02).abs() < 1e-12);
        assert!((r.lr_at(199) - 0.1 * 0.2f64.powi(3)).abs() < 1e-12);
        assert!(r.drops_at(120) && !r.drops_at(121) && !r.drops_at(0));
        assert_eq!((r.train_subset_len(), r.test_subset_len()), (None, None));
        let subset = Recipe { train_subset: 500, test_subset: 200, ..r };
        assert_eq!((subset.train_subset_len(), subset.test_subset_len()), (Some(500), Some(200)));
    }

    /// Each rule, with the field its error names; every message also gives
    /// the bad value.
    #[test]
    fn each_rule_names_its_field() {
        let d = Recipe::default;
        let cases: Vec<(Recipe, &str, &str)> = vec![
            (Recipe { epochs: 0, ..d() }, "recipe.epochs", "from 1 to 10000"),
            (Recipe { epochs: 10_001, ..d() }, "recipe.epochs", "from 1 to 10000"),
            (Recipe { batch_size: 0, ..d() }, "recipe.batch_size", "from 2 to 65536"),
            (Recipe { batch_size: 1, ..d() }, "recipe.batch_size", "batch norm"),
            (Recipe { batch_size: 65_537, ..d() }, "recipe.batch_size", "from 2 to 65536"),
            (Recipe { lr: 0.0, ..d() }, "recipe.lr", "> 0"),
            (Recipe { lr: f64::INFINITY, ..d() }, "recipe.lr", "finite"),
            (Recipe { lr_gamma: 1.5, ..d() }, "recipe.lr_gamma", "(0, 1]"),
            (Recipe { lr_gamma: f64::NAN, ..d() }, "recipe.lr_gamma", "(0, 1]"),
            (Recipe { momentum: 1.0, ..d() }, "recipe.momentum", "[0, 1)"),
            (Recipe { momentum: 0.0, ..d() }, "recipe.nesterov", "momentum > 0"),
            (Recipe { weight_decay: -1e-4, ..d() }, "recipe.weight_decay", ">= 0"),
            (Recipe { lr_milestones: vec![60, 30], ..d() }, "recipe.lr_milestones", "strictly increasing"),
            (Recipe { lr_milestones: vec![60, 60], ..d() }, "recipe.lr_milestones", "strictly increasing"),
            (Recipe { lr_milestones: vec![0, 60], ..d() }, "recipe.lr_milestones", "from 1"),
            (Recipe { lr_milestones: vec![60, 200], ..d() }, "recipe.lr_milestones", "from 1 to 199"),
            (Recipe { train_subset: 100, ..d() }, "recipe.train_subset", "at least 128"),
        ];
        for (recipe, field, valid) in cases {
            let err = recipe.validate().expect_err(field);
            let message = err.to_string();
            assert_eq!(err.field(), field, "{message}");
            assert!(message.starts_with(field) && message.contains(valid), "{field}, {valid:?}: {message}");
        }
    }

    #[test]
    fn edges_that_are_valid() {
        let d = Recipe::default;
        for recipe in [
            Recipe { batch_size: 2, ..d() },
            Recipe { epochs: 1, lr_milestones: vec![], ..d() },
            Recipe { epochs: 2, lr_milestones: vec![1], ..d() },
            Recipe { epochs: MAX_EPOCHS, lr_milestones: vec![1, MAX_EPOCHS - 1], ..d() },
            Recipe { momentum: 0.0, nesterov: false, weight_decay: 0.0, lr_gamma: 1.0, ..d() },
            Recipe { train_subset: 128, test_subset: 1, checkpoint_every: 0, ..d() },
            Recipe { train_subset: u32::MAX, test_subset: u32::MAX, checkpoint_every: u32::MAX, ..d() },
        ] {
            recipe.validate_for(Dataset::Cifar10).unwrap_or_else(|e| panic!("{recipe:?}: {e}"));
        }
    }

    #[test]
    fn a_batch_must_fit_the_dataset() {
        let recipe = Recipe { batch_size: 50_001, ..Recipe::default() };
        recipe.validate().unwrap();
        let err = recipe.validate_for(Dataset::Cifar10).unwrap_err().to_string();
        assert!(err.contains("recipe.batch_size = 50001") && err.contains("at most 50000"), "{err}");
        recipe.validate_for(Dataset::Mnist).unwrap();
    }

    #[test]
    fn serde_fills_defaults_and_refuses_unknown_fields() {
        let r: Recipe = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(r, Recipe { epochs: 3, lr_milestones: vec![1, 2], ..Recipe::default() });
        let err = serde_json::from_str::<Recipe>(r#"{"epoch": 3}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `epoch`"), "{err}");
    }

    /// The serialised form is hashed into every cell's identity: this pins
    /// it, field order included.
    #[test]
    fn the_serialised_form_never_changes() {
        assert_eq!(
            serde_json::to_string(&Recipe::default()).unwrap(),
            r#"{"epochs":200,"batch_size":128,"lr":0.1,"lr_milestones":[60,120,160],"lr_gamma":0.2,"momentum":0.9,"nesterov":true,"weight_decay":0.0005,"reset_momentum_on_drop":true,"train_subset":0,"checkpoint_every":1}"#
        );
        let all = Recipe { test_subset: 5, augment: false, precision: Precision::Bf16, ..Recipe::default() };
        let json = serde_json::to_string(&all).unwrap();
        assert!(
            json.ends_with(
                r#""train_subset":0,"test_subset":5,"augment":false,"checkpoint_every":1,"precision":"bf16"}"#
            ),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Recipe>(&json).unwrap(), all);
    }

    /// Without `lr_milestones` the paper's drops scale to the epochs; 200
    /// epochs give the paper's own, so the default recipe is unchanged.
    #[test]
    fn milestones_scale_to_the_epochs_when_not_given() {
        assert_eq!(Recipe::scaled_milestones(200), vec![60, 120, 160]);
        assert_eq!(Recipe::scaled_milestones(200), Recipe::default().lr_milestones);
        assert_eq!(Recipe::scaled_milestones(100), vec![30, 60, 80]);
        assert_eq!(Recipe::scaled_milestones(10), vec![3, 6, 8]);
        assert_eq!(Recipe::scaled_milestones(3), vec![1, 2]);
        assert_eq!(Recipe::scaled_milestones(2), vec![1]);
        assert_eq!(Recipe::scaled_milestones(1), Vec::<u32>::new());
        for epochs in 1..=MAX_EPOCHS {
            let recipe = Recipe { epochs, lr_milestones: Recipe::scaled_milestones(epochs), ..Recipe::default() };
            recipe.validate().unwrap_or_else(|e| panic!("epochs = {epochs}: {e}"));
        }
        let spec: WrittenRecipe = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        let recipe = spec.for_spec();
        assert_eq!(recipe.lr_milestones, vec![1, 2]);
        recipe.validate_for(Dataset::FashionMnist).unwrap();
        let stated: WrittenRecipe = serde_json::from_str(r#"{"epochs": 3, "lr_milestones": [2]}"#).unwrap();
        assert_eq!(stated.for_spec().lr_milestones, vec![2]);
    }

    /// A spec's short recipe re-estimates batch norm unless it says
    /// otherwise; a long one, and every stored record that predates the
    /// field, does not.
    #[test]
    fn precise_batch_norm_defaults_on_for_short_recipes_in_specs_only() {
        let spec = |json: &str| serde_json::from_str::<WrittenRecipe>(json).unwrap().for_spec();
        assert_eq!(spec(r#"{"epochs": 3}"#).bn_recalibration_batches, DEFAULT_BN_RECALIBRATION_BATCHES);
        assert_eq!(spec(r#"{"epochs": 10}"#).bn_recalibration_batches, DEFAULT_BN_RECALIBRATION_BATCHES);
        assert_eq!(spec(r#"{"epochs": 11}"#).bn_recalibration_batches, 0);
        assert_eq!(spec(r#"{}"#).bn_recalibration_batches, 0);
        assert_eq!(spec(r#"{"epochs": 3, "bn_recalibration_batches": 0}"#).bn_recalibration_batches, 0);
        assert_eq!(spec(r#"{"bn_recalibration_batches": 20}"#).bn_recalibration_batches, 20);
        let stored: Recipe = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(stored.bn_recalibration_batches, 0);
        let on = Recipe { epochs: 3, lr_milestones: vec![1], bn_recalibration_batches: 50, ..Recipe::default() };
        let json = serde_json::to_string(&on).unwrap();
        assert!(json.ends_with(r#""checkpoint_every":1,"bn_recalibration_batches":50}"#), "{json}");
        assert_eq!(serde_json::from_str::<Recipe>(&json).unwrap(), on);
        let err = serde_json::from_str::<Recipe>(r#"{"bn_recalibration_batches": 10001}"#).map(|r| r.validate());
        let err = match err {
            Ok(Err(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(err.contains("recipe.bn_recalibration_batches = 10001") && err.contains("0 to 10000"), "{err}");
        let err = serde_json::from_str::<Recipe>(r#"{"bn_recalibration_batches": -1}"#).unwrap_err().to_string();
        assert!(err.contains("recipe.bn_recalibration_batches = -1"), "{err}");
    }

    /// Integers too large (or negative) for a u32 field are refused while
    /// reading, with the field, the value and the range: never wrapped or
    /// saturated into another recipe.
    #[test]
    fn integers_out_of_u32_are_refused_naming_the_field() {
        for (json, field, value) in [
            (r#"{"epochs": 4294967296}"#, "recipe.epochs", "4294967296"),
            (r#"{"epochs": -1}"#, "recipe.epochs", "-1"),
            (r#"{"batch_size": 4294967298}"#, "recipe.batch_size", "4294967298"),
            (r#"{"train_subset": 4294967296}"#, "recipe.train_subset", "4294967296"),
            (r#"{"test_subset": 18446744073709551615}"#, "recipe.test_subset", "18446744073709551615"),
            (r#"{"checkpoint_every": 4294967296}"#, "recipe.checkpoint_every", "4294967296"),
            (r#"{"lr_milestones": [60, 4294967356]}"#, "recipe.lr_milestones", "4294967356"),
        ] {
            let err = serde_json::from_str::<Recipe>(json).unwrap_err().to_string();
            assert!(err.contains(&format!("{field} = {value} is invalid: use an integer from")), "{json}: {err}");
        }
        let err = serde_json::from_str::<Recipe>(r#"{"epochs": 2.5}"#).unwrap_err().to_string();
        assert!(err.contains("expected an integer"), "{err}");
    }

    /// A checkpoint's recipe as the worker wrote it before the recipe was
    /// shared: no train_subset, test_subset or checkpoint_every.
    #[test]
    fn the_old_worker_recipe_still_reads() {
        let old = r#"{"epochs":3,"batch_size":32,"lr":0.05,"lr_milestones":[1,2],"lr_gamma":0.2,"momentum":0.9,"nesterov":true,"weight_decay":0.0005,"reset_momentum_on_drop":true,"augment":true,"precision":"bf16"}"#;
        let r: Recipe = serde_json::from_str(old).unwrap();
        let expected = Recipe {
            epochs: 3,
            batch_size: 32,
            lr: 0.05,
            lr_milestones: vec![1, 2],
            precision: Precision::Bf16,
            ..Recipe::default()
        };
        assert_eq!(r, expected);
    }
}
